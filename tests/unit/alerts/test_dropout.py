"""`engagement.dropout-risk`: consecutive misses, inactivity, severity, re-engagement, episode end."""

from __future__ import annotations

from datetime import timedelta

import pytest

from attune_alerts.domain.decisions import Raise, Resolve, Update
from attune_alerts.domain.rules import on_person_resolved
from attune_alerts.domain.texts import DETERIORATION, DROPOUT, RUPTURE, SAFETY

RAISED = [("Raise", DROPOUT)]


@pytest.mark.parametrize(
    ("events", "fires"),
    [
        ([("missed", None), ("missed", None)], True),
        ([("missed", None), ("attended", None), ("missed", None)], False),
        ([("cancelled", "client"), ("missed", None)], True),  # a client's cancellation counts
        ([("missed", None), ("cancelled", "client")], True),
        ([("cancelled", "clinician"), ("missed", None)], False),  # a clinician's does not
        ([("cancelled", "clinic"), ("missed", None)], False),
        (
            [("missed", None), ("cancelled", "clinician"), ("missed", None)],
            True,
        ),  # and does not break the run
        ([("missed", None)], False),
    ],
)
def test_consecutive_misses(ep, b, kinds_of, events, fires):
    ep.care(b.care("attended", 0, "a0"))
    for i, (kind, by) in enumerate(events, start=1):
        ep.care(b.care(kind, 7 * i, f"a{i}", by=by))
    raised = [d for step in ep.log for d in step if isinstance(d, Raise)]
    assert kinds_of(raised) == (RAISED if fires else [])
    if fires:
        assert raised[0].severity == "normal"
        assert raised[0].thresholds_used["dropout_consecutive_misses"] == 2


def test_late_events_are_placed_by_occurred_at(ep, b, kinds_of):
    ep.care(b.care("attended", 0, "a1"))
    ep.care(b.care("missed", 14, "a3"))
    assert kinds_of(ep.care(b.care("missed", 7, "a2"))) == RAISED  # arrives late, belongs before a3


def test_a_late_miss_before_an_attended_session_does_not_join_the_run(ep, b):
    ep.feed([b.care("attended", 14, "a1"), b.care("missed", 21, "a2")])
    assert ep.care(b.care("missed", 7, "a0")) == []  # two misses, but the attended session lies between


def test_same_appointment_replaces_and_a_replay_is_a_no_op(ep, b, kinds_of):
    ep.care(b.care("missed", 7, "a1"))
    assert kinds_of(ep.care(b.care("missed", 14, "a2"))) == RAISED
    assert ep.care(b.care("missed", 14, "a2")) == []
    assert len(ep.state.sessions) == 2
    ep.care(b.care("cancelled", 14, "a2", by="clinician"))  # the EHR corrects a2
    assert [s.kind for s in ep.state.sessions] == ["missed", "other_cancelled"]


def test_a_third_miss_updates(ep, b, kinds_of):
    ep.feed([b.care("missed", 7, "a1"), b.care("missed", 14, "a2")])
    decisions = ep.care(b.care("missed", 21, "a3"))
    assert kinds_of(decisions) == [("Update", DROPOUT)]
    assert decisions[0].evidence["consecutive_misses"] == 3


def test_re_engaged_at_the_next_attended_session(ep, b, kinds_of):
    ep.feed([b.care("missed", 7, "a1"), b.care("missed", 14, "a2")])
    assert ep.care(b.care("attended", 10, "a1b")) == []  # late, before the last miss
    decisions = ep.care(b.care("attended", 21, "a3"))
    assert kinds_of(decisions) == [("Resolve", DROPOUT)]
    assert isinstance(decisions[0], Resolve) and decisions[0].resolution == "re_engaged"


def _rupture(ep, b):
    ep.feed(b.series([4.0, 4.0, 4.0, 3.0]))
    assert ep.state.alert(RUPTURE) is not None


@pytest.mark.parametrize(
    ("setup", "severity"),
    [
        ("none", "normal"),
        ("open", "high"),
        ("closed_unrepaired_10_days_ago", "high"),
        ("closed_unrepaired_20_days_ago", "normal"),
        ("closed_repaired_5_days_ago", "normal"),
    ],
)
def test_severity_depends_on_ruptures(ep, b, setup, severity):
    if setup != "none":
        _rupture(ep, b)  # raised at day 28
    if setup.startswith("closed"):
        days = int(setup.split("_")[2])
        closed_at = b.care("attended", 100 - days).occurred_at
        resolution = "repaired" if "_repaired_" in setup else "addressed"
        ep.state = on_person_resolved(ep.state, RUPTURE, resolution, closed_at)
    ep.care(b.care("missed", 93, "m1"))
    (raised,) = ep.care(b.care("missed", 100, "m2"))
    assert isinstance(raised, Raise) and raised.severity == severity


def test_episode_end_counts_a_rupture_as_unrepaired_for_dropout_severity(ep, b):
    _rupture(ep, b)
    ep.care(b.care("closed", 30, reason="mutual"))
    ep.care(b.care("opened", 31))
    ep.feed([b.care("missed", 35, "m1")])
    (raised,) = ep.care(b.care("missed", 40, "m2"))
    assert raised.severity == "high"


def test_an_open_normal_dropout_alert_becomes_high_when_a_rupture_opens(ep, b, kinds_of):
    ep.feed([b.care("missed", 1, "m1"), b.care("missed", 2, "m2")])
    decisions = ep.feed(b.series([4.0, 4.0, 4.0, 3.0]))
    assert kinds_of(decisions) == [("Raise", RUPTURE), ("Update", DROPOUT)]
    assert isinstance(decisions[1], Update) and decisions[1].severity == "high"


@pytest.mark.parametrize(("days", "fires"), [(20, False), (21, True), (30, True)])
def test_inactivity_sweep(ep, b, kinds_of, days, fires):
    ep.care(b.care("attended", 0, "a1"))
    decisions = ep.sweep(b.care("attended", days).occurred_at)
    assert kinds_of(decisions) == (RAISED if fires else [])
    if fires:
        assert decisions[0].evidence["trigger"] == "inactivity"
        assert decisions[0].evidence["days_since_attended"] == days


def test_inactivity_sweep_just_below_21_days(ep, b):
    ep.care(b.care("attended", 0, "a1"))
    assert ep.sweep(b.care("attended", 21).occurred_at - timedelta(seconds=1)) == []


def test_inactivity_needs_an_earlier_attended_session_and_an_open_episode(ep, b):
    assert ep.sweep(b.care("attended", 60).occurred_at) == []
    ep.care(b.care("attended", 0, "a1"))
    ep.care(b.care("closed", 1, reason="planned"))
    assert ep.sweep(b.care("attended", 60).occurred_at) == []


def test_inactivity_sweep_does_not_repeat_and_attendance_re_engages(ep, b, kinds_of):
    ep.care(b.care("attended", 0, "a1"))
    assert kinds_of(ep.sweep(b.care("attended", 21).occurred_at)) == RAISED
    assert ep.sweep(b.care("attended", 22).occurred_at) == []
    assert kinds_of(ep.care(b.care("attended", 23, "a2"))) == [("Resolve", DROPOUT)]


def test_episode_closure_resolves_every_open_alert_as_episode_ended(ep, b, kinds_of):
    ep.measure(b.measure("q1", "PHQ-9", {"total": 12, "item9": 1}, at=1))
    ep.measure(b.outcome("o1", "ORS", 25, 18, at=2))
    ep.feed(b.series([4.0, 4.0, 4.0, 3.0]))
    ep.feed([b.care("missed", 29, "m1"), b.care("missed", 30, "m2")])
    assert set(ep.state.open_alerts) == {SAFETY, DETERIORATION, RUPTURE, DROPOUT}
    decisions = ep.care(b.care("closed", 31, reason="unilateral"))
    assert sorted(kinds_of(decisions)) == sorted(
        ("Resolve", r) for r in (SAFETY, DETERIORATION, RUPTURE, DROPOUT)
    )
    assert all(d.resolution == "episode_ended" for d in decisions)
    rupture = next(d for d in decisions if d.rule_id == RUPTURE)
    assert rupture.evidence == {"close_reason": "unilateral", "unrepaired": True}
    assert ep.state.open_alerts == {} and not ep.state.episode_open
    assert ep.state.rupture_closures[-1].repaired is False
    assert ep.care(b.care("missed", 32, "m3")) == []  # no dropout rule in a closed episode
    assert ep.care(b.care("closed", 31, reason="unilateral")) == []
