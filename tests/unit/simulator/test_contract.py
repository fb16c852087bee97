"""Every record is what the contract says: valid envelopes parse, poison is rejected with its code."""

import json
from collections import Counter

import pytest

from attune_cli.simulator import Scenario
from attune_intake.domain.validation import parse_envelope
from attune_shared.events import MAX_RECORD_BYTES, EnvelopeRejected
from attune_shared.ids import client_ref
from attune_shared.settings import DEV_PSEUDONYM_KEY

DEAD_LETTER_CODES = {
    "invalid_json",
    "not_an_object",
    "schema_violation",
    "unknown_event_type",
    "unsupported_version",
    "too_large",
}


def test_every_valid_record_parses_and_is_keyed_clinic_mrn(default_scenario: Scenario) -> None:
    valid = default_scenario.valid_records
    assert len(valid) > 5000
    for record in valid:
        env = parse_envelope(record.value)
        assert env.event_type == record.event_type
        assert env.event_id == record.event_id
        assert env.source == "ehr-sim"
        assert record.key == env.kafka_key.encode()
        assert len(record.value) <= MAX_RECORD_BYTES


def test_every_event_type_is_sent(default_scenario: Scenario) -> None:
    types = Counter(r.event_type for r in default_scenario.valid_records)
    assert set(types) == {
        "client.referred",
        "clinician.assigned",
        "appointment.scheduled",
        "session.attended",
        "session.missed",
        "session.cancelled",
        "questionnaire.completed",
        "episode.closed",
    }


def test_every_poison_record_is_rejected_with_its_intended_code(default_scenario: Scenario) -> None:
    poison = default_scenario.poison_records
    for record in poison:
        with pytest.raises(EnvelopeRejected) as caught:
            parse_envelope(record.value)
        assert caught.value.code == record.expected_code, caught.value.message
    assert {r.expected_code for r in poison} == DEAD_LETTER_CODES


def test_poison_covers_non_utf8_naive_timestamps_and_out_of_range_items(default_scenario: Scenario) -> None:
    poison = default_scenario.poison_records
    undecodable = []
    for record in poison:
        try:
            record.value.decode("utf-8")
        except UnicodeDecodeError:
            undecodable.append(record)
    assert [r.expected_code for r in undecodable] == ["invalid_json"]
    messages = []
    for record in poison:
        if record.expected_code == "schema_violation":
            with pytest.raises(EnvelopeRejected) as caught:
                parse_envelope(record.value)
            messages.append(caught.value.message)
    assert any("timezone" in m for m in messages)
    assert any("above the WAI-SR maximum 5" in m for m in messages)
    assert any("item 9 must be answered" in m for m in messages)


def test_json_flag_says_which_poison_can_travel_over_http(default_scenario: Scenario) -> None:
    for record in default_scenario.records:
        if record.json_ok:
            json.loads(record.value)  # intake's HTTP body must be able to carry it
        else:
            assert record.expected_code == "invalid_json"
            with pytest.raises(ValueError):
                json.loads(record.value.decode("utf-8"))


def test_too_large_stays_too_large_when_intake_reserialises_it(default_scenario: Scenario) -> None:
    (big,) = [r for r in default_scenario.poison_records if r.expected_code == "too_large"]
    compact = json.dumps(json.loads(big.value), separators=(",", ":"), ensure_ascii=False).encode()
    assert len(compact) > MAX_RECORD_BYTES


def test_truth_lists_every_poison_record_with_its_code(default_scenario: Scenario) -> None:
    truth = default_scenario.truth.dead_letters
    poison = default_scenario.poison_records
    assert [d.code for d in truth] == [r.expected_code for r in poison]
    assert {d.code for d in truth} == DEAD_LETTER_CODES
    for letter, record in zip(truth, poison, strict=True):
        assert letter.key == (None if record.key is None else record.key.decode())
        if letter.event_id is not None:
            assert letter.event_id.encode() in record.value
        assert letter.transport == ("any" if record.json_ok else "kafka_only")


def test_event_ids_are_unique_and_duplicates_are_byte_identical(default_scenario: Scenario) -> None:
    first = {}
    for record in default_scenario.records:
        if record.kind == "poison":
            continue
        if record.kind == "duplicate":
            assert first[record.event_id] == record.value  # re-sent after its original, unchanged
        else:
            assert record.event_id not in first
            first[record.event_id] = record.value
    counts = default_scenario.truth.deliveries
    assert counts["duplicates"] >= 25  # at least one EHR restart re-sends its last 25 records
    assert counts["first_sends"] == len(first)


def test_amendments_replace_an_earlier_response(default_scenario: Scenario) -> None:
    completed = set()
    amended = 0
    for record in default_scenario.records:
        if record.kind == "duplicate" or record.event_type != "questionnaire.completed":
            continue
        payload = json.loads(record.value)["payload"]
        if payload["status"] == "completed":
            completed.add(payload["response_id"])
        else:
            assert payload["response_id"] in completed
            amended += 1
    assert amended == default_scenario.truth.deliveries["amendments"] > 5


def test_client_refs_use_the_development_key(default_scenario: Scenario) -> None:
    key = DEV_PSEUDONYM_KEY.encode()
    for client in default_scenario.truth.clients:
        assert client.client_ref == client_ref(key, client.clinic_id, client.mrn)
    assert len({c.client_ref for c in default_scenario.truth.clients}) == 150
