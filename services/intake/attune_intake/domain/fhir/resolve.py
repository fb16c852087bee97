"""What the mapper may look up: the bundle's own resources and what intake remembers. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from attune_intake.domain.fhir.config import SourceConfig

_CLINIC = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_TYPED = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$")


class Unusable(Exception):
    """A resource Attune cannot use: `expression` names the FHIR element (FHIRPath), `code` is the
    OperationOutcome issue type; the message never quotes PHI (it ends up in dead letters and logs)."""

    def __init__(self, expression: str, message: str, code: str = "invalid", status: int = 422) -> None:
        super().__init__(f"{expression}: {message}")
        self.expression = expression
        self.message = message
        self.code = code
        self.status = status


@dataclass
class Context:
    """One request's lookups: the caller, its source's configuration, the bundle, remembered facts."""

    source: str
    clinics: frozenset[str]  # the token's clinics ("*" for all)
    config: SourceConfig
    full_urls: dict[str, str] = field(default_factory=dict)  # entry fullUrl -> "Type/id"
    known: dict[str, dict[str, Any]] = field(default_factory=dict)  # "Type/id" -> facts

    def covers(self, clinic_id: str) -> bool:
        """Whether the token may act for this clinic."""
        return "*" in self.clinics or clinic_id in self.clinics

    def key(self, reference: Any) -> str | None:
        """A Reference's target as "Type/id" (relative, absolute or a bundle fullUrl), else None."""
        if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
            return None
        ref = reference["reference"]
        if ref in self.full_urls:
            return self.full_urls[ref]
        found = _TYPED.search(ref)
        return f"{found.group(1)}/{found.group(2)}" if found else None

    def facts(self, reference: Any, kind: str) -> tuple[str | None, dict[str, Any] | None]:
        """The key of a reference to `kind` and what is known about its target (None when unknown)."""
        key = self.key(reference)
        if key is None or not key.startswith(kind + "/"):
            return None, None
        return key, self.known.get(key)

    def clinic(self, org: Any, expression: str, *fallbacks: str | None) -> str:
        """The clinic: the token's only clinic, else the organization mapped by configuration (or its
        own id when the token covers it), else what the referenced resources said."""
        if "*" not in self.clinics and len(self.clinics) == 1:
            return next(iter(self.clinics))
        candidates: list[str] = []
        if isinstance(org, dict):
            key = self.key(org)
            ident = org.get("identifier") if isinstance(org.get("identifier"), dict) else {}
            for name in (key, ident.get("value") if ident else None):
                if isinstance(name, str) and name in self.config.clinics:
                    candidates.append(self.config.clinics[name])
            if key and key.startswith("Organization/"):
                own = key.split("/", 1)[1]
                if _CLINIC.match(own) and self.covers(own):
                    candidates.append(own)
        candidates.extend(f for f in fallbacks if f)
        if not candidates:
            raise Unusable(
                expression, "no clinic: the organization is not mapped (ATTUNE_FHIR_CONFIG clinics)"
            )
        if not self.covers(candidates[0]):
            raise Unusable(expression, "the token does not cover this clinic", code="forbidden", status=403)
        return candidates[0]


def obj(value: Any) -> dict[str, Any]:
    """The value when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def seq(value: Any) -> list[Any]:
    """The value when it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def text(value: Any) -> str:
    """The value when it is a string, else ""."""
    return value if isinstance(value, str) else ""


def practitioner(ctx: Context, reference: Any) -> str | None:
    """A clinician id from a Practitioner reference (staff ids pass, contract section 6)."""
    key = ctx.key(reference)
    if key and key.startswith("Practitioner/"):
        return key.split("/", 1)[1]
    return None


def instant(value: Any) -> datetime | None:
    """A FHIR dateTime/instant as an aware datetime (a date alone is midnight UTC), else None."""
    if not isinstance(value, str):
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def day(value: Any) -> date | None:
    """The date part of a FHIR date or dateTime (YYYY-MM-DD...), else None."""
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def codes(concept: Any) -> list[str]:
    """Every code of a Coding or CodeableConcept (or a list of them)."""
    if isinstance(concept, list):
        return [c for one in concept for c in codes(one)]
    if not isinstance(concept, dict):
        return []
    if isinstance(concept.get("code"), str):
        return [concept["code"]]
    return [
        c["code"] for c in concept.get("coding", []) if isinstance(c, dict) and isinstance(c.get("code"), str)
    ]
