"""occurred_at: an EHR clock years off is accepted, a timestamp no time of care can have is a dead letter.

A sentinel such as 0001-01-01 or 9999-12-31, or an offset that pushes one past what a UTC timestamp can
hold, used to pass intake and then stop measures (OverflowError turning it into a BSON date) and alerts
(21 days before it) on their partitions for ever (tests/faults/test_infra_faults.py found it).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from attune_intake.domain.validation import parse_envelope
from attune_shared.events import EnvelopeRejected


def _raw(at: str) -> bytes:
    return json.dumps(
        {
            "event_id": "ehr-x:1",
            "event_type": "session.attended",
            "schema_version": 1,
            "source": "ehr-x",
            "clinic_id": "north-01",
            "occurred_at": at,
            "payload": {"mrn": "M1", "appointment_id": "a1", "clinician_id": "c1", "modality": "video"},
        }
    ).encode()


@pytest.mark.parametrize(
    "at",
    [
        "1900-01-01T00:00:00+00:00",  # the first instant accepted
        "1899-12-31T23:00:00-05:00",  # 1900-01-01T04:00Z
        "1970-01-01T00:00:00Z",  # an unset clock
        "2062-03-02T14:55:00+01:00",  # a wrong year
        "2999-12-31T23:59:59.999999+00:00",  # the last instant accepted
    ],
)
def test_a_clock_years_off_is_accepted_and_its_instant_kept(at: str) -> None:
    env = parse_envelope(_raw(at))
    assert env.occurred_at == datetime.fromisoformat(at)
    # what measures and alerts do with it works: a UTC date, and days either side
    utc = env.occurred_at.astimezone(UTC)
    assert utc - timedelta(days=366) < utc < utc + timedelta(days=366)


@pytest.mark.parametrize(
    "at",
    [
        "0001-01-01T00:00:00+00:00",  # a "min date" sentinel
        "9999-12-31T23:59:59+00:00",  # a "max date" sentinel
        "9999-12-31T23:59:59-14:00",  # after 9999-12-31 in UTC
        "0001-01-01T00:00:00+14:00",  # before 0001-01-01 in UTC
        "1899-12-31T23:59:59+00:00",
        "3000-01-01T00:00:00+00:00",
    ],
)
def test_an_instant_out_of_range_is_a_schema_violation_naming_occurred_at(at: str) -> None:
    with pytest.raises(EnvelopeRejected) as caught:
        parse_envelope(_raw(at))
    assert caught.value.code == "schema_violation"
    assert caught.value.details[0]["loc"] == ["occurred_at"]


def test_the_instant_not_the_wall_time_decides() -> None:
    assert parse_envelope(_raw("3000-01-01T13:00:00+14:00")).occurred_at.year == 3000  # 2999 in UTC
    with pytest.raises(EnvelopeRejected):
        parse_envelope(_raw("2999-12-31T23:00:00-14:00"))  # 3000-01-01T13:00Z


def test_a_naive_timestamp_is_still_a_schema_violation() -> None:
    with pytest.raises(EnvelopeRejected) as caught:
        parse_envelope(_raw("2026-11-30T10:00:00"))
    assert caught.value.code == "schema_violation"


def _with_payload(event_type: str, payload: dict[str, object]) -> bytes:
    return json.dumps(
        {
            "event_id": "ehr-x:2",
            "event_type": event_type,
            "schema_version": 1,
            "source": "ehr-x",
            "clinic_id": "north-01",
            "occurred_at": "2026-11-30T10:00:00+00:00",
            "payload": payload,
        }
    ).encode()


APPOINTMENT = {"mrn": "M1", "appointment_id": "a1", "clinician_id": "c1", "modality": "video"}


@pytest.mark.parametrize(
    ("event_type", "payload", "field"),
    [
        # an appointment at a "max date" with a local offset: intake's client state (a BSON date) and
        # measures' session time overflowed on it, as on occurred_at (review finding)
        (
            "appointment.scheduled",
            {**APPOINTMENT, "scheduled_start": "9999-12-31T23:59:59-05:00"},
            "scheduled_start",
        ),
        (
            "appointment.scheduled",
            {**APPOINTMENT, "scheduled_start": "0001-01-01T00:00:00+01:00"},
            "scheduled_start",
        ),
        ("client.referred", {"mrn": "M1", "referred_on": "9999-12-31"}, "referred_on"),
        ("client.referred", {"mrn": "M1", "referred_on": "0001-01-01"}, "referred_on"),
    ],
)
def test_a_payload_time_or_date_out_of_range_is_a_schema_violation(
    event_type: str, payload: dict[str, object], field: str
) -> None:
    with pytest.raises(EnvelopeRejected) as caught:
        parse_envelope(_with_payload(event_type, payload))
    assert caught.value.code == "schema_violation"
    assert caught.value.details[0]["loc"][-1] == field


def test_a_payload_time_in_range_is_kept() -> None:
    at = "2062-03-02T14:55:00+01:00"
    env = parse_envelope(_with_payload("appointment.scheduled", {**APPOINTMENT, "scheduled_start": at}))
    assert env.payload.scheduled_start == datetime.fromisoformat(at)  # type: ignore[union-attr]
