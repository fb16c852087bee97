"""Reads the FHIR mapping configuration: the JSON file named by ATTUNE_FHIR_CONFIG, defaults otherwise.

The models and the merging of a source's block over the defaults are in attune_intake.domain.fhir.config.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from attune_intake.domain.fhir.config import FhirConfig


class FhirSettings(BaseSettings):
    """The environment variable that names the file."""

    model_config = SettingsConfigDict(extra="ignore")
    attune_fhir_config: Path | None = None


def load_config(path: Path | None = None) -> FhirConfig:
    """Read ATTUNE_FHIR_CONFIG (or `path`); no file means every default."""
    path = path or FhirSettings().attune_fhir_config
    if path is None:
        return FhirConfig()
    config = FhirConfig.model_validate(json.loads(Path(path).read_text()))
    config.check()
    return config
