"""The history behind the expected trajectories, the models the truth fits on it, and the bands.

The models are recomputed here from the history's bytes, scored by measures' own scoring, so the test
is a second path to the same models: the one measures takes once the records have reached it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest

from attune_cli.simulator import Scenario, SimConfig, generate
from attune_cli.simulator.history import HISTORY_SCORES, band, history_counts
from attune_cli.simulator.network import build_clinics
from attune_intake.domain.validation import parse_envelope
from attune_measures.domain.scoring import score as measures_score
from attune_measures.domain.trajectories import (
    N_MIN,
    TRAJECTORY_INSTRUMENTS,
    EpisodeScores,
    TrajectoryModel,
    expected,
    fit,
)

RELIABLE = {"ORS": 5.0, "PHQ-9": 6.0, "GAD-7": 4.0}


@pytest.fixture(scope="module")
def history_scenario() -> Scenario:
    return generate(SimConfig(clinics=3, clients=40, weeks=12, seed=7, history=True))


def _series(scenario: Scenario) -> list[EpisodeScores]:
    """Each history episode's scores per instrument, read back from the records in send order."""
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    for record in scenario.history:
        env = parse_envelope(record.value)
        p: Any = env.payload
        if env.event_type == "questionnaire.completed":
            primary = measures_score(p.instrument, list(p.items)).primary
            assert primary is not None
            scores[(str(record.key), p.instrument)].append(primary)
    return [EpisodeScores(instrument, tuple(s)) for (_, instrument), s in sorted(scores.items())]


def test_without_history_nothing_changes() -> None:
    scenario = generate(SimConfig(clinics=3, clients=40, weeks=12, seed=7))
    assert scenario.history == () and scenario.truth.trajectories == {}
    rules = {a.rule_id for c in scenario.truth.clients for a in c.expected_alerts}
    assert "outcome.not-on-track" not in rules


def test_every_instrument_in_use_has_n_min_closed_episodes_before_the_period(
    history_scenario: Scenario,
) -> None:
    cfg = history_scenario.config
    series = _series(history_scenario)
    for instrument in TRAJECTORY_INSTRUMENTS:
        mine = [s for s in series if s.instrument == instrument]
        assert len(mine) >= N_MIN
        assert all(len(s.scores) == HISTORY_SCORES for s in mine)
    envelopes = [parse_envelope(r.value) for r in history_scenario.history]
    first_month = cfg.start.replace(day=1)
    assert all(e.occurred_at.date() < first_month for e in envelopes)
    closed = {
        r.key
        for r, e in zip(history_scenario.history, envelopes, strict=True)
        if e.event_type == "episode.closed"
    }
    assert closed == {r.key for r in history_scenario.history}  # every history episode is closed
    assert all(r.kind == "event" for r in history_scenario.history)  # no noise, no poison
    # as few as that takes: one referral, the scores and the closure per episode, no appointments
    assert {e.event_type for e in envelopes} == {
        "client.referred",
        "questionnaire.completed",
        "episode.closed",
    }


def test_history_counts_cover_each_instrument_with_n_min() -> None:
    from random import Random

    for clinics in (1, 2, 3, 5, 7):
        built = build_clinics(SimConfig(clinics=clinics), Random(0))
        counts = history_counts(built)
        for instrument in TRAJECTORY_INSTRUMENTS:
            users = [c for c in built if instrument in c.outcomes]
            if users:
                assert sum(counts[c.clinic_id] for c in users) >= N_MIN


def test_the_history_never_deteriorates_reliably_so_it_raises_nothing(history_scenario: Scenario) -> None:
    for s in _series(history_scenario):
        for value in s.scores[1:]:
            worse = s.scores[0] - value if s.instrument == "ORS" else value - s.scores[0]
            assert worse <= RELIABLE[s.instrument] - 2.0
    mrns = {getattr(parse_envelope(r.value).payload, "mrn", None) for r in history_scenario.history}
    assert not mrns & {c.mrn for c in history_scenario.truth.clients}  # clients of their own, no alerts


def test_the_truths_models_are_measures_fit_on_the_history_as_measures_scores_it(
    history_scenario: Scenario,
) -> None:
    truth = history_scenario.truth.trajectories
    series = _series(history_scenario)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for instrument in TRAJECTORY_INSTRUMENTS:
        model = fit(instrument, series, fitted_at=at)
        assert model is not None
        stated = TrajectoryModel.from_dict(truth["models"][instrument])
        assert stated.coefficients == model.coefficients
        assert (stated.episodes, stated.rows) == (model.episodes, model.rows)
    assert truth["history"]["events"] == len(history_scenario.history)


def test_band_agrees_with_measures_expected_band(history_scenario: Scenario) -> None:
    for data in history_scenario.truth.trajectories["models"].values():
        model = TrajectoryModel.from_dict(data)
        top = 40 if model.instrument == "ORS" else 27
        for intake in range(0, top + 1):
            for s in range(1, 15):
                ours, theirs = band(model, float(intake), s), expected(model, float(intake), s)
                assert (ours.low, ours.median, ours.high) == (theirs.low, theirs.median, theirs.high)
