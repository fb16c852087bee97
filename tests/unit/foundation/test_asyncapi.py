"""The committed AsyncAPI documents match what the code generates (run `attune asyncapi` to refresh)."""

from __future__ import annotations

import pytest

from attune_cli import asyncapi


def test_asyncapi_documents_are_current(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATTUNE_NAME_PREFIX", raising=False)
    assert asyncapi.stale() == [], "docs/asyncapi is out of date: run `.venv/bin/attune asyncapi`"


def test_intake_document_lists_its_topics_and_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATTUNE_NAME_PREFIX", raising=False)
    doc = asyncapi.generate("intake")
    addresses = {c["address"] for c in doc["channels"].values()}
    assert {"ehr.events.v1", "clinic.care.v1", "ehr.events.dlq.v1"} <= addresses
    assert "SessionAttended" in doc["components"]["schemas"]
    assert "mrn" not in doc["components"]["schemas"]["SessionAttended"]["properties"]
