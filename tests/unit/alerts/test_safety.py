"""`safety.phq9-item9`: urgent on any item-9 answer >= 1; only a person (or episode end) resolves it."""

from __future__ import annotations

import pytest

from attune_alerts.domain.decisions import Raise
from attune_alerts.domain.rules import on_person_resolved
from attune_alerts.domain.texts import SAFETY

RAISED = [("Raise", SAFETY)]


def _phq9(b, rid, item9, at=7, **kw):
    return b.measure(rid, "PHQ-9", {"total": 10 + item9, "item9": item9}, at=at, **kw)


@pytest.mark.parametrize(("item9", "fires"), [(0, False), (1, True), (2, True), (3, True)])
def test_item9_at_or_above_one(ep, b, kinds_of, item9, fires):
    assert kinds_of(ep.measure(_phq9(b, "q1", item9))) == (RAISED if fires else [])


def test_raise_is_urgent_with_the_risk_protocol_action(ep, b):
    (raised,) = ep.measure(_phq9(b, "q1", 2))
    assert isinstance(raised, Raise)
    assert (raised.rule_id, raised.rule_version, raised.severity) == (SAFETY, 1, "urgent")
    assert raised.suggested_action == (
        "Follow the clinic's risk protocol today: contact the client and complete a risk assessment."
    )
    assert raised.evidence["item9"] == 2 and raised.evidence["response_id"] == "q1"
    assert raised.thresholds_used == {"phq9_item9_min": 1}


def test_any_respondent_counts(ep, b, kinds_of):
    assert kinds_of(ep.measure(_phq9(b, "q1", 1, respondent="clinician"))) == RAISED


def test_a_second_positive_answer_updates(ep, b, kinds_of):
    ep.measure(_phq9(b, "q1", 1, at=7))
    assert kinds_of(ep.measure(_phq9(b, "q2", 3, at=14))) == [("Update", SAFETY)]
    assert ep.state.alert(SAFETY).trigger_response_ids == {"q1", "q2"}


def test_never_resolved_by_a_later_answer(ep, b):
    ep.measure(_phq9(b, "q1", 1, at=7))
    assert ep.measure(_phq9(b, "q2", 0, at=14)) == []
    assert ep.state.alert(SAFETY) is not None


def test_after_a_person_resolves_a_new_answer_raises_again(ep, b, kinds_of):
    ep.measure(_phq9(b, "q1", 1, at=7))
    ep.state = on_person_resolved(ep.state, SAFETY, "addressed", ep.now)
    assert kinds_of(ep.measure(_phq9(b, "q2", 1, at=14))) == RAISED


def test_still_raised_after_the_episode_closed(ep, b, kinds_of):
    ep.care(b.care("closed", 1, reason="planned"))
    assert kinds_of(ep.measure(_phq9(b, "q1", 2, at=2))) == RAISED


def test_an_amendment_below_the_threshold_is_left_to_a_person(ep, b, kinds_of):
    ep.measure(_phq9(b, "q1", 1))
    decisions = ep.measure(_phq9(b, "q1", 0, revision=2, superseded=True))
    assert kinds_of(decisions) == [("Update", SAFETY)]
    assert decisions[0].evidence["explanation"].startswith("amended response q1 no longer meets the rule")
    assert ep.state.alert(SAFETY) is not None
