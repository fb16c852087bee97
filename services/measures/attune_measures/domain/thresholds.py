"""Configurable scoring thresholds and rule versions (defaults from clinical-rules.md)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from attune_measures.domain.series import K_MIN, SD_FLOOR, WINDOW

# Bump a version whenever the rule's arithmetic changes, so stored scores can be explained later.
RULE_VERSIONS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "score.wai-sr": 1,
        "score.srs": 1,
        "score.ors": 1,
        "score.phq-9": 1,
        "score.gad-7": 1,
        "score.psq": 1,
        "reliable-change": 1,
    }
)


@dataclass(frozen=True, slots=True)
class ReliableChangeRule:
    """One row of the reliable change table: the magnitude and which way is better."""

    threshold: float
    higher_is_better: bool


# Field name -> (instrument, higher_is_better) for the reliable change table.
_RELIABLE_CHANGE_FIELDS: Final[Mapping[str, tuple[str, bool]]] = MappingProxyType(
    {
        "reliable_change_ors": ("ORS", True),
        "reliable_change_phq9": ("PHQ-9", False),
        "reliable_change_gad7": ("GAD-7", False),
    }
)


@dataclass(frozen=True, slots=True)
class ScoringThresholds:
    """Every per-clinic configurable number used by scoring, reliable change and the series."""

    srs_cutoff: float = 36.0
    srs_cutoff_inclusive: bool = False
    srs_item_cutoff: float = 9.0
    ors_clinical_cutoff: float = 25.0
    psq_repair_min: int = 4
    # Reliable change from intake, as a positive magnitude; direction is fixed per instrument.
    reliable_change_ors: float = 5.0
    reliable_change_phq9: float = 6.0
    reliable_change_gad7: float = 4.0
    sd_floor_wai_sr: float = SD_FLOOR["WAI-SR"]
    sd_floor_srs: float = SD_FLOOR["SRS"]
    series_window: int = WINDOW
    series_k_min: int = K_MIN

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            _check(field.name, value, field.type)
            if field.type == "float":
                # Store 36 as 36.0 so equality and the recorded thresholds do not depend on input type.
                object.__setattr__(self, field.name, float(value))
        _in_range("srs_cutoff", self.srs_cutoff, 0.0, 40.0)
        _in_range("srs_item_cutoff", self.srs_item_cutoff, 0.0, 10.0)
        _in_range("ors_clinical_cutoff", self.ors_clinical_cutoff, 0.0, 40.0)
        _in_range("psq_repair_min", self.psq_repair_min, 1, 5)
        for name in ("reliable_change_ors", "reliable_change_phq9", "reliable_change_gad7"):
            _positive(name, getattr(self, name))
        _positive("sd_floor_wai_sr", self.sd_floor_wai_sr)
        _positive("sd_floor_srs", self.sd_floor_srs)
        _in_range("series_window", self.series_window, 1, 1000)
        _in_range("series_k_min", self.series_k_min, 1, self.series_window)

    @property
    def reliable_change_table(self) -> Mapping[str, ReliableChangeRule]:
        """The reliable change table keyed by instrument (ORS, PHQ-9, GAD-7)."""
        return MappingProxyType(
            {
                instrument: ReliableChangeRule(getattr(self, name), higher_is_better)
                for name, (instrument, higher_is_better) in _RELIABLE_CHANGE_FIELDS.items()
            }
        )

    def sd_floor(self, instrument: str) -> float:
        """The series SD floor for an alliance instrument (WAI-SR mean or SRS total)."""
        if instrument == "WAI-SR":
            return self.sd_floor_wai_sr
        if instrument == "SRS":
            return self.sd_floor_srs
        raise ValueError(f"no alliance series for instrument {instrument!r}")

    def as_dict(self) -> dict[str, float | int | bool]:
        """Every threshold by name, to record with a decision."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def with_overrides(self, overrides: Mapping[str, Any]) -> ScoringThresholds:
        """A copy with the given thresholds replaced; ValueError names an unknown or ill-typed key."""
        known = {field.name: field.type for field in dataclasses.fields(self)}
        for key, value in overrides.items():
            if key not in known:
                raise ValueError(f"unknown threshold {key!r}")
            _check(key, value, known[key])
        return dataclasses.replace(self, **overrides)


def _check(name: str, value: object, declared: object) -> None:
    # Annotations are strings under `from __future__ import annotations`.
    if declared == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"threshold {name!r} must be a boolean, got {value!r}")
    elif declared == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"threshold {name!r} must be an integer, got {value!r}")
    elif declared == "float":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"threshold {name!r} must be a finite number, got {value!r}")
    else:  # pragma: no cover - guards against a new field with an unhandled type
        raise TypeError(f"threshold {name!r} has unsupported type {declared!r}")


def _in_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"threshold {name!r} must be between {low} and {high}, got {value!r}")


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"threshold {name!r} must be positive, got {value!r}")


DEFAULT: Final = ScoringThresholds()
