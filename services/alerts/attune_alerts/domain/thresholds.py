"""Every number the alert rules use, with the clinical-rules.md defaults and validated overrides."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from attune_alerts.domain.errors import InvalidThresholds, UnknownSeverity


@dataclass(frozen=True, slots=True)
class AlertThresholds:
    """Per-clinic alert thresholds; defaults are the clinical-rules.md values."""

    phq9_item9_min: int = 1
    rupture_strict_drop: float = 2.0
    rupture_lenient_drop: float = 1.0
    psq_tension_min: int = 3
    psq_repair_min: int = 4
    repair_window_sessions: int = 3
    dropout_consecutive_misses: int = 2
    inactivity_days: int = 21
    rupture_recency_days: int = 14
    not_on_track_min_session: int = 3
    sla_urgent_hours: float = 1.0
    sla_high_hours: float = 24.0
    sla_normal_hours: float = 72.0

    def with_overrides(self, overrides: Mapping[str, Any]) -> AlertThresholds:
        """Return a copy with `overrides` applied; raise InvalidThresholds naming any bad key."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            if key not in fields:
                raise InvalidThresholds(
                    f"unknown alert threshold {key!r}; known: {', '.join(sorted(fields))}"
                )
            changes[key] = _coerce(key, value, integer=fields[key].type == "int")
        result = dataclasses.replace(self, **changes)
        result._check_consistency()
        return result

    def sla(self, severity: str) -> timedelta:
        """The acknowledgement SLA for a severity."""
        hours = {
            "urgent": self.sla_urgent_hours,
            "high": self.sla_high_hours,
            "normal": self.sla_normal_hours,
        }
        if severity not in hours:
            raise UnknownSeverity(f"unknown severity {severity!r}")
        return timedelta(hours=hours[severity])

    def _check_consistency(self) -> None:
        if self.rupture_lenient_drop > self.rupture_strict_drop:
            raise InvalidThresholds("rupture_lenient_drop must not exceed rupture_strict_drop")
        if not 1 <= self.phq9_item9_min <= 3:
            raise InvalidThresholds("phq9_item9_min must be 1..3 (PHQ-9 item 9 is scored 0..3)")
        for key in ("psq_tension_min", "psq_repair_min"):
            if not 1 <= getattr(self, key) <= 5:
                raise InvalidThresholds(f"{key} must be 1..5 (PSQ items are scored 1..5)")
        if self.not_on_track_min_session < 2:
            raise InvalidThresholds(
                "not_on_track_min_session must be at least 2 (session 1 is intake, which has no expected band)"
            )


def _coerce(key: str, value: Any, *, integer: bool) -> int | float:
    # bool is an int subclass; `True` as a threshold is always a configuration mistake.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidThresholds(f"alert threshold {key!r} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise InvalidThresholds(f"alert threshold {key!r} must be finite, got {value!r}")
    if integer:
        if float(value) != int(value):
            raise InvalidThresholds(f"alert threshold {key!r} must be a whole number, got {value!r}")
        value = int(value)
    if value <= 0:
        raise InvalidThresholds(f"alert threshold {key!r} must be positive, got {value!r}")
    return value
