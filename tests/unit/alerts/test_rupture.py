"""`alliance.rupture` detection: strict, lenient (with the session's SRS) and PSQ criteria."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from attune_alerts.domain.decisions import Raise, Resolve, Update
from attune_alerts.domain.texts import RUPTURE
from tests.unit.alerts.conftest import Episode, day

RUPTURE_RAISED = [("Raise", RUPTURE)]


@pytest.mark.parametrize(
    ("drop", "fires"),
    [(2.0, True), (1.99, False), (2.5, True), (1.0, False), (None, False)],
)
def test_strict_drop_boundary(ep, b, kinds_of, drop, fires):
    decisions = ep.measure(b.point("w4", 3.4, drop=drop))
    assert kinds_of(decisions) == (RUPTURE_RAISED if fires else [])


@pytest.mark.parametrize(
    ("instrument", "scores", "fires"),
    [
        ("WAI-SR", [4.0, 4.0, 4.0, 3.4], True),  # drop = 0.6 / sd_floor 0.30 = 2.0
        ("WAI-SR", [4.0, 4.0, 4.0, 3.403], False),  # drop = 1.99
        ("WAI-SR", [4.2, 3.8, 4.0, 4.1, 3.9, 3.0], True),  # sd_within 0.158 < floor: drop 3.33
        ("WAI-SR", [4.0, 4.0, 1.0], False),  # only 2 earlier scores: no baseline yet
        ("SRS", [38.0, 38.0, 38.0, 34.0], True),  # drop = 4 / sd_floor 2.0 = 2.0 (concern too)
        ("SRS", [38.0, 38.0, 38.0, 36.5], False),  # drop 0.75 < lenient
        ("SRS", [30.0, 40.0, 30.0, 40.0, 25.0], True),  # sd_within 5.77: drop 1.73, lenient with concern
    ],
)
def test_fires_on_the_last_score_of_a_series(ep, b, kinds_of, instrument, scores, fires):
    *history, last = b.series(scores, instrument=instrument)
    assert all(ep.measure(m) == [] for m in history)
    assert kinds_of(ep.measure(last)) == (RUPTURE_RAISED if fires else [])


def test_three_earlier_scores_are_enough(ep, b, kinds_of):
    *history, last = b.series([4.0, 4.0, 4.0, 1.0])
    ep.feed(history)
    assert kinds_of(ep.measure(last)) == RUPTURE_RAISED


@pytest.mark.parametrize(
    ("srs_scores", "srs_appt", "fires"),
    [
        ({"total": 35.0, "alliance_concern": True, "item_concern": False}, "a4", True),
        ({"total": 38.0, "alliance_concern": False, "item_concern": True}, "a4", True),
        ({"total": 38.0, "alliance_concern": False, "item_concern": False}, "a4", False),
        ({"total": 35.0, "alliance_concern": True, "item_concern": False}, "a3", False),  # another session
    ],
)
def test_lenient_drop_needs_the_same_sessions_srs_concern(ep, b, kinds_of, srs_scores, srs_appt, fires):
    ep.measure(b.measure("s4", "SRS", srs_scores, at=4, appt=srs_appt))  # no series: SRS not yet 4 deep
    decisions = ep.measure(b.point("w4", 3.55, drop=1.5, appt="a4"))
    assert kinds_of(decisions) == (RUPTURE_RAISED if fires else [])
    if fires:
        raised = decisions[0]
        assert isinstance(raised, Raise)
        assert raised.evidence["criterion"] == "lenient"
        assert ep.state.alert(RUPTURE).trigger_response_ids == {"w4", "s4"}


def test_lenient_drop_without_any_srs_does_not_fire(ep, b, kinds_of):
    assert ep.measure(b.point("w4", 3.55, drop=1.5, appt="a4")) == []


def test_lenient_fires_when_the_srs_arrives_after_the_wai_sr(ep, b, kinds_of):
    assert ep.measure(b.point("w4", 3.55, drop=1.5, appt="a4")) == []
    concern = {"total": 33.0, "alliance_concern": True, "item_concern": False}
    decisions = ep.measure(b.measure("s4", "SRS", concern, at=4, appt="a4"))
    assert kinds_of(decisions) == RUPTURE_RAISED
    assert decisions[0].evidence["instrument"] == "WAI-SR"
    assert decisions[0].evidence["criterion"] == "lenient"


def test_a_later_srs_without_concern_does_not_complete_a_lenient_drop(ep, b):
    assert ep.measure(b.point("w4", 3.55, drop=1.5, appt="a4")) == []
    calm = {"total": 39.0, "alliance_concern": False, "item_concern": False}
    assert ep.measure(b.measure("s4", "SRS", calm, at=4, appt="a4")) == []
    assert ep.state.alert(RUPTURE) is None


@pytest.mark.parametrize(("concern", "fires"), [(True, True), (False, False)])
def test_lenient_on_the_srs_itself(ep, b, kinds_of, concern, fires):
    extra = {"alliance_concern": concern, "item_concern": False}
    decisions = ep.measure(b.point("s4", 34.0, drop=1.2, mu=36.4, sd_eff=2.0, instrument="SRS", extra=extra))
    assert kinds_of(decisions) == (RUPTURE_RAISED if fires else [])


def test_lenient_threshold_is_inclusive(ep, b, kinds_of):
    ep.measure(b.measure("s4", "SRS", {"total": 30.0, "alliance_concern": True}, at=4, appt="a4"))
    assert ep.measure(b.point("w4", 3.7, drop=0.99, appt="a4")) == []
    assert kinds_of(ep.measure(b.point("w5", 3.7, drop=1.0, appt="a4", position=5))) == RUPTURE_RAISED


@pytest.mark.parametrize(
    ("reported", "tension", "fires"),
    [(True, 2, False), (True, 3, True), (True, 5, True), (False, 5, False)],
)
def test_psq_criterion(ep, b, kinds_of, reported, tension, fires):
    decisions = ep.measure(b.psq("p1", reported=reported, tension=tension))
    assert kinds_of(decisions) == (RUPTURE_RAISED if fires else [])
    if fires:
        assert decisions[0].evidence["criterion"] == "psq"


def test_raise_says_possible_rupture_and_records_evidence_and_thresholds(ep, b):
    *history, last = b.series([4.0, 4.2, 3.8, 4.0, 3.0])
    ep.feed(history)
    (raised,) = ep.measure(last)
    assert isinstance(raised, Raise)
    assert (raised.rule_id, raised.rule_version, raised.severity) == (RUPTURE, 1, "high")
    assert raised.title == "Possible alliance rupture: review"
    assert "Invite the client's feedback" in raised.suggested_action
    ev = raised.evidence
    assert ev["instrument"] == "WAI-SR" and ev["score"] == 3.0 and ev["criterion"] == "strict"
    # sd_within of 4.0, 4.2, 3.8, 4.0 is 0.163: the WAI-SR floor 0.30 applies.
    assert ev["mu"] == 4.0 and ev["sd_eff"] == 0.3 and ev["baseline"] == 4.0
    assert ev["drop"] == pytest.approx(3.3333, abs=1e-4) and ev["drop_sd"] == ev["drop"]
    assert ev["trough"] == 3.0 and ev["unrepaired"] is False
    assert ev["thresholds"]["rupture_strict_drop"] == 2.0
    assert raised.thresholds_used == {
        "rupture_strict_drop": 2.0,
        "rupture_lenient_drop": 1.0,
        "psq_tension_min": 3,
        "psq_repair_min": 4,
        "repair_window_sessions": 3,
    }


def test_second_trigger_updates_instead_of_raising(ep, b, kinds_of):
    measures = b.series([4.0, 4.0, 4.0, 3.0, 2.5])
    ep.feed(measures[:4])
    assert kinds_of(ep.log[-1]) == RUPTURE_RAISED
    decisions = ep.measure(measures[4])
    assert kinds_of(decisions) == [("Update", RUPTURE)]
    update = decisions[0]
    assert isinstance(update, Update)
    assert update.evidence["trigger_count"] == 2 and update.evidence["trough"] == 2.5
    assert ep.state.alert(RUPTURE).trigger_response_ids == {"w4", "w5"}
    assert kinds_of(ep.measure(b.psq("p6", reported=True, tension=4, at=60))) == [("Update", RUPTURE)]


def test_clinician_rated_alliance_is_not_a_client_series(ep, b):
    m = b.point("w4", 2.0, drop=6.0)
    clinician = type(m)(**{**{f: getattr(m, f) for f in m.__dataclass_fields__}, "respondent": "clinician"})
    assert ep.measure(clinician) == []


def test_strict_threshold_override(ep, b, kinds_of):
    ep.thresholds = ep.thresholds.with_overrides({"rupture_strict_drop": 2.5})
    assert ep.measure(b.point("w4", 3.4, drop=2.0)) == []
    (raised,) = ep.measure(b.point("w5", 3.2, drop=2.5, position=5))
    assert raised.thresholds_used["rupture_strict_drop"] == 2.5


def _lenient_session(ep, b, *, srs_first, srs_revision=1, wai_revision=1, srs_hours=2):
    """Session 4's WAI-SR (1.5 SD drop, lenient) and SRS (concern), in the given order; the SRS filled
    in `srs_hours` after the session (the WAI-SR one hour after). Returns each step's decisions."""
    wai = b.point("w4", 3.55, drop=1.5, appt="a4", revision=wai_revision)
    srs = b.measure(
        "s4", "SRS", {"total": 33.0, "alliance_concern": True}, at=4, appt="a4", revision=srs_revision
    )
    srs = replace(srs, occurred_at=srs.session_at + timedelta(hours=srs_hours))
    # judged at the episode's event clock (its newest event time), as the service does
    return [ep.measure(m, now=max(ep.now, m.occurred_at)) for m in ([srs, wai] if srs_first else [wai, srs])]


@pytest.mark.parametrize("srs_hours", [2, 0.5])  # the SRS filled in after the WAI-SR, or before it
def test_a_lenient_rupture_is_raised_alike_whichever_response_comes_second(b, srs_hours):
    """The raise names the alert by both responses (`key`) and carries the later response's time
    (`triggered_at`), so the alert id and its event do not depend on which one the rules saw second."""
    wai_first, srs_first = Episode(), Episode()
    steps_a = _lenient_session(wai_first, b, srs_first=False, srs_hours=srs_hours)
    steps_b = _lenient_session(srs_first, b, srs_first=True, srs_hours=srs_hours)
    assert steps_a[0] == [] and steps_b[0] == []
    (raised_a,), (raised_b,) = steps_a[1], steps_b[1]
    assert isinstance(raised_a, Raise) and raised_a == raised_b
    assert raised_a.key is not None and "w4" in raised_a.key and "s4" in raised_a.key
    times = [day(4) + timedelta(hours=1), day(4) + timedelta(hours=srs_hours)]
    assert raised_a.triggered_at == max(times)
    assert wai_first.state == srs_first.state


def test_a_strict_rupture_is_named_by_its_raising_input(ep, b):
    """One response, one input: the alert is named by that input as before (no key, its own time)."""
    *history, last = b.series([4.0, 4.0, 4.0, 1.0])
    ep.feed(history)
    (raised,) = ep.measure(last)
    assert isinstance(raised, Raise) and raised.key is None and raised.triggered_at is None


def test_a_lenient_rupture_raised_again_by_a_later_revision_has_another_key(b):
    """Withdrawn by amendments and raised again by later revisions of the same two responses: the
    revisions are part of the key, so the new alert does not take the withdrawn one's id."""
    ep = Episode()
    (first,) = _lenient_session(ep, b, srs_first=False)[1]
    ep.measure(b.point("w4", 4.0, drop=0.0, appt="a4", revision=2))  # no drop: w4 leaves the triggers
    calm = {"total": 39.0, "alliance_concern": False}
    (withdrawn,) = ep.measure(b.measure("s4", "SRS", calm, at=4, appt="a4", revision=2))
    assert isinstance(withdrawn, Resolve) and withdrawn.resolution == "false_positive"
    (again,) = _lenient_session(ep, b, srs_first=True, srs_revision=3, wai_revision=3)[1]
    assert isinstance(first, Raise) and isinstance(again, Raise)
    assert again.key is not None and first.key is not None and again.key != first.key


def test_an_srs_rupture_completing_a_waiting_wai_sr_is_two_changes(b):
    """The SRS raises on its own drop and completes the waiting WAI-SR in the same input: two decisions
    (raise, then update), as when the SRS comes first and the WAI-SR's update is an input of its own."""
    srs = b.point(
        "s4",
        34.0,
        drop=1.2,
        mu=36.4,
        sd_eff=2.0,
        instrument="SRS",
        appt="a4",
        extra={"alliance_concern": True},
    )
    wai = b.point("w4", 3.55, drop=1.5, appt="a4")
    wai_first, srs_first = Episode(), Episode()
    clock = max(wai.occurred_at, srs.occurred_at)  # the episode's event clock at the second input
    wai_first.measure(wai)
    steps = wai_first.measure(srs, now=clock)
    assert [type(d) for d in steps] == [Raise, Update]
    srs_first.measure(srs)
    (update,) = srs_first.measure(wai, now=clock)
    assert steps[1].evidence == update.evidence and steps[0] == srs_first.log[0][0]
    assert wai_first.state == srs_first.state
