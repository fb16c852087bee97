"""Repair of an open rupture alert: within W scored sessions after the trough, or marked unrepaired."""

from __future__ import annotations

import pytest

from attune_alerts.domain.decisions import Resolve, Update
from attune_alerts.domain.state import RuptureClosure
from attune_alerts.domain.texts import RUPTURE

BASELINE = [4.0, 4.0, 4.0, 3.0]  # mu 4.0, strict drop at position 4: the trough


def _open_rupture(ep, b):
    ep.feed(b.series(BASELINE))
    assert ep.state.alert(RUPTURE) is not None


def _after(b, scores, start=5):
    """Later client scores of the same WAI-SR series (their own statistics do not matter here)."""
    return [b.point(f"w{start + i}", s, drop=None, position=start + i) for i, s in enumerate(scores)]


@pytest.mark.parametrize(
    ("later", "repaired_at"),
    [
        ([4.0], 1),
        ([3.5, 4.1], 2),
        ([3.2, 3.3, 4.0], 3),  # exactly W = 3 sessions after the trough: repaired
        ([3.2, 3.3, 3.999, 4.0], None),  # W + 1: too late
        ([3.9, 3.9, 3.9], None),
    ],
)
def test_repair_within_w_sessions_after_the_trough(ep, b, kinds_of, later, repaired_at):
    _open_rupture(ep, b)
    steps = [ep.measure(m) for m in _after(b, later)]
    for n, decisions in enumerate(steps, start=1):
        if n == repaired_at:
            assert kinds_of(decisions) == [("Resolve", RUPTURE)]
            resolve = decisions[0]
            assert isinstance(resolve, Resolve) and resolve.resolution == "repaired"
            assert resolve.evidence["sessions_after_trough"] == n
        elif n == 3 and repaired_at is None:
            assert kinds_of(decisions) == [("Update", RUPTURE)]
            assert decisions[0].evidence["unrepaired"] is True
        else:
            assert decisions == [], n
    open_alert = ep.state.alert(RUPTURE)
    assert (open_alert is None) == (repaired_at is not None)


def test_unrepaired_after_w_stays_open_and_high_even_if_the_score_recovers(ep, b, kinds_of):
    _open_rupture(ep, b)
    ep.feed(_after(b, [3.2, 3.3, 3.4]))
    update = ep.log[-1][0]
    assert isinstance(update, Update) and update.severity is None  # stays high
    assert update.evidence["unrepaired"] is True and update.evidence["sessions_after_trough"] == 3
    assert ep.feed(_after(b, [4.5, 4.6], start=8)) == []
    alert = ep.state.alert(RUPTURE)
    assert alert.unrepaired and alert.severity == "high"


def test_a_lower_score_moves_the_trough_and_restarts_the_count(ep, b, kinds_of):
    _open_rupture(ep, b)
    moved = ep.feed(_after(b, [3.2, 2.8]))  # trough now 2.8 at position 6
    assert kinds_of(moved) == [("Update", RUPTURE)] and moved[0].evidence["trough"] == 2.8
    assert ep.feed(_after(b, [3.0, 3.1], start=7)) == []
    decisions = ep.measure(_after(b, [4.0], start=9)[0])  # 5 after the first trough, 3 after the new one
    assert kinds_of(decisions) == [("Resolve", RUPTURE)]
    assert decisions[0].evidence["sessions_after_trough"] == 3


def test_an_equal_score_does_not_move_the_trough(ep, b):
    _open_rupture(ep, b)
    ep.feed(_after(b, [3.0, 3.0]))
    assert ep.state.alert(RUPTURE).rupture.trough_position == 4
    assert ep.state.alert(RUPTURE).rupture.sessions_since_trough == 2


def test_a_late_arriving_earlier_session_does_not_count(ep, b):
    _open_rupture(ep, b)
    assert ep.measure(b.point("w2b", 4.5, drop=None, position=3)) == []
    assert ep.state.alert(RUPTURE) is not None


def test_another_series_does_not_repair(ep, b):
    _open_rupture(ep, b)
    srs = b.point("s5", 40.0, drop=-1.0, mu=38.0, sd_eff=2.0, instrument="SRS", position=5)
    assert ep.measure(srs) == []
    assert ep.state.alert(RUPTURE) is not None


def test_repair_window_is_configurable(ep, b, kinds_of):
    ep.thresholds = ep.thresholds.with_overrides({"repair_window_sessions": 6})
    _open_rupture(ep, b)
    ep.feed(_after(b, [3.2, 3.3, 3.4, 3.5]))
    assert kinds_of(ep.measure(_after(b, [4.0], start=9)[0])) == [("Resolve", RUPTURE)]


def test_a_repaired_rupture_is_remembered_as_repaired(ep, b):
    _open_rupture(ep, b)
    ep.measure(_after(b, [4.2])[0])
    assert ep.state.rupture_closures == (RuptureClosure(ep.now, repaired=True),)


@pytest.mark.parametrize(("resolution", "repaired"), [(4, True), (5, True), (3, False)])
def test_psq_alert_repaired_by_a_later_psq(ep, b, kinds_of, resolution, repaired):
    ep.measure(b.psq("p1", reported=True, tension=4, at=7))
    decisions = ep.measure(b.psq("p2", reported=False, tension=1, resolution=resolution, at=14))
    assert kinds_of(decisions) == ([("Resolve", RUPTURE)] if repaired else [])
    if repaired:
        assert decisions[0].resolution == "repaired"
        assert decisions[0].evidence["repair"] == "in_session_repair"


def test_psq_repair_needs_a_later_psq(ep, b):
    ep.measure(b.psq("p1", reported=True, tension=4, at=7))
    assert ep.measure(b.psq("p0", reported=False, tension=1, resolution=5, at=0)) == []


def test_psq_alert_repaired_by_a_later_alliance_score_at_the_known_baseline(ep, b, kinds_of):
    ep.feed(b.series([4.0, 4.0, 4.0, 3.8]))  # latest mu of the WAI-SR series: 4.0
    ep.measure(b.psq("p4", reported=True, tension=3, at=28))
    assert ep.state.alert(RUPTURE).rupture.mu == 4.0
    assert ep.measure(b.point("w5", 3.9, drop=None, position=5, at=35)) == []
    assert kinds_of(ep.measure(b.point("w6", 4.0, drop=None, position=6, at=42))) == [("Resolve", RUPTURE)]


def test_psq_alert_without_a_baseline_repairs_only_by_psq(ep, b, kinds_of):
    ep.measure(b.psq("p1", reported=True, tension=3, at=7))
    assert ep.state.alert(RUPTURE).rupture.mu is None
    assert ep.measure(b.point("w5", 5.0, drop=None, position=5, at=14)) == []
    assert kinds_of(ep.measure(b.psq("p2", reported=False, tension=1, resolution=4, at=21))) == [
        ("Resolve", RUPTURE)
    ]


def test_psq_repair_threshold_is_configurable(ep, b):
    ep.thresholds = ep.thresholds.with_overrides({"psq_repair_min": 5})
    ep.measure(b.psq("p1", reported=True, tension=4, at=7))
    assert ep.measure(b.psq("p2", reported=False, tension=1, resolution=4, at=14)) == []


def test_a_psq_alert_takes_the_baseline_known_when_a_later_psq_adds_to_it(ep, b, kinds_of):
    ep.measure(b.psq("p0", reported=True, tension=3, at=0))
    ep.feed(b.series([4.0, 4.0, 4.0, 3.9]))
    assert kinds_of(ep.measure(b.psq("p4", reported=True, tension=4, at=28))) == [("Update", RUPTURE)]
    assert ep.state.alert(RUPTURE).rupture.mu == 4.0
    assert kinds_of(ep.measure(b.point("w5", 4.0, drop=None, position=5, at=35))) == [("Resolve", RUPTURE)]
