"""Canonical events: no PHI, EHR ids only as keyed pseudonyms, deterministic ids, appointment times."""

from __future__ import annotations

import json
import re
from typing import Any

from attune_intake.domain.canonical import Canonical, Pseudonymiser, canonicalise
from attune_intake.domain.episodes import ClientState
from attune_intake.domain.validation import parse_envelope
from attune_shared.events import EhrEnvelope
from attune_shared.ids import (
    APPOINTMENT_REF_PATTERN,
    EPISODE_REF_PATTERN,
    EVENT_REF_PATTERN,
    RESPONSE_REF_PATTERN,
    client_ref,
    derived_id,
)
from tests.support.ehr import BASE, Ehr, encode

KEY = b"k" * 32
IDS = Pseudonymiser(KEY)
# EHR ids are often built from the MRN: none of them may leave intake.
EVENT_ID = "ehr-test:MRN-SECRET-1:ev-0001"
APPT_ID = "MRN-SECRET-1-appt-0001"
RESPONSE_ID = "MRN-SECRET-1-resp-0001"


def _env(e: dict[str, Any], event_id: str | None = None) -> EhrEnvelope:
    if event_id is not None:
        e = {**e, "event_id": event_id}
    return parse_envelope(encode(e))


def _state(clinic: str, mrn: str) -> ClientState:
    return ClientState(client_ref=client_ref(KEY, clinic, mrn), clinic_id=clinic)


def _json(out: Canonical) -> str:
    return json.dumps([e.model_dump(mode="json") for e in out.events])


def _refs(out: Canonical) -> list[tuple[Any, ...]]:
    """Every id of the events that came from (or was derived from) an EHR id."""
    return [
        (
            e.event_id,
            e.source_event_id,
            e.episode_id,
            getattr(e, "appointment_id", None),
            getattr(e, "response_id", None),
        )
        for e in out.events
    ]


def test_output_has_no_phi_and_ids_are_deterministic() -> None:
    env = _env(Ehr().referred("north-01", "MRN-SECRET-1", BASE), EVENT_ID)
    ref = client_ref(KEY, "north-01", "MRN-SECRET-1")
    first = canonicalise(env, ClientState(client_ref=ref, clinic_id="north-01"), IDS)
    again = canonicalise(env, ClientState(client_ref=ref, clinic_id="north-01"), Pseudonymiser(KEY))
    assert [e.event_type for e in first.events] == ["episode.opened", "client.referred"]
    assert [e.event_id for e in first.events] == [e.event_id for e in again.events]
    assert _refs(first) == _refs(again) and first.episode_id == again.episode_id
    text = _json(first)
    assert "MRN-SECRET-1" not in text and "GP letter" not in text and "1990" not in text
    assert EVENT_ID not in text and "ev-0001" not in text
    assert all(e.client_ref == ref for e in first.events)
    # The EHR's event id leaves only as its pseudonym; the output ids are derived from that pseudonym.
    event_ref = IDS.event(env)
    assert re.fullmatch(EVENT_REF_PATTERN, event_ref)
    assert all(e.source_event_id == event_ref for e in first.events)
    assert first.events[-1].event_id == derived_id("intake", env.source, event_ref)
    assert first.events[0].event_id == derived_id("intake", "episode.opened", env.source, event_ref)
    assert first.events[-1].event_id != derived_id("intake", env.source, EVENT_ID)
    assert re.fullmatch(EPISODE_REF_PATTERN, first.episode_id)
    assert all(e.episode_id == first.episode_id for e in first.events)


def test_appointment_and_response_ids_leave_as_pseudonyms_that_still_join() -> None:
    ehr = Ehr()
    state = _state("north-01", "MRN-SECRET-1")
    sched_env = _env(ehr.scheduled("north-01", "MRN-SECRET-1", BASE, APPT_ID))
    scheduled = canonicalise(sched_env, state, IDS)
    resp_env = _env(
        ehr.questionnaire("north-01", "MRN-SECRET-1", BASE, RESPONSE_ID, "SRS", [9, 9, 9, 9], appt=APPT_ID)
    )
    answered = canonicalise(resp_env, scheduled.state, IDS)
    appointment = scheduled.events[-1]
    response = answered.events[-1]
    assert appointment.event_type == "appointment.scheduled"
    assert response.event_type == "response.submitted"
    appt_ref = appointment.appointment_id  # type: ignore[attr-defined]
    assert re.fullmatch(APPOINTMENT_REF_PATTERN, appt_ref)
    assert appt_ref == IDS.of(sched_env, "appointment", APPT_ID)
    # The same EHR appointment gets the same pseudonym on every event that names it.
    assert response.appointment_id == appt_ref  # type: ignore[attr-defined]
    assert re.fullmatch(RESPONSE_REF_PATTERN, response.response_id)  # type: ignore[attr-defined]
    assert response.response_id == IDS.of(resp_env, "response", RESPONSE_ID)  # type: ignore[attr-defined]
    assert response.source_event_id == IDS.event(resp_env) != IDS.event(sched_env)
    for out in (scheduled, answered):
        text = _json(out)
        assert "MRN-SECRET-1" not in text and APPT_ID not in text and RESPONSE_ID not in text
        assert "appt-0001" not in text and "resp-0001" not in text
    # intake's own state knows appointments by their pseudonyms too.
    assert set(scheduled.state.appointments) == {appt_ref}


def test_the_same_input_gives_the_same_pseudonyms() -> None:
    def run() -> list[Canonical]:
        ehr, state, outs = Ehr(), _state("north-01", "M1"), []
        for e in (
            ehr.referred("north-01", "M1", BASE),
            ehr.scheduled("north-01", "M1", BASE, APPT_ID),
            ehr.attended("north-01", "M1", BASE, APPT_ID),
            ehr.questionnaire("north-01", "M1", BASE, RESPONSE_ID, "SRS", [9, 9, 9, 9], appt=APPT_ID),
        ):
            out = canonicalise(_env(e), state, Pseudonymiser(KEY))
            outs.append(out)
            state = out.state
        return outs

    first, again = run(), run()
    assert [_refs(o) for o in first] == [_refs(o) for o in again]
    assert [o.state for o in first] == [o.state for o in again]
    # One episode, one appointment pseudonym across the scheduled, attended and answered events.
    assert len({o.episode_id for o in first}) == 1
    assert len({e.appointment_id for o in first[1:] for e in o.events}) == 1  # type: ignore[attr-defined]


def _all_refs(clinic: str, source: str, key: bytes = KEY) -> dict[str, str]:
    """The pseudonyms of the same EHR ids sent by `source` for a client of `clinic`."""
    ehr = Ehr(source=source)
    ids = Pseudonymiser(key)
    state = _state(clinic, "M1")
    sched = canonicalise(_env(ehr.scheduled(clinic, "M1", BASE, APPT_ID), EVENT_ID), state, ids)
    resp_env = _env(ehr.questionnaire(clinic, "M1", BASE, RESPONSE_ID, "SRS", [9, 9, 9, 9]), EVENT_ID + "-r")
    resp = canonicalise(resp_env, sched.state, ids)
    return {
        "source_event_id": sched.events[-1].source_event_id,
        "event_id": sched.events[-1].event_id,
        "episode_id": sched.episode_id,
        "appointment_id": sched.events[-1].appointment_id,  # type: ignore[attr-defined]
        "response_id": resp.events[-1].response_id,  # type: ignore[attr-defined]
    }


def test_two_clinics_two_sources_or_two_keys_give_different_pseudonyms() -> None:
    base = _all_refs("north-01", "ehr-test")
    assert base == _all_refs("north-01", "ehr-test")
    for other in (
        _all_refs("north-02", "ehr-test"),
        _all_refs("north-01", "ehr-other"),
        _all_refs("north-01", "ehr-test", key=b"other-key-" * 4),
    ):
        for name, value in base.items():
            assert other[name] != value, name


def test_pseudonym_is_stable_and_depends_on_key_and_clinic() -> None:
    a = client_ref(KEY, "north-01", "M1")
    assert a == client_ref(KEY, "north-01", "M1")
    assert a != client_ref(b"other-key-" * 4, "north-01", "M1")
    assert a != client_ref(KEY, "north-02", "M1")
    assert a != client_ref(KEY, "north-01", "M2")


def test_response_carries_its_known_appointment_start() -> None:
    ehr = Ehr()
    state = _state("north-01", "M1")
    state = canonicalise(_env(ehr.scheduled("north-01", "M1", BASE, "a1")), state, IDS).state
    out = canonicalise(
        _env(ehr.questionnaire("north-01", "M1", BASE, "r1", "SRS", [9, 9, 9, 9], appt="a1")), state, IDS
    )
    response = out.events[-1]
    assert response.event_type == "response.submitted"
    assert response.appointment_start == BASE  # type: ignore[attr-defined]
    unknown = canonicalise(
        _env(ehr.questionnaire("north-01", "M1", BASE, "r2", "SRS", [9, 9, 9, 9], appt="zz")), state, IDS
    )
    assert unknown.events[-1].appointment_start is None  # type: ignore[attr-defined]


def test_closure_then_later_event_opens_a_new_episode_with_its_own_id() -> None:
    ehr = Ehr()
    s = _state("north-01", "M1")
    first = canonicalise(_env(ehr.referred("north-01", "M1", BASE)), s, IDS)
    closed = canonicalise(_env(ehr.closed("north-01", "M1", BASE.replace(month=4))), first.state, IDS)
    later = canonicalise(_env(ehr.attended("north-01", "M1", BASE.replace(month=5), "a9")), closed.state, IDS)
    assert later.events[0].event_type == "episode.opened"
    assert later.episode_id != first.episode_id
    assert closed.episode_id == first.episode_id
    assert re.fullmatch(EPISODE_REF_PATTERN, later.episode_id)
