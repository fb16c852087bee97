"""EpisodeState survives state_to_dict -> JSON -> state_from_dict, and decisions continue identically afterwards."""

from __future__ import annotations

import json

import pytest

from attune_alerts.domain.errors import InvalidStateDocument
from attune_alerts.domain.rules import on_measure
from attune_alerts.domain.state import EpisodeState
from attune_alerts.domain.state_codec import state_from_dict, state_to_dict
from attune_alerts.domain.texts import DETERIORATION, DROPOUT, RUPTURE, SAFETY


def _busy_episode(ep, b):
    ep.care(b.care("attended", 0, "a0"))
    ep.measure(b.measure("q1", "PHQ-9", {"total": 12, "item9": 1}, at=1))
    ep.measure(b.outcome("o1", "PHQ-9", 8, 15, at=2))
    ep.feed(b.series([4.0, 4.0, 4.0, 3.0]))
    ep.measure(b.psq("p1", reported=True, tension=3, at=29))
    ep.measure(b.point("w9", 3.55, drop=1.5, appt="a9", position=9, at=63))  # lenient candidate, no SRS yet
    ep.measure(b.measure("s8", "SRS", {"total": 38.0, "alliance_concern": False}, at=56, appt="a8"))
    ep.feed([b.care("missed", 70, "m1"), b.care("cancelled", 77, "m2", by="client")])
    ep.care(b.care("cancelled", 78, "m3", by="clinician"))
    return ep.state


def test_a_busy_state_round_trips_through_json(ep, b):
    state = _busy_episode(ep, b)
    assert set(state.open_alerts) == {SAFETY, DETERIORATION, RUPTURE, DROPOUT}
    assert state.lenient_pending and state.srs_seen and state.baselines and state.sessions
    document = json.loads(json.dumps(state_to_dict(state)))
    assert state_from_dict(document) == state


def test_closures_and_closed_episodes_round_trip(ep, b):
    ep.feed(b.series([4.0, 4.0, 4.0, 3.0]))
    ep.care(b.care("closed", 30, reason="unilateral"))
    state = ep.state
    assert state.rupture_closures and not state.episode_open
    assert state_from_dict(json.loads(json.dumps(state_to_dict(state)))) == state


def test_empty_state_round_trips():
    assert state_from_dict(json.loads(json.dumps(state_to_dict(EpisodeState())))) == EpisodeState()


def test_rules_continue_identically_from_a_reloaded_state(ep, b):
    state = _busy_episode(ep, b)
    reloaded = state_from_dict(json.loads(json.dumps(state_to_dict(state))))
    repair = b.point("w5", 4.1, drop=None, position=5, at=35)
    srs = b.measure("s9", "SRS", {"total": 30.0, "alliance_concern": True}, at=63, appt="a9")
    for m in (repair, srs):
        state, expected = on_measure(state, m, ep.thresholds, ep.now)
        reloaded, got = on_measure(reloaded, m, ep.thresholds, ep.now)
        assert got == expected and reloaded == state
    assert expected  # the lenient candidate completed by its SRS: the test exercised real decisions


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("version"),
        lambda d: d.update(version=99),
        lambda d: d.pop("open_alerts"),
        lambda d: d.update(last_attended_at="not a time"),
    ],
)
def test_malformed_documents_raise_a_named_error(ep, b, mutate):
    document = state_to_dict(_busy_episode(ep, b))
    mutate(document)
    with pytest.raises(InvalidStateDocument):
        state_from_dict(document)


def test_documents_written_before_response_times_were_kept_still_load(ep, b):
    """`srs_seen` and `lenient_pending` keep each response's EHR time (a lenient rupture's
    `triggered_at`); documents written before have none, and load with None."""
    state = _busy_episode(ep, b)
    assert all(p.occurred_at is not None for p in state.lenient_pending.values())
    assert all(s.occurred_at is not None for s in state.srs_seen.values())
    document = json.loads(json.dumps(state_to_dict(state)))
    for entry in (*document["srs_seen"].values(), *document["lenient_pending"].values()):
        del entry["occurred_at"]
    old = state_from_dict(document)
    assert all(p.occurred_at is None for p in old.lenient_pending.values())
    assert all(s.occurred_at is None for s in old.srs_seen.values())
    assert old.lenient_pending.keys() == state.lenient_pending.keys()
