"""The inbound EHR envelope and its dead letters (contract.md sections 2 and 4)."""

import base64
import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from attune_intake.domain.validation import parse_envelope
from attune_shared.events import (
    EHR_EVENT_TYPES,
    MAX_RECORD_BYTES,
    PAYLOAD_TYPES,
    ClinicianAssignedPayload,
    DeadLetter,
    DeadLetterOrigin,
    EhrEnvelope,
    EnvelopeRejected,
    QuestionnaireCompletedEnvelope,
    SessionMissedEnvelope,
)

# The header of contract.md section 2's example, verbatim.
HEADER: dict[str, Any] = {
    "event_id": "ehr-north:000123",
    "event_type": "questionnaire.completed",
    "schema_version": 1,
    "source": "ehr-north",
    "clinic_id": "north-01",
    "occurred_at": "2026-03-02T14:55:00+01:00",
}

# One concrete payload per event type, with every optional field filled in.
PAYLOADS: dict[str, dict[str, Any]] = {
    "client.referred": {
        "mrn": "MRN77",
        "referred_on": "2026-02-20",
        "clinician_id": "c-17",
        "birth_year": 1988,
        "preferred_language": "pt-BR",
        "interpreter_needed": True,
        "referral_source": "GP letter",
    },
    "clinician.assigned": {"mrn": "MRN77", "clinician_id": "c-17"},
    "appointment.scheduled": {
        "mrn": "MRN77",
        "appointment_id": "apt-881",
        "clinician_id": "c-17",
        "scheduled_start": "2026-03-09T10:00:00+01:00",
        "modality": "video",
    },
    "session.attended": {
        "mrn": "MRN77",
        "appointment_id": "apt-881",
        "clinician_id": "c-17",
        "modality": "in_person",
        "duration_minutes": 50,
    },
    "session.missed": {
        "mrn": "MRN77",
        "appointment_id": "apt-881",
        "clinician_id": "c-17",
        "modality": "phone",
        "reason": "no_show",
    },
    "session.cancelled": {
        "mrn": "MRN77",
        "appointment_id": "apt-881",
        "clinician_id": "c-17",
        "cancelled_by": "client",
        "hours_notice": 12.5,
    },
    "questionnaire.completed": {
        "mrn": "MRN77",
        "response_id": "resp-9001",
        "status": "completed",
        "instrument": "WAI-SR",
        "respondent": "client",
        "clinician_id": "c-17",
        "appointment_id": "apt-881",
        "items": [4, 4, 5, 3, 4, 4, 5, 4, 4, 3, 4, 4],
    },
    "episode.closed": {"mrn": "MRN77", "reason": "planned", "closed_on": "2026-06-30"},
}

OPTIONAL = {
    "client.referred": [
        "clinician_id",
        "birth_year",
        "preferred_language",
        "interpreter_needed",
        "referral_source",
    ],
    "session.attended": ["duration_minutes"],
    "session.cancelled": ["hours_notice"],
    "questionnaire.completed": ["appointment_id"],
}

ITEMS = {
    "WAI-SR": [4, 4, 5, 3, 4, 4, 5, 4, 4, 3, 4, 4],
    "SRS": [9.5, 9, 8.7, 10],
    "ORS": [5.5, 6, 4.2, 7],
    "PHQ-9": [1, 1, 0, 2, 1, 0, 1, 0, 0],
    "GAD-7": [1, 2, 1, 0, 1, 1, 0],
    "PSQ": [1, 3, 4],
}

DELETE = object()
NEXT_YEAR = datetime.now(UTC).year + 1


def envelope(event_type: str = "questionnaire.completed") -> dict[str, Any]:
    """A fresh, valid envelope of the type (the contract's header with a concrete payload)."""
    return {**copy.deepcopy(HEADER), "event_type": event_type, "payload": copy.deepcopy(PAYLOADS[event_type])}


def mutated(event_type: str, path: tuple[str, ...], value: object) -> dict[str, Any]:
    """A valid envelope with the field at `path` set to `value` (or removed, for DELETE)."""
    data = envelope(event_type)
    target = data
    for part in path[:-1]:
        target = target[part]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


def questionnaire(instrument: str, items: list[Any]) -> dict[str, Any]:
    data = envelope("questionnaire.completed")
    data["payload"].update(instrument=instrument, items=items)
    return data


def encode(data: object) -> bytes:
    return json.dumps(data).encode()


def rejection(raw: bytes) -> EnvelopeRejected:
    with pytest.raises(EnvelopeRejected) as caught:
        parse_envelope(raw)
    return caught.value


def loc_text(loc: list[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


# ---------------------------------------------------------------- the contract's examples validate


@pytest.mark.parametrize("event_type", EHR_EVENT_TYPES)
def test_the_contract_example_validates_with_each_payload(event_type: str) -> None:
    parsed = parse_envelope(encode(envelope(event_type)))
    assert isinstance(parsed, EhrEnvelope)
    assert isinstance(parsed.payload, PAYLOAD_TYPES[event_type])
    assert parsed.event_type == event_type
    assert parsed.event_id == "ehr-north:000123"
    assert parsed.occurred_at.utcoffset() is not None
    assert parsed.occurred_at == datetime(2026, 3, 2, 13, 55, tzinfo=UTC)


@pytest.mark.parametrize("event_type", EHR_EVENT_TYPES)
def test_every_payload_type_has_mrn_and_the_envelope_exposes_it_and_the_key(event_type: str) -> None:
    parsed = parse_envelope(encode(envelope(event_type)))
    assert parsed.mrn == "MRN77"
    assert parsed.kafka_key == "north-01:MRN77"


@pytest.mark.parametrize("event_type", EHR_EVENT_TYPES)
def test_an_envelope_round_trips_through_json(event_type: str) -> None:
    parsed = parse_envelope(encode(envelope(event_type)))
    assert parse_envelope(parsed.model_dump_json().encode()) == parsed


@pytest.mark.parametrize(("event_type", "field"), [(t, f) for t, fields in OPTIONAL.items() for f in fields])
def test_optional_payload_fields_may_be_left_out(event_type: str, field: str) -> None:
    parsed = parse_envelope(encode(mutated(event_type, ("payload", field), DELETE)))
    assert getattr(parsed.payload, field) is None


def test_the_parsed_envelope_is_the_typed_subclass() -> None:
    parsed = parse_envelope(encode(envelope("questionnaire.completed")))
    assert isinstance(parsed, QuestionnaireCompletedEnvelope)
    assert parsed.payload.items == PAYLOADS["questionnaire.completed"]["items"]


def test_payload_types_cover_exactly_the_eight_event_types() -> None:
    assert set(PAYLOAD_TYPES) == set(EHR_EVENT_TYPES)
    assert len(EHR_EVENT_TYPES) == 8


def test_an_envelope_is_frozen() -> None:
    parsed = parse_envelope(encode(envelope()))
    with pytest.raises(ValidationError):
        parsed.clinic_id = "south-02"  # type: ignore[misc]


def test_the_base_envelope_refuses_a_payload_of_another_type() -> None:
    with pytest.raises(ValidationError, match=r"not a session\.missed payload"):
        EhrEnvelope(
            event_id="e-1",
            event_type="session.missed",
            schema_version=1,
            source="ehr-north",
            clinic_id="north-01",
            occurred_at=datetime(2026, 3, 2, tzinfo=UTC),
            payload=ClinicianAssignedPayload(mrn="MRN77", clinician_id="c-17"),
        )


def test_integral_floats_on_an_integer_scale_are_stored_as_ints() -> None:
    parsed = parse_envelope(encode(questionnaire("PHQ-9", [1.0, 2, 0, 0, 0, 0, 0, 0, 0])))
    assert isinstance(parsed, QuestionnaireCompletedEnvelope)
    assert parsed.payload.items[0] == 1
    assert type(parsed.payload.items[0]) is int


# ---------------------------------------------------------------- accepted edge values


@pytest.mark.parametrize(
    ("event_type", "path", "value"),
    [
        pytest.param("session.missed", ("event_id",), "e" * 200, id="event_id-200"),
        pytest.param("session.missed", ("event_id",), "x", id="event_id-1"),
        pytest.param("session.missed", ("event_id",), "ehr north:é/1", id="event_id-space-unicode"),
        pytest.param("session.missed", ("source",), "s" * 64, id="source-64"),
        pytest.param("session.missed", ("clinic_id",), "A.b_c-9", id="clinic_id-charset"),
        pytest.param("session.missed", ("occurred_at",), "2026-03-02T13:55:00Z", id="occurred_at-Z"),
        pytest.param(
            "session.missed", ("occurred_at",), "2026-03-02T09:55:00.5-04:00", id="occurred_at-neg-offset"
        ),
        pytest.param("client.referred", ("payload", "birth_year"), 1900, id="birth_year-1900"),
        pytest.param("client.referred", ("payload", "birth_year"), NEXT_YEAR - 1, id="birth_year-this-year"),
        pytest.param("client.referred", ("payload", "birth_year"), None, id="birth_year-null"),
        pytest.param("client.referred", ("payload", "preferred_language"), "en", id="lang-en"),
        pytest.param("client.referred", ("payload", "preferred_language"), "zh-Hant-TW", id="lang-script"),
        pytest.param("client.referred", ("payload", "preferred_language"), "es-419", id="lang-un-region"),
        pytest.param("client.referred", ("payload", "preferred_language"), "de-CH-1901", id="lang-variant"),
        pytest.param("client.referred", ("payload", "preferred_language"), "x-klingon", id="lang-private"),
        pytest.param("client.referred", ("payload", "interpreter_needed"), False, id="interpreter-false"),
        pytest.param("session.attended", ("payload", "duration_minutes"), 1, id="duration-1"),
        pytest.param("session.attended", ("payload", "duration_minutes"), 600, id="duration-600"),
        pytest.param("session.cancelled", ("payload", "hours_notice"), 0, id="hours_notice-0"),
        pytest.param("session.cancelled", ("payload", "cancelled_by"), "clinic", id="cancelled_by-clinic"),
        pytest.param("session.missed", ("payload", "reason"), "late_cancel", id="reason-late_cancel"),
        pytest.param("questionnaire.completed", ("payload", "status"), "amended", id="status-amended"),
        pytest.param(
            "questionnaire.completed", ("payload", "respondent"), "clinician", id="respondent-clinician"
        ),
        pytest.param("episode.closed", ("payload", "reason"), "transferred", id="closed-transferred"),
    ],
)
def test_accepted_edge_values(event_type: str, path: tuple[str, ...], value: object) -> None:
    parse_envelope(encode(mutated(event_type, path, value)))


@pytest.mark.parametrize(
    ("instrument", "items"),
    [
        pytest.param(
            "WAI-SR", [None, 4, None, None, 4, 4, 4, 4, 4, 4, 4, 4], id="wai-sr-one-missing-per-subscale"
        ),
        pytest.param("SRS", [9.5, 9, 8.7, 10], id="srs-one-decimal"),
        pytest.param("ORS", [0, 0.1, 9.9, 10], id="ors-bounds"),
        pytest.param("PHQ-9", [1, 1, 0, 2, 1, 0, 1, 0, 0, 2], id="phq9-ten-items"),
        pytest.param("PHQ-9", [1, 1, 0, 2, 1, 0, 1, 0, 0, None], id="phq9-difficulty-null"),
        pytest.param("PHQ-9", [1, None, 0, 2, 1, 0, 1, 0, 0], id="phq9-one-of-1-8-missing"),
        pytest.param("GAD-7", [1, 2, None, 0, 1, 1, 0], id="gad7-one-missing"),
        pytest.param("PSQ", [0, 1, 5], id="psq"),
    ],
)
def test_accepted_items(instrument: str, items: list[Any]) -> None:
    parse_envelope(encode(questionnaire(instrument, items)))


def test_a_record_of_exactly_64_kib_is_accepted() -> None:
    data = envelope("client.referred")
    data["payload"]["referral_source"] = ""
    data["payload"]["referral_source"] = "r" * (MAX_RECORD_BYTES - len(encode(data)))
    raw = encode(data)
    assert len(raw) == 65536
    assert parse_envelope(raw).event_type == "client.referred"


# ---------------------------------------------------------------- one rejection per rule

V = "schema_violation"

REJECTIONS = [
    # envelope
    ("session.missed", ("event_id",), "", V, ["event_id"], "at least 1 character"),
    ("session.missed", ("event_id",), "e" * 201, V, ["event_id"], "at most 200 characters"),
    ("session.missed", ("event_id",), "ehr\x00north", V, ["event_id"], "printable"),
    ("session.missed", ("event_id",), "ehr\nnorth", V, ["event_id"], "printable"),
    ("session.missed", ("event_id",), 123, V, ["event_id"], "valid string"),
    ("session.missed", ("event_id",), DELETE, V, ["event_id"], "Field required"),
    ("session.missed", ("source",), "ehr north", V, ["source"], "pattern"),
    ("session.missed", ("source",), "", V, ["source"], "pattern"),
    ("session.missed", ("source",), "s" * 65, V, ["source"], "pattern"),
    ("session.missed", ("clinic_id",), "c" * 65, V, ["clinic_id"], "pattern"),
    ("session.missed", ("clinic_id",), "north/01", V, ["clinic_id"], '(got "north/01")'),
    ("session.missed", ("clinic_id",), DELETE, V, ["clinic_id"], "Field required"),
    ("session.missed", ("occurred_at",), "2026-03-02T14:55:00", V, ["occurred_at"], "timezone"),
    ("session.missed", ("occurred_at",), "yesterday", V, ["occurred_at"], "datetime"),
    ("session.missed", ("occurred_at",), 1772459700, V, ["occurred_at"], "datetime"),
    ("session.missed", ("schema_version",), 2, "unsupported_version", ["schema_version"], "schema_version 2"),
    ("session.missed", ("schema_version",), 0, "unsupported_version", ["schema_version"], "schema_version 0"),
    ("session.missed", ("schema_version",), "1", V, ["schema_version"], "integer 1"),
    ("session.missed", ("schema_version",), True, V, ["schema_version"], "integer 1"),
    ("session.missed", ("schema_version",), 1.0, V, ["schema_version"], "integer 1"),
    ("session.missed", ("schema_version",), DELETE, V, ["schema_version"], "Field required"),
    ("session.missed", ("event_type",), "foo", "unknown_event_type", ["event_type"], '"foo"'),
    (
        "session.missed",
        ("event_type",),
        "Session.Missed",
        "unknown_event_type",
        ["event_type"],
        "Session.Missed",
    ),
    ("session.missed", ("event_type",), 5, V, ["event_type"], "5"),
    ("session.missed", ("event_type",), DELETE, V, ["event_type"], "Field required"),
    ("session.missed", ("priority",), "high", V, ["priority"], "Extra inputs"),
    ("session.missed", ("payload",), DELETE, V, ["payload"], "Field required"),
    ("session.missed", ("payload",), [], V, ["payload"], None),
    # fields shared by payloads
    ("session.missed", ("payload", "mrn"), "", V, ["payload", "mrn"], "at least 1 character"),
    ("session.missed", ("payload", "mrn"), "M" * 65, V, ["payload", "mrn"], "at most 64 characters"),
    ("session.missed", ("payload", "mrn"), "MRN\x0777", V, ["payload", "mrn"], "printable"),
    (
        "clinician.assigned",
        ("payload", "clinician_id"),
        "c" * 65,
        V,
        ["payload", "clinician_id"],
        "at most 64",
    ),
    (
        "clinician.assigned",
        ("payload", "clinician_id"),
        DELETE,
        V,
        ["payload", "clinician_id"],
        "Field required",
    ),
    ("session.attended", ("payload", "appointment_id"), "", V, ["payload", "appointment_id"], "at least 1"),
    (
        "session.attended",
        ("payload", "appointment_id"),
        "a\tb",
        V,
        ["payload", "appointment_id"],
        "printable",
    ),
    # client.referred
    ("client.referred", ("payload", "referred_on"), "2026-02-30", V, ["payload", "referred_on"], "date"),
    ("client.referred", ("payload", "referred_on"), "20/02/2026", V, ["payload", "referred_on"], "date"),
    ("client.referred", ("payload", "referred_on"), DELETE, V, ["payload", "referred_on"], "Field required"),
    ("client.referred", ("payload", "clinician_id"), "", V, ["payload", "clinician_id"], "at least 1"),
    ("client.referred", ("payload", "birth_year"), 1899, V, ["payload", "birth_year"], "1900"),
    ("client.referred", ("payload", "birth_year"), NEXT_YEAR, V, ["payload", "birth_year"], "current year"),
    ("client.referred", ("payload", "birth_year"), "1980", V, ["payload", "birth_year"], "valid integer"),
    (
        "client.referred",
        ("payload", "preferred_language"),
        "en_US",
        V,
        ["payload", "preferred_language"],
        "pattern",
    ),
    (
        "client.referred",
        ("payload", "preferred_language"),
        "english",
        V,
        ["payload", "preferred_language"],
        None,
    ),
    ("client.referred", ("payload", "preferred_language"), "e", V, ["payload", "preferred_language"], None),
    ("client.referred", ("payload", "preferred_language"), "", V, ["payload", "preferred_language"], None),
    (
        "client.referred",
        ("payload", "interpreter_needed"),
        "yes",
        V,
        ["payload", "interpreter_needed"],
        "boolean",
    ),
    ("client.referred", ("payload", "referral_source"), 5, V, ["payload", "referral_source"], "string"),
    # appointment.scheduled
    (
        "appointment.scheduled",
        ("payload", "scheduled_start"),
        "2026-03-09T10:00:00",
        V,
        ["payload", "scheduled_start"],
        "timezone",
    ),
    ("appointment.scheduled", ("payload", "modality"), "car", V, ["payload", "modality"], '(got "car")'),
    ("appointment.scheduled", ("payload", "modality"), DELETE, V, ["payload", "modality"], "Field required"),
    # session.attended
    ("session.attended", ("payload", "modality"), "in-person", V, ["payload", "modality"], "'in_person'"),
    ("session.attended", ("payload", "duration_minutes"), 0, V, ["payload", "duration_minutes"], "(got 0)"),
    (
        "session.attended",
        ("payload", "duration_minutes"),
        601,
        V,
        ["payload", "duration_minutes"],
        "(got 601)",
    ),
    (
        "session.attended",
        ("payload", "duration_minutes"),
        50.5,
        V,
        ["payload", "duration_minutes"],
        "integer",
    ),
    (
        "session.attended",
        ("payload", "duration_minutes"),
        "50",
        V,
        ["payload", "duration_minutes"],
        "integer",
    ),
    # session.missed
    (
        "session.missed",
        ("payload", "reason"),
        "forgot",
        V,
        ["payload", "reason"],
        "'no_show' or 'late_cancel'",
    ),
    ("session.missed", ("payload", "modality"), "sms", V, ["payload", "modality"], None),
    # session.cancelled
    ("session.cancelled", ("payload", "cancelled_by"), "admin", V, ["payload", "cancelled_by"], "'clinic'"),
    ("session.cancelled", ("payload", "hours_notice"), -1, V, ["payload", "hours_notice"], "(got -1)"),
    ("session.cancelled", ("payload", "hours_notice"), "24", V, ["payload", "hours_notice"], "number"),
    # questionnaire.completed
    (
        "questionnaire.completed",
        ("payload", "response_id"),
        "r" * 65,
        V,
        ["payload", "response_id"],
        "at most 64",
    ),
    ("questionnaire.completed", ("payload", "status"), "draft", V, ["payload", "status"], "'amended'"),
    (
        "questionnaire.completed",
        ("payload", "instrument"),
        "BDI-II",
        V,
        ["payload", "instrument"],
        "'WAI-SR'",
    ),
    (
        "questionnaire.completed",
        ("payload", "respondent"),
        "parent",
        V,
        ["payload", "respondent"],
        "'clinician'",
    ),
    (
        "questionnaire.completed",
        ("payload", "appointment_id"),
        "",
        V,
        ["payload", "appointment_id"],
        "at least 1",
    ),
    ("questionnaire.completed", ("payload", "items"), "4,4,5", V, ["payload", "items"], "valid array"),
    ("questionnaire.completed", ("payload", "items"), DELETE, V, ["payload", "items"], "Field required"),
    # episode.closed
    ("episode.closed", ("payload", "reason"), "bored", V, ["payload", "reason"], "'unilateral'"),
    ("episode.closed", ("payload", "closed_on"), "2026-06-31", V, ["payload", "closed_on"], "date"),
    ("episode.closed", ("payload", "closed_on"), DELETE, V, ["payload", "closed_on"], "Field required"),
]


def _rejection_id(case: tuple[Any, ...]) -> str:
    event_type, path, value = case[:3]
    shown = "missing" if value is DELETE else repr(value)[:20]
    return f"{event_type}:{'.'.join(path)}={shown}"


@pytest.mark.parametrize(
    ("event_type", "path", "value", "code", "loc", "fragment"),
    [pytest.param(*case, id=_rejection_id(case)) for case in REJECTIONS],
)
def test_each_field_rule_rejects_with_the_field_named(
    event_type: str,
    path: tuple[str, ...],
    value: object,
    code: str,
    loc: list[str | int],
    fragment: str | None,
) -> None:
    rejected = rejection(encode(mutated(event_type, path, value)))
    assert rejected.code == code
    assert rejected.details[0]["loc"] == loc
    assert rejected.message.startswith(f"{loc_text(loc)}")
    if fragment is not None:
        assert fragment in rejected.message


@pytest.mark.parametrize(
    ("instrument", "items", "loc", "message"),
    [
        ("WAI-SR", [4] * 11, ["payload", "items"], "payload.items: WAI-SR expects 12 items, got 11"),
        (
            "WAI-SR",
            [4, 4, 4, 7, 4, 4, 4, 4, 4, 4, 4, 4],
            ["payload", "items", 3],
            "payload.items[3]: value 7 is above the WAI-SR maximum 5",
        ),
        ("WAI-SR", [4, 4, 4, 3.5, 4, 4, 4, 4, 4, 4, 4, 4], ["payload", "items", 3], "is not an integer"),
        ("WAI-SR", [4, 4, None, 4, None, 4, 4, 4, 4, 4, 4, 4], ["payload", "items", 4], "Bond subscale"),
        (
            "WAI-SR",
            [True, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4],
            ["payload", "items", 0],
            "value true is not a number",
        ),
        ("SRS", [9, 9, 9], ["payload", "items"], "SRS expects 4 items, got 3"),
        ("SRS", [9, 9, 9, 10.5], ["payload", "items", 3], "value 10.5 is above the SRS maximum 10"),
        ("SRS", [9, 9.25, 9, 9], ["payload", "items", 1], "value 9.25 has more than 1 decimal"),
        ("SRS", [9, 9, None, 9], ["payload", "items", 2], "SRS allows no missing item"),
        ("ORS", [5, 5, 5, 5, 5], ["payload", "items"], "ORS expects 4 items, got 5"),
        ("ORS", [5, -1, 5, 5], ["payload", "items", 1], "value -1 is below the ORS minimum 0"),
        ("ORS", [5, 5, 5, 5.55], ["payload", "items", 3], "has more than 1 decimal"),
        ("ORS", [None, 5, 5, 5], ["payload", "items", 0], "ORS allows no missing item"),
        ("PHQ-9", [0] * 8, ["payload", "items"], "PHQ-9 expects 9 or 10 items, got 8"),
        (
            "PHQ-9",
            [0, 0, 0, 0, 0, 0, 0, 0, 4],
            ["payload", "items", 8],
            "value 4 is above the PHQ-9 maximum 3",
        ),
        ("PHQ-9", [0, 0, 0, 0, 0, 0, 0, 0, 0.5], ["payload", "items", 8], "is not an integer"),
        ("PHQ-9", [0, 0, 0, 0, 0, 0, 0, 0, None], ["payload", "items", 8], "PHQ-9 item 9 must be answered"),
        ("PHQ-9", [None, 0, 0, None, 0, 0, 0, 0, 0], ["payload", "items", 3], "PHQ-9 items 1-8"),
        ("GAD-7", [0] * 8, ["payload", "items"], "GAD-7 expects 7 items, got 8"),
        ("GAD-7", [0, 0, 0, 0, 0, 0, 9], ["payload", "items", 6], "value 9 is above the GAD-7 maximum 3"),
        ("GAD-7", [0, 0, 1.5, 0, 0, 0, 0], ["payload", "items", 2], "is not an integer"),
        ("GAD-7", [None, 0, 0, 0, 0, None, 0], ["payload", "items", 5], "GAD-7 allows at most 1"),
        ("PSQ", [1, 3, 4, 5], ["payload", "items"], "PSQ expects 3 items, got 4"),
        ("PSQ", [2, 3, 4], ["payload", "items", 0], "value 2 is above the PSQ item 1 maximum 1"),
        ("PSQ", [1, 3, 4.5], ["payload", "items", 2], "is not an integer"),
        ("PSQ", [1, None, 4], ["payload", "items", 1], "PSQ allows no missing item"),
    ],
)
def test_each_instrument_rule_rejects_naming_the_item(
    instrument: str, items: list[Any], loc: list[str | int], message: str
) -> None:
    rejected = rejection(encode(questionnaire(instrument, items)))
    assert rejected.code == "schema_violation"
    assert rejected.details[0]["loc"] == loc
    assert rejected.message.startswith(loc_text(loc))
    assert message in rejected.message


def test_the_contract_dead_letter_message_is_produced_verbatim() -> None:
    rejected = rejection(encode(questionnaire("WAI-SR", [4, 4, 4, 7, 4, 4, 4, 4, 4, 4, 4, 4])))
    assert rejected.message == "payload.items[3]: value 7 is above the WAI-SR maximum 5"
    assert rejected.details == [{"loc": ["payload", "items", 3], "msg": rejected.message}]


@pytest.mark.parametrize("event_type", EHR_EVENT_TYPES)
def test_unknown_payload_fields_are_rejected_without_quoting_them(event_type: str) -> None:
    rejected = rejection(encode(mutated(event_type, ("payload", "patient_name"), "Jane Doe")))
    assert rejected.code == "schema_violation"
    assert rejected.details[0]["loc"] == ["payload", "patient_name"]
    assert "Jane Doe" not in rejected.message


@pytest.mark.parametrize("event_type", EHR_EVENT_TYPES)
def test_a_payload_without_mrn_is_rejected(event_type: str) -> None:
    rejected = rejection(encode(mutated(event_type, ("payload", "mrn"), DELETE)))
    assert rejected.code == "schema_violation"
    assert ["payload", "mrn"] in [d["loc"] for d in rejected.details]


@pytest.mark.parametrize(
    ("path", "value"),
    [(("payload", "mrn"), "MRN\x0777"), (("payload", "mrn"), "M" * 65), (("payload", "birth_year"), 1899)],
)
def test_phi_values_are_not_quoted_in_the_message(path: tuple[str, ...], value: object) -> None:
    rejected = rejection(encode(mutated("client.referred", path, value)))
    assert json.dumps(value) not in rejected.message
    assert str(value) not in rejected.message


def test_a_payload_of_another_type_is_a_schema_violation() -> None:
    data = envelope("session.missed")
    data["payload"] = PAYLOADS["clinician.assigned"]
    rejected = rejection(encode(data))
    assert rejected.code == "schema_violation"
    assert ["payload", "appointment_id"] in [d["loc"] for d in rejected.details]


def test_an_unsupported_version_wins_over_an_unknown_event_type() -> None:
    data = {**envelope(), "schema_version": 2, "event_type": "client.merged"}
    assert rejection(encode(data)).code == "unsupported_version"


def test_an_unknown_event_type_is_classified_even_if_other_fields_are_wrong() -> None:
    data = {**envelope(), "event_type": "client.merged", "source": "bad source", "payload": {"x": 1}}
    assert rejection(encode(data)).code == "unknown_event_type"


# ---------------------------------------------------------------- whole-record rejections


def test_a_record_over_64_kib_is_too_large() -> None:
    data = envelope("client.referred")
    data["payload"]["referral_source"] = ""
    data["payload"]["referral_source"] = "r" * (MAX_RECORD_BYTES + 1 - len(encode(data)))
    raw = encode(data)
    assert len(raw) == 65537
    assert rejection(raw).code == "too_large"


def test_size_is_checked_before_anything_else() -> None:
    assert rejection(b"\xff" * (MAX_RECORD_BYTES + 1)).code == "too_large"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"{", id="truncated"),
        pytest.param(b"", id="empty"),
        pytest.param(b"{'a': 1}", id="python-repr"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(json.dumps(envelope()).encode("utf-16"), id="utf-16"),
    ],
)
def test_invalid_json(raw: bytes) -> None:
    assert rejection(raw).code == "invalid_json"


def test_a_valid_envelope_in_latin_1_is_invalid_json() -> None:
    data = envelope("client.referred")
    data["payload"]["referral_source"] = "Dr Müller"
    raw = json.dumps(data, ensure_ascii=False).encode("latin-1")
    assert rejection(raw).code == "invalid_json"
    assert parse_envelope(json.dumps(data, ensure_ascii=False).encode()).mrn == "MRN77"


@pytest.mark.parametrize("raw", [b"[]", b'"x"', b"1", b"null", b"true", encode([envelope()])])
def test_json_that_is_not_an_object(raw: bytes) -> None:
    assert rejection(raw).code == "not_an_object"


# ---------------------------------------------------------------- dead letters

DEAD_LETTER_EXAMPLE: dict[str, Any] = {
    # contract.md section 4, with the "uuid" placeholder replaced by a uuid.
    "dlq_id": "2f0c9a4e-1b7d-5c3a-9e8f-6a5b4c3d2e1f",
    "received_at": "2026-03-02T14:55:01.120+00:00",
    "origin": {"topic": "ehr.events.v1", "partition": 3, "offset": 1882, "key": "north-01:MRN77"},
    "raw": 'the original value as text (base64 with "raw_encoding": "base64" when not UTF-8)',
    "error": {
        "code": "schema_violation",
        "message": "payload.items[3]: value 7 is above the WAI-SR maximum 5",
        "details": [{"loc": ["payload", "items", 3], "msg": "..."}],
    },
}
RECEIVED = datetime(2026, 3, 2, 13, 55, 1, 120000, tzinfo=UTC)
KAFKA_ORIGIN = DeadLetterOrigin(topic="ehr.events.v1", partition=3, offset=1882, key="north-01:MRN77")


def test_the_contract_dead_letter_example_validates_and_round_trips() -> None:
    letter = DeadLetter.model_validate_json(json.dumps(DEAD_LETTER_EXAMPLE))
    assert letter.raw_encoding is None
    assert letter.error.details[0]["loc"] == ["payload", "items", 3]
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param(("received_at",), "2026-03-02T14:55:01", id="naive-received_at"),
        pytest.param(("error", "code"), "oops", id="unknown-code"),
        pytest.param(("dlq_id",), "uuid", id="placeholder-id"),
        pytest.param(("raw_encoding",), "hex", id="raw_encoding"),
        pytest.param(("origin", "partition"), None, id="partition-without-offset"),
        pytest.param(("origin", "offset"), -1, id="negative-offset"),
        pytest.param(("note",), "x", id="extra"),
    ],
)
def test_invalid_dead_letters_are_rejected(path: tuple[str, ...], value: object) -> None:
    data = copy.deepcopy(DEAD_LETTER_EXAMPLE)
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    with pytest.raises(ValidationError) as caught:
        DeadLetter.model_validate_json(json.dumps(data))
    assert caught.value.errors()[0]["loc"][: len(path) - 1] == path[:-1]


def test_an_http_origin_has_no_partition_or_offset() -> None:
    DeadLetterOrigin(topic="http", partition=None, offset=None, key=None)
    with pytest.raises(ValidationError, match="http"):
        DeadLetterOrigin(topic="ehr.events.v1", partition=None, offset=None)


def test_from_rejection_keeps_utf8_raw_as_text() -> None:
    raw = encode(questionnaire("WAI-SR", [4, 4, 4, 7, 4, 4, 4, 4, 4, 4, 4, 4]))
    rejected = rejection(raw)
    letter = DeadLetter.from_rejection(
        raw, KAFKA_ORIGIN, rejected.code, rejected.message, rejected.details, RECEIVED
    )
    assert letter.raw == raw.decode()
    assert letter.raw_encoding is None
    assert letter.error.code == "schema_violation"
    assert letter.error.details == [{"loc": ["payload", "items", 3], "msg": rejected.message}]
    assert letter.raw_bytes() == raw
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter


def test_from_rejection_keeps_non_utf8_raw_as_base64() -> None:
    raw = b"\xff\xfe{not json"
    rejected = rejection(raw)
    letter = DeadLetter.from_rejection(raw, KAFKA_ORIGIN, rejected.code, rejected.message, [], RECEIVED)
    assert letter.raw_encoding == "base64"
    assert base64.b64decode(letter.raw) == raw
    assert letter.raw_bytes() == raw


def test_from_rejection_derives_the_same_id_for_the_same_kafka_record() -> None:
    def letter(offset: int) -> DeadLetter:
        origin = KAFKA_ORIGIN.model_copy(update={"offset": offset})
        return DeadLetter.from_rejection(b"{", origin, "invalid_json", "m", [], RECEIVED)

    assert letter(1882).dlq_id == letter(1882).dlq_id
    assert letter(1882).dlq_id != letter(1883).dlq_id


def test_from_rejection_accepts_an_http_origin() -> None:
    origin = DeadLetterOrigin(topic="http", key="north-01:MRN77")
    letter = DeadLetter.from_rejection(b"[]", origin, "not_an_object", "m", [], RECEIVED)
    assert letter.origin.partition is None
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter


def test_a_session_missed_envelope_class_is_importable_for_typed_handlers() -> None:
    parsed = parse_envelope(encode(envelope("session.missed")))
    assert isinstance(parsed, SessionMissedEnvelope)
    assert parsed.payload.reason == "no_show"


def test_a_nul_in_a_sent_key_is_escaped_in_the_dead_letters_details() -> None:
    """PostgreSQL (the local store) cannot hold U+0000: a location naming a key that holds one is
    kept with the NUL written as `\\u0000`, so the dead letter can be stored (and read)."""
    from attune_intake.domain.validation import parse_envelope
    from attune_shared.events import EnvelopeRejected, record_key

    raw = b'{"event_id": "e1", "event_type": "client.referred", "schema_version": 1, "a\\u0000b": 1}'
    with pytest.raises(EnvelopeRejected) as caught:
        parse_envelope(raw)
    text = json.dumps(caught.value.details)
    assert "\\u0000" in text and "\x00" not in "".join(str(p) for d in caught.value.details for p in d["loc"])
    assert record_key(b"north-01:\x00") == "north-01:\\u0000" and record_key(None) is None
