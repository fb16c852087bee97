"""The settings base every service builds on: contract section 8, validated at start."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import ClassVar, Literal, TypeVar

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
DEV_PSEUDONYM_KEY = "attune-development-pseudonym-key-not-for-production"
DEV_TOKENS_FILE = REPO_ROOT / "deploy" / "dev" / "tokens.json"


S = TypeVar("S", bound="ServiceSettings")


class SettingsError(ValueError):
    """Configuration that cannot be run with; the message says what to change."""


class ServiceSettings(BaseSettings):
    """Configuration shared by all four services; each service subclasses it."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False, frozen=True)
    # Whether the service makes or checks pseudonyms (production refuses it a development key); the
    # console does neither, so it need not be given the key at all.
    needs_pseudonym_key: ClassVar[bool] = True

    service_name: str = "attune"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    mongodb_uri: SecretStr = SecretStr("mongodb://127.0.0.1:27017")
    mongodb_database: str | None = Field(default=None, description="defaults to attune_<service>")
    # How long one store command's reply may take: past it the command fails (NetworkTimeout) and the
    # batch is retried like any store error. Without it a command the store never answers (a wedged
    # database, a session behind a lock never released, a peer gone without closing the connection)
    # stops a consumer for ever without a word. Well above any single command's time.
    mongodb_socket_timeout_ms: int = Field(default=60_000, ge=100, le=3_600_000)
    attune_env: Literal["development", "production"] = "development"
    attune_pseudonym_key: SecretStr = SecretStr(DEV_PSEUDONYM_KEY)
    attune_tokens_file: Path = DEV_TOKENS_FILE
    attune_min_cell_size: int = Field(default=5, ge=1, le=1000)
    attune_log_format: Literal["json", "console"] | None = None
    attune_log_level: Literal["debug", "info", "warning", "error"] = "info"
    attune_http_host: str = "127.0.0.1"
    attune_http_port: int = Field(default=8080, ge=0, le=65535)
    # The body limit of every POST that sets no limit of its own (intake's ingestion has
    # ATTUNE_HTTP_MAX_BODY_BYTES); over it: 413 before the body is read.
    attune_http_max_request_bytes: int = Field(default=64 * 1024, ge=1024)
    attune_batch_max_records: int = Field(default=2000, ge=1, le=10_000)
    attune_batch_timeout_ms: int = Field(default=100, ge=1, le=60_000)
    # Prefixes every topic, consumer group and database name; lets tests and side-by-side runs share
    # one broker and store. Empty in production.
    attune_name_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9_-]*$", max_length=32)

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _servers_present(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers or any(":" not in s for s in servers):
            raise ValueError("KAFKA_BOOTSTRAP_SERVERS must be host:port[,host:port...]")
        return ",".join(servers)

    @model_validator(mode="after")
    def _production_refuses_development_secrets(self) -> ServiceSettings:
        if self.attune_env != "production":
            return self
        problems = []
        key = self.attune_pseudonym_key.get_secret_value()
        if self.needs_pseudonym_key and (key == DEV_PSEUDONYM_KEY or len(key) < 32):
            problems.append(
                "ATTUNE_PSEUDONYM_KEY must be set to a secret of at least 32 characters "
                "(the development key is refused in production)"
            )
        if self.attune_tokens_file.resolve() == DEV_TOKENS_FILE.resolve():
            problems.append(
                "ATTUNE_TOKENS_FILE must name the production tokens file "
                "(the development file is refused in production)"
            )
        if self.kafka_sasl_mechanism and not self.kafka_sasl_password:
            problems.append("KAFKA_SASL_PASSWORD is required with KAFKA_SASL_MECHANISM")
        if problems:
            raise ValueError("ATTUNE_ENV=production: " + "; ".join(problems))
        return self

    @property
    def database_name(self) -> str:
        """The service's own MongoDB database."""
        return self.mongodb_database or f"{self.attune_name_prefix}attune_{self.service_name}"

    def topic(self, name: str) -> str:
        """The physical topic name for a contract topic name."""
        return f"{self.attune_name_prefix}{name}"

    def group(self, name: str) -> str:
        """The physical consumer group name."""
        return f"{self.attune_name_prefix}{name}"

    @property
    def log_format(self) -> Literal["json", "console"]:
        """Console on a terminal, JSON lines otherwise, unless ATTUNE_LOG_FORMAT says."""
        if self.attune_log_format:
            return self.attune_log_format
        return "console" if sys.stderr.isatty() else "json"

    @property
    def pseudonym_key(self) -> bytes:
        """The HMAC key for client_ref."""
        return self.attune_pseudonym_key.get_secret_value().encode()


def load_settings(cls: type[S], **overrides: object) -> S:
    """Build settings from the environment; a bad value stops the service with a clear message."""
    from pydantic import ValidationError

    try:
        return cls(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()]
        raise SettingsError(f"invalid configuration for {cls.__name__}:\n" + "\n".join(lines)) from None
