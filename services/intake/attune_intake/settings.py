"""intake's settings: the shared base plus HTTP ingestion limits."""

from pydantic import Field

from attune_shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    """Configuration of the intake service."""

    service_name: str = "intake"
    attune_http_port: int = Field(default=8081, ge=0, le=65535)
    attune_http_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    attune_http_max_events: int = Field(default=500, ge=1, le=5000)
