"""measures' settings: the shared base plus the per-clinic scoring thresholds file."""

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

    @field_validator("attune_measures_thresholds_file")
    @classmethod
    def _thresholds_valid(cls, value: Path | None) -> Path | None:
        load_thresholds(value)
        return value

    def thresholds(self) -> ThresholdBook:
        """The per-clinic thresholds (the file was validated when the settings were built)."""
        return load_thresholds(self.attune_measures_thresholds_file)
