"""Per-clinic scoring thresholds: a default plus clinic overrides, validated once at start. Pure.

The file's format and its errors are attune_shared.clinic_settings'; measures supplies the values.
"""

from __future__ import annotations

from dataclasses import dataclass

from attune_measures.domain.thresholds import DEFAULT, ScoringThresholds
from attune_shared.clinic_settings import ClinicSettings


@dataclass(frozen=True, slots=True)
class ThresholdBook(ClinicSettings[ScoringThresholds]):
    """The thresholds each clinic scores with; clinics without an entry use the default."""

    default: ScoringThresholds = DEFAULT
