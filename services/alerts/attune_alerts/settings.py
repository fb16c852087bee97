"""alerts' settings: the shared base plus rule thresholds, delivery targets, sweeps and the clock.

Two per-clinic files complete them, read with attune_shared.clinic_settings (one format, one style
of error for every service): the rule thresholds and the delivery contacts. Both are read and
validated once when the app is built, so a typo stops the service at start with a message naming
the file and the key, instead of surfacing weeks later in a rule or a delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from attune_alerts.domain.thresholds import AlertThresholds
from attune_shared.clinic_settings import ClinicSettings, load_clinic_settings
from attune_shared.settings import ServiceSettings


class AlertsSettings(ServiceSettings):
    """Configuration of the alerts service (the files are validated when the app is built, see below)."""

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


# ---------------------------------------------------------------- per-clinic rule thresholds


@dataclass(frozen=True, slots=True)
class ClinicThresholds(ClinicSettings[AlertThresholds]):
    """The deployment's default thresholds and each clinic's overrides of them."""

    default: AlertThresholds = field(default_factory=AlertThresholds)


def load_thresholds(path: Path | None) -> ClinicThresholds:
    """Read `{"default": {...}, "clinics": {"north-01": {...}}}`; None means the clinical-rules defaults."""
    read = load_clinic_settings(
        path,
        setting="ATTUNE_ALERTS_THRESHOLDS_FILE",
        base=AlertThresholds(),
        apply=AlertThresholds.with_overrides,
    )
    return ClinicThresholds(read.default, read.clinics)


# ---------------------------------------------------------------- per-clinic delivery contacts


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Webhook(_Strict):
    """One receiver: an http(s) URL and the shared secret its signatures are made with."""

    url: str = Field(min_length=8, max_length=2000)
    secret: str = Field(min_length=16, max_length=500)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class EscalationContact(_Strict):
    """Who hears of an escalation: webhooks, an e-mail address, or both."""

    webhooks: list[Webhook] = []
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")


class ClinicContacts(_Strict):
    """A clinic's delivery targets."""

    webhooks: list[Webhook] = []
    lead_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    escalation: EscalationContact = EscalationContact()


@dataclass(frozen=True, slots=True)
class Contacts:
    """Delivery targets by clinic, with the secret of each webhook URL."""

    clinics: Mapping[str, ClinicContacts] = field(default_factory=dict)

    def of(self, clinic_id: str) -> ClinicContacts:
        """A clinic's contacts (none configured: an empty set)."""
        return self.clinics.get(clinic_id) or ClinicContacts()

    def secret_for(self, clinic_id: str, url: str) -> str | None:
        """The current secret of a clinic's webhook URL (clinic or escalation), or None if unknown now."""
        c = self.of(clinic_id)
        for hook in (*c.webhooks, *c.escalation.webhooks):
            if hook.url == url:
                return hook.secret
        return None


def _contacts(_: ClinicContacts, entry: Mapping[str, Any]) -> ClinicContacts:
    # A clinic's entry is complete on its own: the file has no "default" to inherit from.
    return ClinicContacts.model_validate(entry)


def load_contacts(path: Path | None) -> Contacts:
    """Read `{"clinics": {"north-01": {...}}}`; None means no webhooks and no e-mail recipients."""
    read = load_clinic_settings(
        path,
        setting="ATTUNE_ALERTS_WEBHOOKS_FILE",
        base=ClinicContacts(),
        apply=_contacts,
        allow_default=False,
    )
    return Contacts(read.clinics)
