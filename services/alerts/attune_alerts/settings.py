"""alerts' settings: the shared base plus rule thresholds, delivery targets, sweeps and the clock."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from attune_shared.settings import ServiceSettings


class AlertsSettings(ServiceSettings):
    """Configuration of the alerts service (files are validated when the app is built, see config.py)."""

    service_name: str = "alerts"
    attune_http_port: int = Field(default=8083, ge=0, le=65535)

    # JSON: {"default": {threshold: value}, "clinics": {clinic_id: {threshold: value}}}; unset: defaults.
    attune_alerts_thresholds_file: Path | None = None
    # JSON: per clinic its webhooks [{url, secret}], lead_email and escalation contact; unset: none.
    attune_alerts_webhooks_file: Path | None = None

    # "wall": the inactivity rule measures its 21 days against the wall clock (production).
    # "event": against the newest occurred_at seen for the clinic. The simulator replays weeks of
    # history in minutes, so on the wall clock no episode would ever look inactive during a demo,
    # and every replayed episode would look inactive at once afterwards; the event clock keeps the
    # rule honest about the replayed timeline. Escalation SLAs always run on the wall clock: they
    # measure how long a person has taken to acknowledge.
    attune_alerts_clock: Literal["wall", "event"] = "wall"

    attune_alerts_sweep_seconds: float = Field(default=30.0, gt=0, le=3600)
    attune_alerts_delivery_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    attune_alerts_webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    attune_alerts_webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    attune_alerts_webhook_backoff_seconds: float = Field(default=2.0, gt=0, le=3600)
    attune_alerts_webhook_backoff_max_seconds: float = Field(default=900.0, gt=0, le=86400)
    attune_alerts_webhook_concurrency: int = Field(default=16, ge=1, le=1000)
    # An unpublished alert change older than this was left by a crashed writer: others roll it forward.
    attune_alerts_stale_claim_seconds: float = Field(default=10.0, gt=0, le=3600)
    # Base of the links in e-mails (the alerts API as a lead reaches it).
    attune_alerts_public_url: str = "http://127.0.0.1:8083"

    # E-mail is optional: off while ATTUNE_SMTP_HOST is unset.
    attune_smtp_host: str | None = None
    attune_smtp_port: int = Field(default=587, ge=1, le=65535)
    attune_smtp_from: str | None = None
    attune_smtp_username: str | None = None
    attune_smtp_password: SecretStr | None = None
    attune_smtp_starttls: bool = True

    @property
    def email_enabled(self) -> bool:
        """True when an SMTP server is configured."""
        return bool(self.attune_smtp_host)
