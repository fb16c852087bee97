"""Canonical events: no PHI, deterministic ids, pseudonym stability, appointment times on responses."""

from __future__ import annotations

import json

from attune_intake.domain.canonical import canonicalise
from attune_intake.domain.episodes import ClientState
from attune_shared.events import parse_envelope
from attune_shared.ids import client_ref
from tests.support.ehr import BASE, Ehr, encode

KEY = b"k" * 32


def _env(e: dict) -> object:
    return parse_envelope(encode(e))


def test_output_has_no_phi_and_ids_are_deterministic() -> None:
    ehr = Ehr()
    env = _env(ehr.referred("north-01", "MRN-SECRET-1", BASE))
    ref = client_ref(KEY, "north-01", "MRN-SECRET-1")
    first = canonicalise(env, ClientState(client_ref=ref, clinic_id="north-01"))
    again = canonicalise(env, ClientState(client_ref=ref, clinic_id="north-01"))
    assert [e.event_type for e in first.events] == ["episode.opened", "client.referred"]
    assert [e.event_id for e in first.events] == [e.event_id for e in again.events]
    text = json.dumps([e.model_dump(mode="json") for e in first.events])
    assert "MRN-SECRET-1" not in text and "GP letter" not in text and "1990" not in text
    assert all(e.client_ref == ref for e in first.events)


def test_pseudonym_is_stable_and_depends_on_key_and_clinic() -> None:
    a = client_ref(KEY, "north-01", "M1")
    assert a == client_ref(KEY, "north-01", "M1")
    assert a != client_ref(b"other-key-" * 4, "north-01", "M1")
    assert a != client_ref(KEY, "north-02", "M1")
    assert a != client_ref(KEY, "north-01", "M2")


def test_response_carries_its_known_appointment_start() -> None:
    ehr = Ehr()
    ref = client_ref(KEY, "north-01", "M1")
    state = ClientState(client_ref=ref, clinic_id="north-01")
    state = canonicalise(_env(ehr.scheduled("north-01", "M1", BASE, "a1")), state).state
    out = canonicalise(
        _env(ehr.questionnaire("north-01", "M1", BASE, "r1", "SRS", [9, 9, 9, 9], appt="a1")), state
    )
    response = out.events[-1]
    assert response.event_type == "response.submitted"
    assert response.appointment_start == BASE  # type: ignore[attr-defined]
    unknown = canonicalise(
        _env(ehr.questionnaire("north-01", "M1", BASE, "r2", "SRS", [9, 9, 9, 9], appt="zz")), state
    )
    assert unknown.events[-1].appointment_start is None  # type: ignore[attr-defined]


def test_closure_then_later_event_opens_a_new_episode_with_its_own_id() -> None:
    ehr = Ehr()
    ref = client_ref(KEY, "north-01", "M1")
    s = ClientState(client_ref=ref, clinic_id="north-01")
    first = canonicalise(_env(ehr.referred("north-01", "M1", BASE)), s)
    closed = canonicalise(_env(ehr.closed("north-01", "M1", BASE.replace(month=4))), first.state)
    later = canonicalise(_env(ehr.attended("north-01", "M1", BASE.replace(month=5), "a9")), closed.state)
    assert later.events[0].event_type == "episode.opened"
    assert later.episode_id != first.episode_id
    assert closed.episode_id == first.episode_id
