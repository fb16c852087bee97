"""`outcome.deterioration`: reliable deterioration from intake, and its automatic resolution."""

from __future__ import annotations

import pytest

from attune_alerts.domain.decisions import Raise, Resolve
from attune_alerts.domain.texts import DETERIORATION

RAISED = [("Raise", DETERIORATION)]


@pytest.mark.parametrize(
    ("instrument", "intake", "score", "fires"),
    [
        ("ORS", 24.0, 19.0, True),  # -5: at the threshold
        ("ORS", 24.0, 20.0, False),  # -4: one below
        ("ORS", 24.0, 29.0, False),  # improvement
        ("PHQ-9", 8, 14, True),  # +6
        ("PHQ-9", 8, 13, False),  # +5
        ("GAD-7", 6, 10, True),  # +4
        ("GAD-7", 6, 9, False),  # +3
    ],
)
def test_reliable_deterioration_at_the_threshold_and_one_below(
    ep, b, kinds_of, instrument, intake, score, fires
):
    decisions = ep.measure(b.outcome("r1", instrument, intake, score))
    assert kinds_of(decisions) == (RAISED if fires else [])
    if fires:
        raised = decisions[0]
        assert isinstance(raised, Raise)
        assert (raised.severity, raised.rule_version) == ("high", 1)
        assert raised.evidence["instrument"] == instrument
        assert raised.evidence["change"] == score - intake
        assert raised.thresholds_used["reliable_change_threshold"] == abs(score - intake)


def test_other_instruments_and_scores_without_change_are_ignored(ep, b):
    assert ep.measure(b.measure("r1", "PHQ-9", {"total": 20, "item9": 0})) == []  # intake: no change yet
    assert ep.measure(b.measure("r2", "PSQ", {"rupture_reported": False, "tension": 1})) == []


def test_resolves_automatically_when_a_later_score_is_no_longer_reliably_worse(ep, b, kinds_of):
    ep.measure(b.outcome("r1", "PHQ-9", 8, 15, at=7))
    decisions = ep.measure(b.outcome("r2", "PHQ-9", 8, 12, at=14))
    assert kinds_of(decisions) == [("Resolve", DETERIORATION)]
    resolve = decisions[0]
    assert isinstance(resolve, Resolve) and resolve.resolution == "addressed"
    assert resolve.evidence["auto"] is True
    assert resolve.evidence["reason"] == "no longer reliably worse than intake"
    assert ep.state.alert(DETERIORATION) is None


def test_a_still_deteriorated_later_score_updates(ep, b, kinds_of):
    ep.measure(b.outcome("r1", "PHQ-9", 8, 15, at=7))
    decisions = ep.measure(b.outcome("r2", "PHQ-9", 8, 18, at=14))
    assert kinds_of(decisions) == [("Update", DETERIORATION)]
    assert decisions[0].evidence["trigger_count"] == 2


def test_every_triggering_instrument_must_recover(ep, b, kinds_of):
    ep.measure(b.outcome("r1", "PHQ-9", 8, 15, at=7))
    ep.measure(b.outcome("g1", "GAD-7", 6, 12, at=7))
    first = ep.measure(b.outcome("r2", "PHQ-9", 8, 10, at=14))
    assert kinds_of(first) == [("Update", DETERIORATION)]
    assert first[0].evidence["instruments"] == ["GAD-7"]
    assert kinds_of(ep.measure(b.outcome("o1", "ORS", 20, 22, at=14))) == []  # ORS never triggered it
    assert kinds_of(ep.measure(b.outcome("g2", "GAD-7", 6, 7, at=14))) == [("Resolve", DETERIORATION)]


def test_a_late_arriving_earlier_score_does_not_resolve(ep, b):
    ep.measure(b.outcome("r2", "PHQ-9", 8, 15, at=14))
    assert ep.measure(b.outcome("r1", "PHQ-9", 8, 9, at=7)) == []
    assert ep.state.alert(DETERIORATION) is not None


def test_after_auto_resolution_a_new_deterioration_raises_again(ep, b, kinds_of):
    ep.measure(b.outcome("r1", "ORS", 25, 18, at=7))
    ep.measure(b.outcome("r2", "ORS", 25, 24, at=14))
    assert kinds_of(ep.measure(b.outcome("r3", "ORS", 25, 19, at=21))) == RAISED
