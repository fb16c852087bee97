"""The two configuration files: per-clinic rule thresholds and per-clinic delivery contacts.

Both are read and validated once when the app is built, so a typo stops the service at start with a
message naming the file and the key, instead of surfacing weeks later in a rule or a delivery.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from attune_alerts.domain.errors import InvalidThresholds
from attune_alerts.domain.thresholds import AlertThresholds
from attune_shared.settings import SettingsError


def _read_json(path: Path, variable: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{variable} {path}: cannot read JSON ({exc})") from None


@dataclass(frozen=True, slots=True)
class ClinicThresholds:
    """The deployment's default thresholds and each clinic's overrides of them."""

    default: AlertThresholds = field(default_factory=AlertThresholds)
    clinics: Mapping[str, AlertThresholds] = field(default_factory=dict)

    def for_clinic(self, clinic_id: str) -> AlertThresholds:
        """The thresholds a clinic's rules use."""
        return self.clinics.get(clinic_id, self.default)


def load_thresholds(path: Path | None) -> ClinicThresholds:
    """Read `{"default": {...}, "clinics": {"north-01": {...}}}`; None means the clinical-rules defaults."""
    if path is None:
        return ClinicThresholds()
    var = "ATTUNE_ALERTS_THRESHOLDS_FILE"
    data = _read_json(path, var)
    if not isinstance(data, dict) or set(data) - {"default", "clinics", "_comment"}:
        raise SettingsError(f'{var} {path}: expected an object with "default" and/or "clinics"')
    default_overrides = data.get("default") or {}
    clinic_overrides = data.get("clinics") or {}
    if not isinstance(default_overrides, dict) or not isinstance(clinic_overrides, dict):
        raise SettingsError(f'{var} {path}: "default" and "clinics" must be objects')
    try:
        default = AlertThresholds().with_overrides(default_overrides)
        clinics = {}
        for clinic, overrides in clinic_overrides.items():
            if not isinstance(overrides, dict):
                raise InvalidThresholds(f"clinic {clinic!r}: overrides must be an object")
            clinics[clinic] = default.with_overrides(overrides)
    except InvalidThresholds as exc:
        raise SettingsError(f"{var} {path}: {exc}") from None
    return ClinicThresholds(default, clinics)


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


class ContactsFile(_Strict):
    """`ATTUNE_ALERTS_WEBHOOKS_FILE`: `{"clinics": {"north-01": {...}}}`."""

    comment: str | None = Field(default=None, alias="_comment")
    clinics: dict[str, ClinicContacts] = {}


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


def load_contacts(path: Path | None) -> Contacts:
    """Read and validate the webhooks/contacts file; None means no webhooks and no e-mail recipients."""
    if path is None:
        return Contacts()
    var = "ATTUNE_ALERTS_WEBHOOKS_FILE"
    data = _read_json(path, var)
    try:
        parsed = ContactsFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SettingsError(f"{var} {path}: {where}: {first['msg']}") from None
    return Contacts(parsed.clinics)
