"""The dead-letter log line's ids come from the raw record, however hostile it is."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from attune_intake.pipeline import Inbound, _safe_ids, reject, validate
from attune_shared.events import EnvelopeRejected


def _dead(raw: bytes):
    rec = Inbound(value=raw, key=b"north-01:MRN1", topic="ehr.events.v1", partition=0, offset=7)
    with pytest.raises(EnvelopeRejected) as caught:
        validate(rec)
    return reject(rec, caught.value, datetime(2026, 3, 2, tzinfo=UTC))


def test_a_record_nested_too_deep_is_dead_lettered_and_logged_without_a_crash() -> None:
    raw = b'{"event_id": "ehr-north:1", "payload": ' + b'{"n":' * 5000 + b"1" + b"}" * 5000 + b"}"
    dead = _dead(raw)
    assert dead.error.code == "invalid_json"
    assert _safe_ids(dead) == {}


def test_the_log_ids_never_include_the_mrn() -> None:
    doc = {
        "event_id": "ehr-north:2",
        "source": "ehr-north",
        "clinic_id": "north-01",
        "event_type": "x.y",
        "schema_version": 1,
        "occurred_at": "2026-03-02T14:55:00+01:00",
        "payload": {"mrn": "MRN77"},
    }
    dead = _dead(json.dumps(doc).encode())
    assert dead.error.code == "unknown_event_type"
    assert _safe_ids(dead) == {"event_id": "ehr-north:2", "source": "ehr-north", "clinic_id": "north-01"}
