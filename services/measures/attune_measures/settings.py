"""measures' settings: the shared base, the per-clinic scoring thresholds file, the trajectory refit."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from attune_measures.domain.clinic_thresholds import ThresholdBook
from attune_measures.domain.thresholds import DEFAULT, ScoringThresholds
from attune_shared.clinic_settings import load_clinic_settings
from attune_shared.settings import ServiceSettings


def load_thresholds(path: Path | None) -> ThresholdBook:
    """The thresholds in `path` (`{"default": {...}, "clinics": {...}}`), or the defaults without a file.

    Raises ClinicSettingsError (a ValueError) naming the file, the key and what is wrong.
    """
    book = load_clinic_settings(
        path, setting="ATTUNE_MEASURES_THRESHOLDS_FILE", base=DEFAULT, apply=ScoringThresholds.with_overrides
    )
    return ThresholdBook(book.default, book.clinics)


class MeasuresSettings(ServiceSettings):
    """Configuration of the measures service."""

    service_name: str = "measures"
    attune_http_port: int = Field(default=8082, ge=0, le=65535)
    # JSON of ScoringThresholds overrides; a bad key or value stops the service at start.
    attune_measures_thresholds_file: Path | None = None
    # Expected trajectories (docs/trajectories.md): refit every this many seconds (first attempt at
    # start-up), and the closed episodes with >= 3 scores a model needs (below it the rule is inactive).
    attune_trajectory_refit_s: float = Field(default=86400, gt=0)
    attune_trajectory_n_min: int = Field(default=50, ge=2)

    @field_validator("attune_measures_thresholds_file")
    @classmethod
    def _thresholds_valid(cls, value: Path | None) -> Path | None:
        load_thresholds(value)
        return value

    def thresholds(self) -> ThresholdBook:
        """The per-clinic thresholds (the file was validated when the settings were built)."""
        return load_thresholds(self.attune_measures_thresholds_file)
