"""console's settings: the shared base plus the URLs of the APIs it calls and the session knobs."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from attune_shared.settings import ServiceSettings

ASSETS_DIR = Path(__file__).resolve().parents[1] / "node_modules"


class ConsoleSettings(ServiceSettings):
    """Configuration of the console (it owns no clinical data: no Kafka topics, no database)."""

    needs_pseudonym_key: ClassVar[bool] = False  # it never makes or reads a pseudonym's key

    service_name: str = "console"
    attune_http_port: int = Field(default=8085, ge=0, le=65535)
    attune_console_alerts_url: str = "http://127.0.0.1:8083"
    attune_console_reporting_url: str = "http://127.0.0.1:8084"
    attune_console_intake_url: str = "http://127.0.0.1:8081"
    attune_console_measures_url: str = "http://127.0.0.1:8082"
    # A session unused for this long is gone: the next page asks to sign in again.
    attune_console_session_idle_s: float = Field(default=1800.0, gt=0, le=86_400)
    # Sessions are kept in memory; past this many the least recently used is dropped.
    attune_console_max_sessions: int = Field(default=10_000, ge=1, le=1_000_000)
    # How often the inbox page asks the console for changes (its own JSON endpoint).
    attune_console_poll_s: float = Field(default=10.0, ge=1, le=3600)
    attune_console_upstream_timeout_s: float = Field(default=10.0, gt=0, le=120)
    # Where `make setup` put the npm packages the pages use (chart.js); served from here.
    attune_console_assets_dir: Path = ASSETS_DIR

    @property
    def secure_cookies(self) -> bool:
        """Cookies carry `Secure` in production (served over TLS behind the ingress)."""
        return self.attune_env == "production"
