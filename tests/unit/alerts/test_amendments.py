"""Amended responses re-judge the alerts that depended on them; replays and older revisions are no-ops."""

from __future__ import annotations

import pytest

from attune_alerts.domain.decisions import Resolve, Update
from attune_alerts.domain.texts import DETERIORATION, RUPTURE, SAFETY


def test_amended_rupture_trigger_that_no_longer_drops_is_a_false_positive(ep, b, kinds_of):
    ep.measure(b.point("w4", 3.2, drop=2.6))
    decisions = ep.measure(b.point("w4", 3.8, drop=0.6, revision=2, superseded=True))
    assert kinds_of(decisions) == [("Resolve", RUPTURE)]
    resolve = decisions[0]
    assert isinstance(resolve, Resolve) and resolve.resolution == "false_positive"
    assert resolve.evidence["explanation"] == "amended response w4 no longer meets the rule"
    assert ep.state.alert(RUPTURE) is None
    assert ep.state.rupture_closures == ()  # no rupture: not counted for the dropout severity


def test_amended_rupture_trigger_that_still_drops_updates_the_evidence(ep, b, kinds_of):
    ep.measure(b.point("w4", 3.2, drop=2.6))
    decisions = ep.measure(b.point("w4", 3.3, drop=2.3, revision=2, superseded=True))
    assert kinds_of(decisions) == [("Update", RUPTURE)]
    update = decisions[0]
    assert isinstance(update, Update)
    assert (
        update.evidence["score"] == 3.3
        and update.evidence["drop"] == 2.3
        and update.evidence["trough"] == 3.3
    )
    assert update.evidence["amended_response_id"] == "w4"


def test_amended_psq_trigger(ep, b, kinds_of):
    ep.measure(b.psq("p1", reported=True, tension=4))
    decisions = ep.measure(b.psq("p1", reported=True, tension=2, revision=2, superseded=True))
    assert kinds_of(decisions) == [("Resolve", RUPTURE)] and decisions[0].resolution == "false_positive"


def test_an_alert_resting_on_other_responses_too_is_updated_not_resolved(ep, b, kinds_of):
    ep.measure(b.point("w4", 3.2, drop=2.6))
    ep.measure(b.psq("p4", reported=True, tension=3, at=4))
    decisions = ep.measure(b.point("w4", 3.8, drop=0.6, revision=2, superseded=True))
    assert kinds_of(decisions) == [("Update", RUPTURE)]
    assert ep.state.alert(RUPTURE).trigger_response_ids == {"p4"}


@pytest.mark.parametrize(("amended_score", "expected"), [(10, "Resolve"), (15, "Update")])
def test_amended_deterioration(ep, b, kinds_of, amended_score, expected):
    ep.measure(b.outcome("r1", "PHQ-9", 8, 15))
    decisions = ep.measure(b.outcome("r1", "PHQ-9", 8, amended_score, revision=2, superseded=True))
    assert kinds_of(decisions) == [(expected, DETERIORATION)]
    if expected == "Resolve":
        assert decisions[0].resolution == "false_positive"
        assert decisions[0].evidence["explanation"] == "amended response r1 no longer meets the rule"


def test_an_amendment_can_raise(ep, b, kinds_of):
    ep.measure(b.measure("q1", "PHQ-9", {"total": 9, "item9": 0}))
    amended = b.measure("q1", "PHQ-9", {"total": 10, "item9": 1}, revision=2, superseded=True)
    assert kinds_of(ep.measure(amended)) == [("Raise", SAFETY)]


def test_replaying_the_same_revision_is_a_no_op(ep, b):
    measures = b.series([4.0, 4.0, 4.0, 3.0])
    ep.feed(measures)
    before = ep.state
    assert ep.measure(measures[-1]) == []
    assert ep.state == before


def test_an_older_revision_after_a_newer_one_is_a_no_op(ep, b):
    ep.measure(b.point("w4", 3.2, drop=2.6, revision=2))
    before = ep.state
    assert ep.measure(b.point("w4", 3.9, drop=0.3, revision=1)) == []
    assert ep.state == before
    assert ep.state.alert(RUPTURE) is not None


def test_replayed_outcome_and_safety_responses_are_no_ops(ep, b):
    phq = b.measure("q1", "PHQ-9", {"total": 20, "item9": 2})
    ors = b.outcome("o1", "ORS", 25, 18)
    ep.feed([phq, ors])
    assert ep.measure(phq) == [] and ep.measure(ors) == []
    assert ep.state.alert(SAFETY).evidence["trigger_count"] == 1
