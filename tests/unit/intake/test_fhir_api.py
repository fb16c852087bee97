"""The FHIR router reads ATTUNE_FHIR_CONFIG when the service starts: a malformed file stops it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from attune_intake.domain.fhir.config import FhirConfig
from attune_intake.fhir.api import router


def _app() -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    return app


def test_a_malformed_mapping_file_stops_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "fhir.json"
    bad.write_text(json.dumps({"sources": {"ehr-north": {"default_modality": "carrier pigeon"}}}))
    monkeypatch.setenv("ATTUNE_FHIR_CONFIG", str(bad))
    with pytest.raises(ValidationError), TestClient(_app()):
        pass


def test_the_mapping_file_is_read_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "fhir.json"
    good.write_text(json.dumps({"sources": {"ehr-north": {"clinics": {"Organization/1": "north-01"}}}}))
    monkeypatch.setenv("ATTUNE_FHIR_CONFIG", str(good))
    app = _app()
    with TestClient(app):
        config = app.state.fhir_config
    assert isinstance(config, FhirConfig)
    assert config.for_source("ehr-north").clinics == {"Organization/1": "north-01"}
