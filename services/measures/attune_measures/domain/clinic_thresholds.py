"""Per-clinic scoring thresholds: a default plus clinic overrides, validated once at start. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from attune_measures.domain.thresholds import DEFAULT, ScoringThresholds


@dataclass(frozen=True, slots=True)
class ThresholdBook:
    """The thresholds each clinic scores with; clinics without an entry use the default."""

    default: ScoringThresholds = DEFAULT
    clinics: Mapping[str, ScoringThresholds] = field(default_factory=lambda: MappingProxyType({}))

    def for_clinic(self, clinic_id: str) -> ScoringThresholds:
        """The thresholds of one clinic."""
        return self.clinics.get(clinic_id, self.default)

    @classmethod
    def from_config(cls, data: object) -> ThresholdBook:
        """Read `{"default": {...}, "clinics": {"north-01": {...}}}`; ValueError names the bad entry.

        A clinic's overrides apply on top of the file's default, so a network-wide change is made once.
        """
        if not isinstance(data, Mapping):
            raise ValueError("the thresholds file must hold a JSON object")
        unknown = sorted(set(data) - {"default", "clinics"})
        if unknown:
            raise ValueError(f"unknown top-level key(s) {unknown}; expected 'default' and 'clinics'")
        default = _overridden(DEFAULT, data.get("default", {}), "default")
        clinics_raw = data.get("clinics", {})
        if not isinstance(clinics_raw, Mapping):
            raise ValueError("'clinics' must be an object of clinic_id -> thresholds")
        clinics = {
            str(clinic): _overridden(default, overrides, f"clinics.{clinic}")
            for clinic, overrides in clinics_raw.items()
        }
        return cls(default=default, clinics=MappingProxyType(clinics))


def _overridden(base: ScoringThresholds, overrides: Any, where: str) -> ScoringThresholds:
    if not isinstance(overrides, Mapping):
        raise ValueError(f"{where}: must be an object of threshold -> value")
    try:
        return base.with_overrides(overrides)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from None
