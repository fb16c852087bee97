"""`outcome.not-on-track`: an outcome score worse than the network's expected band at its session."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from attune_alerts.domain.decisions import Raise, Resolve, Update
from attune_alerts.domain.errors import InvalidThresholds
from attune_alerts.domain.inputs import ExpectedBand, Measure
from attune_alerts.domain.state_codec import state_from_dict, state_to_dict
from attune_alerts.domain.texts import NOT_ON_TRACK, SUGGESTED_ACTIONS, TITLES
from attune_alerts.domain.thresholds import AlertThresholds
from attune_alerts.settings import load_thresholds

RAISED = [("Raise", NOT_ON_TRACK)]
FITTED = datetime(2026, 2, 1, 3, 0, tzinfo=UTC)
# A band per instrument: (median, low, high); ORS is higher-is-better, PHQ-9 and GAD-7 lower-is-better.
BANDS = {"ORS": (26.0, 20.0, 32.0), "PHQ-9": (9.0, 5.0, 13.0), "GAD-7": (7.0, 4.0, 10.0)}


def band(
    instrument: str,
    s: int,
    *,
    median: float | None = None,
    low: float | None = None,
    high: float | None = None,
) -> ExpectedBand:
    m, lo, hi = BANDS[instrument]
    return ExpectedBand(
        session_index=s,
        median=m if median is None else median,
        low=lo if low is None else low,
        high=hi if high is None else high,
        quantiles=(0.1, 0.5, 0.9),
        model_version="ors-v3" if instrument == "ORS" else "v7",
        model_fitted_at=FITTED,
        model_episodes=64,
    )


def scored(
    b,
    rid: str,
    instrument: str,
    score: float,
    s: int | None,
    *,
    revision: int = 1,
    superseded: bool = False,
    at: float | None = None,
    **edges: float,
) -> Measure:
    """An outcome total at session index `s` (weekly), with its expected band (None: no fitted model)."""
    m = b.measure(
        rid,
        instrument,
        {"total": score, **({"item9": 0} if instrument == "PHQ-9" else {})},
        at=7 * (s or 1) if at is None else at,
        revision=revision,
        superseded=superseded,
    )
    expected = None if s is None else band(instrument, s, **edges)
    return type(m)(**{**{f: getattr(m, f) for f in m.__dataclass_fields__}, "expected": expected})


@pytest.mark.parametrize(
    ("case", "instrument", "score", "s", "fires"),
    [
        ("no expected band: an unfit model never alerts", "ORS", 2.0, None, False),
        ("session 2 is too early", "ORS", 10.0, 2, False),
        ("session 3 is the first that can fire", "ORS", 19.0, 3, True),
        ("ORS exactly at the low edge is inside", "ORS", 20.0, 3, False),
        ("ORS just below the low edge", "ORS", 19.99, 3, True),
        ("ORS above the band is better, not worse", "ORS", 35.0, 4, False),
        ("PHQ-9 exactly at the high edge is inside", "PHQ-9", 13.0, 3, False),
        ("PHQ-9 just above the high edge", "PHQ-9", 14.0, 3, True),
        ("PHQ-9 below the band is better, not worse", "PHQ-9", 2.0, 5, False),
        ("GAD-7 exactly at the high edge is inside", "GAD-7", 10.0, 6, False),
        ("GAD-7 just above the high edge", "GAD-7", 11.0, 6, True),
        ("GAD-7 below the band is better", "GAD-7", 1.0, 6, False),
    ],
)
def test_boundaries(ep, b, kinds_of, case, instrument, score, s, fires):
    assert kinds_of(ep.measure(scored(b, "r1", instrument, score, s))) == (RAISED if fires else []), case


@pytest.mark.parametrize(("min_session", "s", "fires"), [(4, 3, False), (4, 4, True), (2, 2, True)])
def test_the_first_session_that_can_fire_is_per_clinic(ep, b, kinds_of, min_session, s, fires):
    ep.thresholds = AlertThresholds().with_overrides({"not_on_track_min_session": min_session})
    decisions = ep.measure(scored(b, "r1", "ORS", 12.0, s))
    assert kinds_of(decisions) == (RAISED if fires else [])
    if fires:
        assert decisions[0].thresholds_used["not_on_track_min_session"] == min_session


@pytest.mark.parametrize("value", [1, 0, 2.5, True])
def test_min_session_must_be_a_session_after_intake(value):
    with pytest.raises(InvalidThresholds):
        AlertThresholds().with_overrides({"not_on_track_min_session": value})


def test_raise_records_the_band_the_model_and_plain_language(ep, b):
    (raised,) = ep.measure(scored(b, "r4", "PHQ-9", 15.0, 4, median=8.5, low=4.25, high=12.75))
    assert isinstance(raised, Raise)
    assert (raised.rule_id, raised.rule_version, raised.severity) == (NOT_ON_TRACK, 1, "normal")
    assert raised.title == TITLES[NOT_ON_TRACK]
    for domain in ("alliance", "motivation", "social support", "life events"):
        assert domain in raised.suggested_action
    assert raised.suggested_action == SUGGESTED_ACTIONS[NOT_ON_TRACK]
    assert raised.evidence == {
        "instrument": "PHQ-9",
        "instruments": ["PHQ-9"],
        "score": 15.0,
        "response_id": "r4",
        "session_index": 4,
        "expected_median": 8.5,
        "expected_low": 4.25,
        "expected_high": 12.75,
        "quantiles": [0.1, 0.5, 0.9],
        "worse_side": "above",
        "model_version": "v7",
        "model_fitted_at": "2026-02-01T03:00:00+00:00",
        "model_episodes": 64,
        "trigger_count": 1,
    }
    assert raised.thresholds_used == {
        "not_on_track_min_session": 3,
        "band_low_quantile": 0.1,
        "band_high_quantile": 0.9,
    }


def test_ors_evidence_says_below(ep, b):
    (raised,) = ep.measure(scored(b, "o3", "ORS", 15.0, 3))
    assert raised.evidence["worse_side"] == "below" and raised.evidence["model_version"] == "ors-v3"


def test_one_alert_per_episode_listing_the_instruments(ep, b, kinds_of):
    assert kinds_of(ep.measure(scored(b, "o3", "ORS", 15.0, 3))) == RAISED
    decisions = ep.measure(scored(b, "p3", "PHQ-9", 16.0, 3))
    assert kinds_of(decisions) == [("Update", NOT_ON_TRACK)]
    update = decisions[0]
    assert isinstance(update, Update)
    assert update.evidence["instruments"] == ["ORS", "PHQ-9"]
    assert update.evidence["trigger_count"] == 2
    assert update.evidence["latest_trigger"]["instrument"] == "PHQ-9"
    assert ep.state.alert(NOT_ON_TRACK).trigger_response_ids == {"o3", "p3"}


def test_still_worse_at_the_next_session_updates(ep, b, kinds_of):
    ep.measure(scored(b, "o3", "ORS", 15.0, 3))
    decisions = ep.measure(scored(b, "o4", "ORS", 14.0, 4))
    assert kinds_of(decisions) == [("Update", NOT_ON_TRACK)]
    assert decisions[0].evidence["latest_trigger"]["session_index"] == 4


@pytest.mark.parametrize(
    ("instrument", "worse", "back"), [("ORS", 15.0, 20.0), ("PHQ-9", 18.0, 13.0), ("GAD-7", 12.0, 4.0)]
)
def test_back_inside_the_band_resolves(ep, b, kinds_of, instrument, worse, back):
    ep.measure(scored(b, "r3", instrument, worse, 3))
    decisions = ep.measure(scored(b, "r4", instrument, back, 4))
    assert kinds_of(decisions) == [("Resolve", NOT_ON_TRACK)]
    resolve = decisions[0]
    assert isinstance(resolve, Resolve) and resolve.resolution == "addressed"
    assert resolve.evidence["auto"] is True
    assert resolve.evidence["reason"] == "back inside the expected band"
    assert resolve.evidence["score"] == back
    assert ep.state.alert(NOT_ON_TRACK) is None


def test_better_than_the_band_resolves_too(ep, b, kinds_of):
    ep.measure(scored(b, "o3", "ORS", 15.0, 3))
    assert kinds_of(ep.measure(scored(b, "o4", "ORS", 36.0, 4))) == [("Resolve", NOT_ON_TRACK)]


def test_every_triggering_instrument_must_be_back_on_track(ep, b, kinds_of):
    ep.measure(scored(b, "o3", "ORS", 15.0, 3))
    ep.measure(scored(b, "p3", "PHQ-9", 16.0, 3))
    first = ep.measure(scored(b, "o4", "ORS", 25.0, 4))
    assert kinds_of(first) == [("Update", NOT_ON_TRACK)]
    assert first[0].evidence["instruments"] == ["PHQ-9"] and first[0].evidence["back_on_track"] == "ORS"
    assert ep.measure(scored(b, "g4", "GAD-7", 5.0, 4)) == []  # GAD-7 never triggered it
    assert kinds_of(ep.measure(scored(b, "p4", "PHQ-9", 9.0, 4))) == [("Resolve", NOT_ON_TRACK)]


def test_a_later_score_without_a_band_neither_fires_nor_resolves(ep, b):
    ep.measure(scored(b, "o3", "ORS", 15.0, 3))
    assert ep.measure(scored(b, "o4", "ORS", 25.0, None, at=28)) == []
    assert ep.state.alert(NOT_ON_TRACK) is not None


def test_a_late_arriving_earlier_score_neither_fires_nor_resolves(ep, b, kinds_of):
    ep.measure(scored(b, "o5", "ORS", 15.0, 5))
    assert ep.measure(scored(b, "o4", "ORS", 25.0, 4)) == []
    assert ep.state.alert(NOT_ON_TRACK) is not None
    # Only the latest score is judged: an older one that was worse does not raise after the fact.
    ep.measure(scored(b, "o6", "ORS", 25.0, 6))
    assert ep.measure(scored(b, "o3", "ORS", 10.0, 3)) == []
    assert ep.state.alert(NOT_ON_TRACK) is None


def test_after_auto_resolution_a_new_miss_raises_again(ep, b, kinds_of):
    ep.measure(scored(b, "o3", "ORS", 15.0, 3))
    ep.measure(scored(b, "o4", "ORS", 25.0, 4))
    assert kinds_of(ep.measure(scored(b, "o5", "ORS", 12.0, 5))) == RAISED


def test_episode_closed_resolves_episode_ended_and_stays_quiet(ep, b, kinds_of):
    ep.measure(scored(b, "o3", "ORS", 15.0, 3))
    decisions = ep.care(b.care("closed", 30, reason="planned"))
    assert kinds_of(decisions) == [("Resolve", NOT_ON_TRACK)]
    assert decisions[0].resolution == "episode_ended"
    assert decisions[0].evidence == {"close_reason": "planned"}
    assert ep.measure(scored(b, "o5", "ORS", 10.0, 5)) == []


def test_other_instruments_are_ignored(ep, b):
    m = b.measure("w3", "WAI-SR", {"mean": 1.0}, at=21)
    wai = type(m)(**{**{f: getattr(m, f) for f in m.__dataclass_fields__}, "expected": band("ORS", 3)})
    assert ep.measure(wai) == []


@pytest.mark.parametrize(("amended_score", "expected"), [(20.0, "Resolve"), (12.0, "Update")])
def test_amended_trigger(ep, b, kinds_of, amended_score, expected):
    ep.measure(scored(b, "o3", "ORS", 15.0, 3))
    decisions = ep.measure(scored(b, "o3", "ORS", amended_score, 3, revision=2, superseded=True))
    assert kinds_of(decisions) == [(expected, NOT_ON_TRACK)]
    if expected == "Resolve":
        assert decisions[0].resolution == "false_positive"
        assert decisions[0].evidence["explanation"] == "amended response o3 no longer meets the rule"
        assert ep.state.alert(NOT_ON_TRACK) is None
    else:
        assert decisions[0].evidence["amended_response_id"] == "o3"
        assert decisions[0].evidence["score"] == amended_score


def test_an_amended_band_can_clear_a_trigger(ep, b, kinds_of):
    """An amended intake moves every later band: measures republishes the trigger with its new band."""
    ep.measure(scored(b, "p3", "PHQ-9", 15.0, 3))
    decisions = ep.measure(scored(b, "p3", "PHQ-9", 15.0, 3, high=16.0, revision=2, superseded=True))
    assert kinds_of(decisions) == [("Resolve", NOT_ON_TRACK)]
    assert decisions[0].resolution == "false_positive"


def test_an_amendment_of_one_of_two_triggers_updates(ep, b, kinds_of):
    ep.measure(scored(b, "o3", "ORS", 15.0, 3))
    ep.measure(scored(b, "p3", "PHQ-9", 16.0, 3))
    decisions = ep.measure(scored(b, "o3", "ORS", 22.0, 3, revision=2, superseded=True))
    assert kinds_of(decisions) == [("Update", NOT_ON_TRACK)]
    assert decisions[0].evidence["instruments"] == ["PHQ-9"]
    assert ep.state.alert(NOT_ON_TRACK).trigger_response_ids == {"p3"}


def test_an_amendment_can_raise(ep, b, kinds_of):
    ep.measure(scored(b, "g3", "GAD-7", 9.0, 3))
    assert kinds_of(ep.measure(scored(b, "g3", "GAD-7", 12.0, 3, revision=2, superseded=True))) == RAISED


def test_replay_is_a_no_op(ep, b):
    m = scored(b, "o3", "ORS", 15.0, 3)
    ep.measure(m)
    before = ep.state
    assert ep.measure(m) == []
    assert ep.state == before
    assert ep.measure(scored(b, "o3", "ORS", 30.0, 3, revision=1)) == []  # an older revision: no-op too


def test_state_round_trips_through_its_document(ep, b):
    ep.measure(scored(b, "o3", "ORS", 15.0, 3))
    ep.measure(scored(b, "p3", "PHQ-9", 9.0, 3))
    assert state_from_dict(state_to_dict(ep.state)) == ep.state
    old = state_to_dict(ep.state)
    del old["outcome_seen"]  # a document written before the rule existed
    assert state_from_dict(old).outcome_seen == {}


def test_the_thresholds_file_sets_the_first_session_per_clinic(tmp_path):
    path = tmp_path / "thresholds.json"
    doc = {
        "default": {"not_on_track_min_session": 4},
        "clinics": {"north-01": {"not_on_track_min_session": 3}},
    }
    path.write_text(json.dumps(doc))
    loaded = load_thresholds(path)
    assert loaded.for_clinic("north-01").not_on_track_min_session == 3
    assert loaded.for_clinic("south-01").not_on_track_min_session == 4
    path.write_text(json.dumps({"clinics": {"north-01": {"not_on_track_min_session": 1}}}))
    with pytest.raises(ValueError, match="not_on_track_min_session"):
        load_thresholds(path)
