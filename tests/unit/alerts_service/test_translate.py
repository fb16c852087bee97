"""Shared events -> rule inputs, and the repair figures reporting needs (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from attune_alerts.domain.decisions import Resolve
from attune_alerts.domain.inputs import Measure, SeriesPoint
from attune_alerts.domain.rules import on_care, on_measure
from attune_alerts.domain.state import EpisodeState
from attune_alerts.domain.texts import NOT_ON_TRACK
from attune_alerts.domain.thresholds import AlertThresholds
from attune_alerts.domain.translate import repair_extras, to_care, to_measure, tracking_at_raise
from attune_shared.events import ExpectedBand
from tests.support.ids import rs
from tests.unit.alerts_service.builders import Client, week


def test_a_measure_keeps_numbers_and_flags_and_drops_text_scores() -> None:
    c = Client()
    ev = c.phq9("q1", item9=2, total=14, at=week(1))
    m = to_measure(ev)
    assert m.scores == {"total": 14, "item9": 2, "prorated": False}  # "band" is text: not a rule input
    assert (m.response_id, m.revision, m.instrument, m.session_at) == (rs("q1"), 1, "PHQ-9", week(1))
    s = to_measure(c.wai_series([4.0, 4.1, 3.9, 3.0])[-1]).series
    assert s is not None and s.position == 4 and s.earlier_count == 3 and s.drop is not None and s.drop > 2
    ors = to_measure(c.ors("o2", 22, intake=28, at=week(2), revision=2, superseded=True))
    assert ors.change is not None and ors.change.reliable_deterioration and ors.superseded


def test_an_expected_band_reaches_the_rules_and_judges_not_on_track() -> None:
    c = Client()
    fitted = datetime(2026, 2, 1, tzinfo=UTC)
    band = ExpectedBand(
        session_index=3,
        median=26.0,
        low=20.0,
        high=32.0,
        quantiles=(0.1, 0.5, 0.9),
        model_version="ors-v1",
        model_fitted_at=fitted,
        model_episodes=51,
    )
    ev = c.ors("o3", 15, intake=18, at=week(3)).model_copy(update={"expected": band})
    m = to_measure(ev)
    assert m.expected is not None
    assert (m.expected.session_index, m.expected.low, m.expected.high, m.expected.median) == (
        3,
        20.0,
        32.0,
        26.0,
    )
    assert (m.expected.model_version, m.expected.model_fitted_at, m.expected.model_episodes) == (
        "ors-v1",
        fitted,
        51,
    )
    assert m.expected.quantiles == (0.1, 0.5, 0.9)
    _, decisions = on_measure(EpisodeState(), m, AlertThresholds(), week(3))
    assert [(type(d).__name__, d.rule_id) for d in decisions] == [("Raise", NOT_ON_TRACK)]
    assert to_measure(c.ors("o4", 15, intake=18, at=week(4))).expected is None


def test_care_events_map_to_rule_kinds_and_context_events_to_none() -> None:
    c = Client()
    assert to_care(c.attended("a1", week(1))).kind == "attended"  # type: ignore[union-attr]
    missed = to_care(c.missed("a2", week(2)))
    assert missed is not None and missed.kind == "missed" and missed.missed_reason == "no_show"
    closed = to_care(c.closed(week(3), "planned"))
    assert closed is not None and closed.kind == "closed" and closed.close_reason == "planned"
    assert to_care(c.opened()).kind == "opened"  # type: ignore[union-attr]


def _run(measures: list[Measure]) -> EpisodeState:
    state = EpisodeState()
    for m in measures:
        state, _ = on_measure(state, m, AlertThresholds(), m.occurred_at)
    return state


def test_sessions_to_repair_from_the_trough_and_since_raised() -> None:
    c = Client()
    series = [to_measure(e) for e in c.wai_series([4.0, 4.1, 3.9, 4.0, 3.0, 2.9, 4.2])]
    state = _run(series[:5])
    tracking = tracking_at_raise("alliance.rupture", state)
    assert tracking["raised_position"] == 5
    state = _run(series[:6])  # 2.9 at position 6 moves the trough
    d = Resolve("alliance.rupture", "repaired", {"sessions_after_trough": 1})
    assert repair_extras(d, tracking, series[6], state) == {
        "sessions_to_repair": 1,
        "sessions_to_repair_from": "trough",
        "sessions_since_raised": 2,
    }
    assert repair_extras(Resolve("alliance.rupture", "episode_ended", {}), tracking, series[6], state) == {}
    assert repair_extras(Resolve("outcome.deterioration", "repaired", {}), tracking, series[6], state) == {}


def test_sessions_to_repair_for_psq_alerts_from_the_raise() -> None:
    c = Client()
    series = [to_measure(e) for e in c.wai_series([4.0, 4.1, 3.9, 4.0])]
    psq = replace(
        series[0],
        response_id=rs("p1"),
        instrument="PSQ",
        scores={"rupture_reported": True, "tension": 4, "resolution": 2},
        series=None,
        session_at=week(4),
        occurred_at=week(4) + timedelta(hours=1),
    )
    state = _run([*series, psq])
    tracking = tracking_at_raise("alliance.rupture", state)
    assert tracking["raised_position"] == 4
    later = replace(series[0], response_id=rs("w6"), series=SeriesPoint(f"{c.episode}:WAI-SR", 4.2, 6, 5))
    d = Resolve("alliance.rupture", "repaired", {"repair": "alliance_score"})
    assert repair_extras(d, tracking, later, state) == {
        "sessions_to_repair": 2,
        "sessions_to_repair_from": "raised",
    }
    # In-session repair on a later PSQ: attended sessions after the trigger, up to the repairing one.
    th = AlertThresholds()
    for n in (5, 6):
        state, _ = on_care(state, to_care(c.attended(f"a{n}", week(n))), th, week(n))  # type: ignore[arg-type]
    repair_psq = replace(
        psq, response_id=rs("p2"), session_at=week(6), scores={"rupture_reported": False, "resolution": 5}
    )
    extras = repair_extras(
        Resolve("alliance.rupture", "repaired", {"repair": "in_session_repair"}), tracking, repair_psq, state
    )
    assert extras == {
        "sessions_to_repair": 2,
        "sessions_to_repair_from": "raised",
        "counted_by": "attended_sessions",
    }
