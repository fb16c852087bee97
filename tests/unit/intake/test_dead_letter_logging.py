"""The dead-letter log line's ids come from the raw record, however hostile it is."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from attune_intake.domain.canonical import Pseudonymiser
from attune_intake.pipeline import _safe_ids, reject, validate
from attune_shared.events import EnvelopeRejected
from attune_shared.ids import EVENT_REF_PATTERN, pseudonym
from attune_shared.kafka import Inbound

KEY = b"k" * 32
IDS = Pseudonymiser(KEY)


def _dead(raw: bytes):
    rec = Inbound(value=raw, key=b"north-01:MRN1", topic="ehr.events.v1", partition=0, offset=7)
    with pytest.raises(EnvelopeRejected) as caught:
        validate(rec)
    return reject(rec, caught.value, datetime(2026, 3, 2, tzinfo=UTC))


def test_a_record_nested_too_deep_is_dead_lettered_and_logged_without_a_crash() -> None:
    raw = b'{"event_id": "ehr-north:1", "payload": ' + b'{"n":' * 5000 + b"1" + b"}" * 5000 + b"}"
    dead = _dead(raw)
    assert dead.error.code == "invalid_json"
    assert _safe_ids(dead, IDS) == {}


def test_the_log_ids_never_include_the_mrn_or_the_ehr_event_id() -> None:
    doc = {
        "event_id": "ehr-north:MRN77:2",
        "source": "ehr-north",
        "clinic_id": "north-01",
        "event_type": "x.y",
        "schema_version": 1,
        "occurred_at": "2026-03-02T14:55:00+01:00",
        "payload": {"mrn": "MRN77"},
    }
    dead = _dead(json.dumps(doc).encode())
    assert dead.error.code == "unknown_event_type"
    ids = _safe_ids(dead, IDS)
    # The EHR's event id is PHI (it may embed the MRN): only its pseudonym is logged, the same one
    # intake would have given the event (source_event_id), so the log line can still be correlated.
    event_ref = pseudonym(KEY, "event", clinic_id="north-01", source="ehr-north", value="ehr-north:MRN77:2")
    assert re.fullmatch(EVENT_REF_PATTERN, event_ref)
    assert ids == {"event_ref": event_ref, "source": "ehr-north", "clinic_id": "north-01"}
    assert "MRN77" not in json.dumps(ids) and "ehr-north:MRN77:2" not in ids.values()
    assert _safe_ids(_dead(json.dumps(doc).encode()), Pseudonymiser(KEY)) == ids  # stable
    assert _safe_ids(dead, Pseudonymiser(b"other-key-" * 4))["event_ref"] != event_ref


def test_without_source_and_clinic_no_event_pseudonym_is_logged() -> None:
    # The pseudonym is scoped by clinic and source: without both there is none to log, and the raw
    # event id is never logged instead.
    doc = {"event_id": "ehr-north:MRN77:3", "clinic_id": "north-01", "event_type": "x.y"}
    dead = _dead(json.dumps(doc).encode())
    assert _safe_ids(dead, IDS) == {"clinic_id": "north-01"}
