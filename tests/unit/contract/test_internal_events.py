"""The PHI-free internal events and the alert events (contract.md sections 1, 5 and 6)."""

import json
import types
import typing
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from attune_shared.events import (
    ALERT_EVENT_TYPES,
    CARE_EVENT_TYPES,
    EVENT_TYPES_BY_TOPIC,
    Alert,
    AlertEvent,
    AppointmentScheduled,
    CareEvent,
    ChangeFromIntake,
    ClientReferred,
    ClinicianAssigned,
    EpisodeClosed,
    EpisodeOpened,
    InternalEvent,
    MeasureScored,
    ResponseSubmitted,
    SeriesContext,
    SessionAttended,
    SessionCancelled,
    SessionMissed,
    Topics,
    parse_internal,
)
from attune_shared.ids import client_ref, derived_id
from tests.support.ids import ap, ep, ev, rs

REF = client_ref(b"test-key", "north-01", "MRN77")
AT = datetime(2026, 3, 2, 14, 55, tzinfo=timezone(timedelta(hours=1)))
COMMON: dict[str, Any] = {
    "occurred_at": AT,
    "source": "ehr-north",
    "source_event_id": ev("ehr-north:000123"),
    "clinic_id": "north-01",
    "client_ref": REF,
    "episode_id": ep("7f3a"),
}

SPECIFIC: dict[type[InternalEvent], dict[str, Any]] = {
    EpisodeOpened: {"opened_on": date(2026, 2, 20), "clinician_id": "c-17"},
    ClientReferred: {
        "referred_on": date(2026, 2, 20),
        "clinician_id": "c-17",
        "preferred_language": "pt-BR",
        "interpreter_needed": True,
    },
    ClinicianAssigned: {"clinician_id": "c-17"},
    AppointmentScheduled: {
        "appointment_id": ap("apt-881"),
        "clinician_id": "c-17",
        "scheduled_start": AT + timedelta(days=7),
        "modality": "video",
    },
    SessionAttended: {
        "appointment_id": ap("apt-881"),
        "clinician_id": "c-17",
        "modality": "in_person",
        "duration_minutes": 50,
    },
    SessionMissed: {
        "appointment_id": ap("apt-881"),
        "clinician_id": "c-17",
        "modality": "phone",
        "reason": "late_cancel",
    },
    SessionCancelled: {
        "appointment_id": ap("apt-881"),
        "clinician_id": "c-17",
        "cancelled_by": "client",
        "hours_notice": 2.5,
    },
    EpisodeClosed: {"reason": "mutual", "closed_on": date(2026, 6, 30)},
    ResponseSubmitted: {
        "response_id": rs("resp-9001"),
        "status": "completed",
        "instrument": "WAI-SR",
        "respondent": "client",
        "clinician_id": "c-17",
        "appointment_id": ap("apt-881"),
        "appointment_start": AT,
        "items": [4, 4, 5, None, 4, 4, 5, 4, 4, 3, 4, 4],
    },
    MeasureScored: {
        "response_id": rs("resp-9001"),
        "revision": 2,
        "status": "amended",
        "instrument": "WAI-SR",
        "respondent": "client",
        "clinician_id": "c-17",
        "appointment_id": ap("apt-881"),
        "session_at": AT,
        "scores": {"mean": 3.9, "total": 47, "bond": 4.25, "prorated": True, "band": "ok", "goal": None},
        "change": ChangeFromIntake(
            intake_response_id=rs("resp-1"),
            intake_score=14,
            change=7,
            reliable_improvement=False,
            reliable_deterioration=True,
            threshold=6,
        ),
        "series": SeriesContext(
            series_key="WAI-SR",
            score=2.9,
            position=5,
            earlier_count=4,
            earlier_response_ids=[rs("resp-1"), rs("resp-2"), rs("resp-3"), rs("resp-4")],
            mu=4.1,
            sd_within=0.2,
            sd_eff=0.3,
            drop=4.0,
        ),
        "rule_versions": {"score.wai-sr": 1},
    },
}
CLASSES = list(SPECIFIC)


def build(cls: type[InternalEvent], **overrides: Any) -> InternalEvent:
    fields = {
        **COMMON,
        "event_id": derived_id(cls.event_type, "ehr-north:000123"),
        **SPECIFIC[cls],
        **overrides,
    }
    return cls(**fields)


def alert(**overrides: Any) -> Alert:
    fields: dict[str, Any] = {
        "alert_id": derived_id("alert", ep("7f3a"), "alliance.rupture"),
        "clinic_id": "north-01",
        "clinician_id": "c-17",
        "client_ref": REF,
        "episode_id": ep("7f3a"),
        "rule_id": "alliance.rupture",
        "rule_version": 1,
        "severity": "high",
        "status": "open",
        "title": "Possible alliance rupture",
        "evidence": {"instrument": "WAI-SR", "score": 2.9, "baseline": 4.1, "drop_sd": 2.4},
        "suggested_action": "Review the alliance with the client at the next session.",
        "raised_at": AT,
        **overrides,
    }
    return Alert(**fields)


# contract.md section 5 with concrete values for "uuid", "...", "cr_7K2Q...", "ep_..." and "urgent|high|normal".
ALERT_EXAMPLE = {
    "event_id": "0b7c6a2e-4f1d-5e8a-9c3b-2d1e0f9a8b7c",
    "event_type": "alert.raised",
    "occurred_at": "2026-03-02T14:55:02Z",
    "alert": {
        "alert_id": "6d5c4b3a-2e1f-5a9b-8c7d-6e5f4a3b2c1d",
        "clinic_id": "north-01",
        "clinician_id": "c-17",
        "client_ref": "cr_7K2QABCDEFGHIJKLMNOPQRSTUV",
        "episode_id": "ep_7F3AABCDEFGHIJKLMNOPQRSTUV",
        "rule_id": "alliance.rupture",
        "rule_version": 1,
        "severity": "high",
        "status": "open",
        "title": "Possible alliance rupture",
        "evidence": {"instrument": "WAI-SR", "score": 2.9, "baseline": 4.1, "drop_sd": 2.4},
        "suggested_action": "Review the alliance with the client at the next session.",
        "raised_at": "2026-03-02T14:55:02Z",
        "acknowledged_at": None,
        "acknowledged_by": None,
        "resolved_at": None,
        "resolution": None,
        "escalation_level": 0,
    },
}


# ---------------------------------------------------------------- shapes and round trips


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_an_internal_event_round_trips_through_json(cls: type[InternalEvent]) -> None:
    event = build(cls)
    raw = event.model_dump_json().encode()
    assert cls.model_validate_json(raw) == event
    parsed = parse_internal(raw)
    assert type(parsed) is cls
    assert parsed == event


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_each_class_knows_its_event_type_topic_and_key(cls: type[InternalEvent]) -> None:
    event = build(cls)
    assert event.event_type == cls.event_type
    assert EVENT_TYPES_BY_TOPIC[cls.topic][cls.event_type] is cls
    assert event.kafka_key == REF
    assert event.schema_version == 1


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_internal_events_are_frozen(cls: type[InternalEvent]) -> None:
    event = build(cls)
    with pytest.raises(ValidationError):
        event.clinic_id = "south-02"  # type: ignore[misc]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_internal_events_reject_extra_fields(cls: type[InternalEvent]) -> None:
    data = json.loads(build(cls).model_dump_json())
    data["mrn"] = "MRN77"
    with pytest.raises(ValidationError) as caught:
        cls.model_validate_json(json.dumps(data))
    assert [(e["type"], e["loc"]) for e in caught.value.errors()] == [("extra_forbidden", ("mrn",))]
    with pytest.raises(ValidationError):
        parse_internal(json.dumps(data).encode())


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("occurred_at", "2026-03-02T14:55:00"),
        ("event_id", "not-a-uuid"),
        ("client_ref", "cr_short"),
        ("client_ref", "MRN77"),
        ("clinic_id", "north 01"),
        ("schema_version", 2),
        ("episode_id", ""),
        # EHR identifiers travel only as their keyed pseudonyms (contract section 6).
        ("source_event_id", "ehr-north:000123"),
        ("source_event_id", ap("ehr-north:000123")),  # a pseudonym of another kind
        ("source_event_id", ev("x").lower()),
        ("episode_id", "ep_7f3a"),
        ("episode_id", rs("7f3a")),
    ],
)
def test_common_field_rules(cls: type[InternalEvent], field: str, value: object) -> None:
    data = json.loads(build(cls).model_dump_json())
    data[field] = value
    with pytest.raises(ValidationError) as caught:
        parse_internal(json.dumps(data).encode())
    assert caught.value.errors()[0]["loc"][1] == field  # [0] is the union's tag


@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [
        (SessionAttended, "duration_minutes", 0),
        (SessionAttended, "modality", "car"),
        (SessionMissed, "reason", "forgot"),
        (SessionCancelled, "hours_notice", -1),
        (SessionCancelled, "cancelled_by", "admin"),
        (AppointmentScheduled, "scheduled_start", "2026-03-09T10:00:00"),
        (ClientReferred, "preferred_language", "en_US"),
        (EpisodeClosed, "reason", "bored"),
        (ResponseSubmitted, "appointment_start", "2026-03-02T14:55:00"),
        (ResponseSubmitted, "items", [4] * 11),
        (ResponseSubmitted, "items", [4, 4, None, 4, None, 4, 4, 4, 4, 4, 4, 4]),
        (ResponseSubmitted, "status", "draft"),
        (MeasureScored, "revision", 0),
        (MeasureScored, "session_at", "2026-03-02T14:55:00"),
        (MeasureScored, "rule_versions", {"score.wai-sr": 0}),
        (MeasureScored, "instrument", "BDI-II"),
        (AppointmentScheduled, "appointment_id", "apt-881"),
        (SessionAttended, "appointment_id", "MRN77-apt-881"),
        (SessionMissed, "appointment_id", rs("apt-881")),
        (SessionCancelled, "appointment_id", "apt-881"),
        (ResponseSubmitted, "response_id", "resp-9001"),
        (ResponseSubmitted, "response_id", ap("resp-9001")),
        (ResponseSubmitted, "appointment_id", "apt-881"),
        (MeasureScored, "response_id", "resp-9001"),
        (MeasureScored, "appointment_id", "apt-881"),
    ],
)
def test_specific_field_rules(cls: type[InternalEvent], field: str, value: object) -> None:
    data = json.loads(build(cls).model_dump_json())
    data[field] = value
    with pytest.raises(ValidationError) as caught:
        cls.model_validate_json(json.dumps(data))
    assert caught.value.errors()[0]["loc"][0] == field


def test_scores_keep_their_json_types() -> None:
    event = build(MeasureScored)
    parsed = parse_internal(event.model_dump_json().encode())
    assert isinstance(parsed, MeasureScored)
    assert type(parsed.scores["total"]) is int
    assert type(parsed.scores["mean"]) is float
    assert parsed.scores["prorated"] is True
    assert parsed.scores["goal"] is None
    assert parsed.superseded is False
    assert parsed.series is not None and parsed.series.earlier_response_ids[0] == rs("resp-1")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("change", "intake_response_id"), "resp-1"),
        (("series", "earlier_response_ids", 1), "resp-2"),
        (("series", "earlier_response_ids", 0), ep("resp-1")),
    ],
)
def test_nested_response_ids_are_pseudonyms_too(path: tuple[str | int, ...], value: str) -> None:
    data = json.loads(build(MeasureScored).model_dump_json())
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    with pytest.raises(ValidationError) as caught:
        MeasureScored.model_validate_json(json.dumps(data))
    assert caught.value.errors()[0]["loc"] == path


def test_optional_measure_context_may_be_absent() -> None:
    event = build(MeasureScored, change=None, series=None, appointment_id=None, superseded=True)
    assert parse_internal(event.model_dump_json().encode()) == event


def test_nested_context_models_forbid_extra_fields() -> None:
    with pytest.raises(ValidationError):
        SeriesContext.model_validate(
            {
                "series_key": "SRS",
                "score": 30,
                "position": 1,
                "earlier_count": 0,
                "earlier_response_ids": [],
                "x": 1,
            }
        )


# ---------------------------------------------------------------- no PHI in internal models

PHI_FIELDS = {"mrn", "birth_year", "referral_source", "name", "birth_date"}


def _field_names(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set[str]:
    """Every field name of the model and of any model nested in its annotations."""
    seen = set() if seen is None else seen
    if model in seen:
        return set()
    seen.add(model)
    names = set(model.model_fields)
    for field in model.model_fields.values():
        for nested in _models_in(field.annotation):
            names |= _field_names(nested, seen)
    return names


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or args:
        return [m for arg in args for m in _models_in(arg)]
    return []


def test_the_phi_walk_finds_a_nested_mrn() -> None:
    class Leaky(BaseModel):
        mrn: str

    class Outer(BaseModel):
        inner: dict[str, list[Leaky | None]]

    assert "mrn" in _field_names(Outer)


@pytest.mark.parametrize("cls", [*CLASSES, AlertEvent], ids=lambda c: c.__name__)
def test_no_internal_model_has_a_phi_field(cls: type[BaseModel]) -> None:
    names = _field_names(cls)
    assert names & PHI_FIELDS == set()
    assert "client_ref" in names


# ---------------------------------------------------------------- dispatch


def test_care_event_types_map_each_care_event_type_to_its_class() -> None:
    assert set(CARE_EVENT_TYPES) == {
        "episode.opened",
        "client.referred",
        "clinician.assigned",
        "appointment.scheduled",
        "session.attended",
        "session.missed",
        "session.cancelled",
        "episode.closed",
    }
    for event_type, cls in CARE_EVENT_TYPES.items():
        assert issubclass(cls, CareEvent)
        assert cls.event_type == event_type
        assert cls.topic == Topics.CARE


def test_every_topic_has_its_event_types() -> None:
    assert set(EVENT_TYPES_BY_TOPIC) == {Topics.CARE, Topics.MEASURES, Topics.ALERTS}
    # The care topic is intake's whole canonical stream; measures forwards the care events.
    assert EVENT_TYPES_BY_TOPIC[Topics.CARE] == {**CARE_EVENT_TYPES, "response.submitted": ResponseSubmitted}
    assert EVENT_TYPES_BY_TOPIC[Topics.MEASURES] == {"measure.scored": MeasureScored, **CARE_EVENT_TYPES}
    assert EVENT_TYPES_BY_TOPIC[Topics.ALERTS] == dict.fromkeys(ALERT_EVENT_TYPES, AlertEvent)
    assert ResponseSubmitted.topic == Topics.CARE
    assert MeasureScored.topic == Topics.MEASURES
    assert AlertEvent.topic == Topics.ALERTS


def test_topic_names() -> None:
    assert (
        Topics.EHR_EVENTS,
        Topics.EHR_DLQ,
        Topics.CARE,
        Topics.MEASURES,
        Topics.ALERTS,
        Topics.MEASURES_DLQ,
    ) == (
        "ehr.events.v1",
        "ehr.events.dlq.v1",
        "clinic.care.v1",
        "clinic.measures.v1",
        "clinic.alerts.v1",
        "clinic.measures.dlq.v1",
    )


def test_parse_internal_dispatches_on_event_type() -> None:
    attended = json.loads(build(SessionAttended).model_dump_json())
    assert type(parse_internal(json.dumps(attended).encode())) is SessionAttended
    # The same body labelled as a missed session must meet SessionMissed's rules (it lacks a reason).
    attended["event_type"] = "session.missed"
    with pytest.raises(ValidationError) as caught:
        parse_internal(json.dumps(attended).encode())
    assert ("session.missed", "reason") in [e["loc"] for e in caught.value.errors()]


@pytest.mark.parametrize("event_type", ["session.rescheduled", None])
def test_parse_internal_rejects_an_unknown_or_missing_event_type(event_type: str | None) -> None:
    data = json.loads(build(SessionAttended).model_dump_json())
    data["event_type"] = event_type
    with pytest.raises(ValidationError):
        parse_internal(json.dumps(data).encode())


def test_parse_internal_rejects_an_envelope_from_the_ehr() -> None:
    envelope = {
        "event_id": "e-1",
        "event_type": "questionnaire.completed",
        "schema_version": 1,
        "payload": {},
    }
    with pytest.raises(ValidationError):
        parse_internal(json.dumps(envelope).encode())


# ---------------------------------------------------------------- alerts


def test_the_contract_alert_example_validates_and_round_trips() -> None:
    event = AlertEvent.model_validate_json(json.dumps(ALERT_EXAMPLE))
    assert event.kafka_key == "cr_7K2QABCDEFGHIJKLMNOPQRSTUV"
    assert event.alert.evidence["drop_sd"] == 2.4
    dumped = json.loads(event.model_dump_json())
    # triggered_at is an additive optional field the contract's example predates: null when absent.
    assert dumped["alert"].pop("triggered_at") is None
    assert dumped == json.loads(json.dumps(ALERT_EXAMPLE))
    assert parse_internal(event.model_dump_json().encode()) == event


@pytest.mark.parametrize("event_type", ALERT_EVENT_TYPES)
@pytest.mark.parametrize("severity", ["urgent", "high", "normal"])
def test_every_alert_event_type_and_severity_is_accepted(event_type: str, severity: str) -> None:
    data = json.loads(json.dumps(ALERT_EXAMPLE))
    data["event_type"] = event_type
    data["alert"]["severity"] = severity
    parsed = parse_internal(json.dumps(data).encode())
    assert isinstance(parsed, AlertEvent)
    assert parsed.event_type == event_type


@pytest.mark.parametrize(
    "resolution", ["repaired", "re_engaged", "episode_ended", "addressed", "false_positive"]
)
def test_a_resolved_alert_carries_its_resolution(resolution: str) -> None:
    resolved = alert(
        status="resolved", resolution=resolution, resolved_at=AT, acknowledged_at=AT, acknowledged_by="u1"
    )
    event = AlertEvent(event_id=derived_id("x"), event_type="alert.resolved", occurred_at=AT, alert=resolved)
    assert AlertEvent.model_validate_json(event.model_dump_json()) == event


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("event_type",), "alert.deleted"),
        (("occurred_at",), "2026-03-02T14:55:02"),
        (("event_id",), "uuid"),
        (("alert", "severity"), "low"),
        (("alert", "status"), "closed"),
        (("alert", "resolution"), "fixed"),
        (("alert", "escalation_level"), -1),
        (("alert", "rule_version"), 0),
        (("alert", "client_ref"), "MRN77"),
        (("alert", "episode_id"), "ep_7f3a"),
        (("alert", "episode_id"), "MRN77"),
        (("alert", "raised_at"), "2026-03-02T14:55:02"),
        (("alert", "mrn"), "MRN77"),
        (("alert", "resolution"), "addressed"),  # set while the alert is still open
    ],
)
def test_alert_field_rules(path: tuple[str, ...], value: object) -> None:
    data = json.loads(json.dumps(ALERT_EXAMPLE))
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    with pytest.raises(ValidationError) as caught:
        AlertEvent.model_validate_json(json.dumps(data))
    assert caught.value.errors()[0]["loc"][: len(path) - 1] == path[:-1]


def test_a_resolved_alert_without_a_resolution_is_rejected() -> None:
    with pytest.raises(ValidationError, match="resolution"):
        alert(status="resolved", resolved_at=AT)


def test_an_alert_is_frozen_and_keyed_by_client_ref() -> None:
    event = AlertEvent(event_id=derived_id("e"), event_type="alert.raised", occurred_at=AT, alert=alert())
    assert event.kafka_key == REF
    with pytest.raises(ValidationError):
        event.alert.status = "resolved"  # type: ignore[misc]


def test_a_naive_datetime_is_rejected_when_built_in_python() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        build(SessionAttended, occurred_at=datetime(2026, 3, 2, 14, 55))
    assert (
        build(SessionAttended, occurred_at=datetime(2026, 3, 2, 13, 55, tzinfo=UTC)).occurred_at.tzinfo is UTC
    )
