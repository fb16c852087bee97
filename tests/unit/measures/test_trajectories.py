"""Expected trajectories: the fit recovers known coefficients, the band covers what it should, below
n_min there is no model, the same input gives the same model, crossing lines are sorted."""

from __future__ import annotations

import hashlib
import math
import random
from datetime import UTC, datetime, timedelta

import pytest

import attune_measures.domain.revisions as revisions
from attune_measures.domain.revisions import run_batch
from attune_measures.domain.thresholds import DEFAULT
from attune_measures.domain.trajectories import (
    Band,
    EpisodeScores,
    ModelBook,
    TrajectoryModel,
    expected,
    fit,
    model_version,
    rows_of,
    usable,
)
from attune_measures.domain.versions import ResponseVersion, Tracked
from attune_measures.trajectory_models import TrajectoryModels
from attune_shared.events import MeasureScored
from tests.support.fakes import MemoryTrajectories
from tests.support.ids import as_episode, rs
from tests.unit.measures_service.builders import ors, session, srs, version

AT = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
A, B, C = 4.0, 0.7, -2.5  # PHQ-9 median path: score_s = 4 + 0.7 intake - 2.5 log(s)
SD = 1.5
Z90 = 1.2815515655446004  # the normal's 90th percentile


def synthetic(n: int, seed: int = 7, instrument: str = "PHQ-9") -> list[EpisodeScores]:
    """n episodes of 3..12 sessions whose scores follow A + B*intake + C*log(s) + N(0, SD)."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        intake = rnd.uniform(8, 24)
        sessions = rnd.randint(3, 12)
        scores = [intake] + [
            A + B * intake + C * math.log(s) + rnd.gauss(0, SD) for s in range(2, sessions + 1)
        ]
        out.append(EpisodeScores(instrument, tuple(scores)))
    return out


@pytest.fixture(scope="module")
def episodes() -> list[EpisodeScores]:
    return synthetic(600)


@pytest.fixture(scope="module")
def model(episodes: list[EpisodeScores]) -> TrajectoryModel:
    found = fit("PHQ-9", episodes, fitted_at=AT)
    assert found is not None
    return found


def test_the_fit_recovers_the_median_coefficients(model: TrajectoryModel) -> None:
    intercept, b_intake, b_log_s = model.coefficients[1]
    assert intercept == pytest.approx(A, abs=0.5)
    assert b_intake == pytest.approx(B, abs=0.03)
    assert b_log_s == pytest.approx(C, abs=0.25)
    # The outer lines sit about 1.28 SD either side of the median (normal noise).
    assert model.coefficients[0][0] == pytest.approx(A - Z90 * SD, abs=0.6)
    assert model.coefficients[2][0] == pytest.approx(A + Z90 * SD, abs=0.6)
    assert model.quantiles == (0.1, 0.5, 0.9)
    assert model.episodes == 600
    assert model.rows == len(rows_of(usable("PHQ-9", synthetic(600))))


def test_about_a_tenth_of_rows_fall_below_and_above_the_band(
    model: TrajectoryModel, episodes: list[EpisodeScores]
) -> None:
    rows = rows_of(episodes)
    below = above = 0
    for intake, s, score in rows:
        # Unclipped lines: the synthetic scores are not bounded to 0..27.
        lo, _, hi = sorted(a + b * intake + c * math.log(s) for a, b, c in model.coefficients)
        below += score < lo
        above += score > hi
    assert below / len(rows) == pytest.approx(0.10, abs=0.02)
    assert above / len(rows) == pytest.approx(0.10, abs=0.02)


def test_below_n_min_there_is_no_model() -> None:
    few = synthetic(49)
    assert fit("PHQ-9", few, fitted_at=AT) is None
    assert fit("PHQ-9", few, fitted_at=AT, n_min=49) is not None
    # Episodes with fewer than three scores, or of another instrument, do not count.
    short = [EpisodeScores("PHQ-9", (12.0, 10.0)) for _ in range(100)]
    other = synthetic(100, instrument="GAD-7")
    assert fit("PHQ-9", [*few, *short, *other], fitted_at=AT) is None
    assert len(usable("PHQ-9", [*few, *short, *other])) == 49


def test_a_constant_intake_gives_no_model() -> None:
    flat = [EpisodeScores("ORS", (20.0, 22.0, 25.0)) for _ in range(60)]
    assert fit("ORS", flat, fitted_at=AT) is None


def test_the_same_input_gives_the_same_model_whatever_its_order(episodes: list[EpisodeScores]) -> None:
    first = fit("PHQ-9", episodes, fitted_at=AT)
    shuffled = list(episodes)
    random.Random(3).shuffle(shuffled)
    again = fit("PHQ-9", shuffled, fitted_at=AT)
    assert first == again
    assert first is not None
    assert all(round(v, 6) == v for c in first.coefficients for v in c)
    # The version names the fit time, the episodes and the coefficients' digest.
    assert first.version.startswith("20261207T030000Z-e600-")
    later = fit("PHQ-9", episodes, fitted_at=AT + timedelta(days=1))
    assert later is not None and later.coefficients == first.coefficients
    assert later.version != first.version
    assert first.version.split("-")[-1] == later.version.split("-")[-1]


def test_as_dict_round_trips(model: TrajectoryModel) -> None:
    data = model.as_dict()
    assert [c["quantile"] for c in data["coefficients"]] == [0.1, 0.5, 0.9]
    assert not [k for c in data["coefficients"] for k in c if "." in k], (
        "no dotted keys (a store refuses them)"
    )
    assert TrajectoryModel.from_dict(data) == model


def _model(lines: tuple[tuple[float, float, float], ...], instrument: str = "ORS") -> TrajectoryModel:
    coefficients = (lines[0], lines[1], lines[2])
    return TrajectoryModel(
        instrument=instrument,
        coefficients=coefficients,
        episodes=50,
        rows=100,
        fitted_at=AT,
        version=model_version(instrument, AT, 50, (0.1, 0.5, 0.9), coefficients),
    )


def test_expected_band_rounds_and_sorts_crossing_lines() -> None:
    # The 10% line rises faster in log(s) than the 50% one: they cross after s = e.
    crossing = _model(((10.0, 0.5, 3.0), (11.0, 0.5, 2.0), (14.0, 0.5, 1.0)))
    assert expected(crossing, 20.0, 1) == Band(20.0, 21.0, 24.0)
    at_8 = expected(crossing, 20.0, 8)
    assert at_8.low <= at_8.median <= at_8.high
    lines_at_8 = (20 + 3 * math.log(8), 21 + 2 * math.log(8), 24 + math.log(8))  # 26.24, 25.16, 26.08
    assert at_8 == Band(round(lines_at_8[1], 2), round(lines_at_8[2], 2), round(lines_at_8[0], 2))
    assert expected(crossing, 20.0, 2).median == round(21 + 2 * math.log(2), 2)
    with pytest.raises(ValueError):
        expected(crossing, 20.0, 0)


def test_expected_band_is_clipped_to_the_instrument_range() -> None:
    phq = _model(((-5.0, 0.2, -3.0), (0.0, 0.5, -2.0), (30.0, 0.5, 0.0)), instrument="PHQ-9")
    band = expected(phq, 10.0, 3)
    assert band.low == 0.0 and band.high == 27.0
    assert band.median == round(5 - 2 * math.log(3), 2)


def test_a_member_keeps_the_model_it_was_first_published_under() -> None:
    old = _model(((1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (3.0, 1.0, 1.0)))
    new = _model(((1.5, 1.0, 1.0), (2.5, 1.0, 1.0), (3.5, 1.0, 1.0)))
    book = ModelBook(current={"ORS": new}).with_models([old])
    assert book.model_for("ORS", revision=0, pinned=None) is new
    assert book.model_for("ORS", revision=2, pinned=old.version) is old
    assert book.model_for("ORS", revision=1, pinned=None) is None
    assert book.model_for("PHQ-9", revision=0, pinned=None) is None
    assert ModelBook().model_for("ORS", revision=1, pinned=old.version) is None


# The expectation on measure.scored (revisions.recompute_group with a ModelBook).


def _run(book: dict[str, Tracked], batch: list[ResponseVersion], models: ModelBook) -> list[MeasureScored]:
    _, settled = run_batch(book, batch, lambda _: DEFAULT, models)
    book.clear()
    book.update(settled.book)
    return settled.events


def test_measures_at_session_two_on_carry_the_current_models_band() -> None:
    model = _model(((0.0, 1.0, 1.0), (2.0, 1.0, 2.0), (4.0, 1.0, 3.0)))
    book: dict[str, Tracked] = {}
    events = _run(book, [ors("o1", 20, 0), ors("o2", 22, 1), ors("o3", 26, 2)], ModelBook({"ORS": model}))
    assert [e.expected is None for e in events] == [True, False, False]
    second = events[1].expected
    assert second is not None
    assert (second.session_index, second.median, second.low, second.high) == (
        2,
        round(22 + 2 * math.log(2), 2),
        round(20 + math.log(2), 2),
        round(24 + 3 * math.log(2), 2),
    )
    assert (second.model_version, second.model_fitted_at, second.model_episodes) == (model.version, AT, 50)
    assert second.quantiles == (0.1, 0.5, 0.9)
    assert events[2].expected is not None and events[2].expected.session_index == 3
    # Other instruments carry none.
    srs_events = _run(book, [srs("s1", 36, 0), srs("s2", 36, 1)], ModelBook({"ORS": model}))
    assert all(e.expected is None for e in srs_events)


def test_a_refit_changes_only_measures_scored_after_it() -> None:
    old = _model(((0.0, 1.0, 1.0), (2.0, 1.0, 2.0), (4.0, 1.0, 3.0)))
    new = _model(((1.0, 1.0, 1.0), (3.0, 1.0, 2.0), (5.0, 1.0, 3.0)))
    book: dict[str, Tracked] = {}
    _run(book, [ors("o1", 20, 0), ors("o2", 22, 1)], ModelBook({"ORS": old}))
    # After the refit the group is recomputed (a new member), but o2 keeps its band: nothing republished.
    events = _run(book, [ors("o3", 26, 2)], ModelBook({"ORS": new}).with_models([old]))
    assert [(e.response_id, e.expected.model_version if e.expected else None) for e in events] == [
        (rs("o3"), new.version)
    ]
    # A late intake moves every point one place: o2 is recomputed under its own model at index 3.
    events = _run(book, [ors("o0", 18, -1)], ModelBook({"ORS": new}).with_models([old]))
    by_id = {e.response_id: e.expected for e in events}
    assert by_id[rs("o0")] is None
    o2 = by_id[rs("o2")]
    assert o2 is not None and (o2.model_version, o2.session_index) == (old.version, 3)
    assert o2.median == round(2 + 18 + 2 * math.log(3), 2)


def test_measures_published_without_a_model_keep_none_and_their_fingerprint() -> None:
    book: dict[str, Tracked] = {}
    first = _run(book, [ors("o1", 20, 0), ors("o2", 22, 1)], ModelBook())
    assert all(e.expected is None for e in first)
    assert '"expected"' in first[1].model_dump_json()  # published as null, additive
    # Without an expectation the digest is the one a measure had before the field existed.
    before = first[1].model_dump_json(exclude={*revisions._NOT_CONTENT, "expected"})
    assert revisions.fingerprint(first[1]) == hashlib.sha256(before.encode()).hexdigest()
    model = _model(((0.0, 1.0, 1.0), (2.0, 1.0, 2.0), (4.0, 1.0, 3.0)))
    events = _run(book, [ors("o3", 21, 2)], ModelBook({"ORS": model}))
    assert [e.response_id for e in events] == [rs("o3")]
    assert events[0].expected is not None and events[0].expected.session_index == 3


def test_settle_reports_the_outcome_series_it_recomputed() -> None:
    _, settled = run_batch(
        {},
        [ors("o1", 20, 0), ors("o2", 22, 1), srs("s1", 36, 0), version("p1", "PHQ-9", [1] * 9, 0)],
        lambda _: DEFAULT,
    )
    assert settled.series == {
        f"{as_episode('ep_1')}:ORS": (20.0, 22.0),
        f"{as_episode('ep_1')}:PHQ-9": (9.0,),
    }


def test_settle_reports_no_series_for_a_replay() -> None:
    batch = [ors("o1", 20, 0), ors("o2", 22, 1)]
    _, first = run_batch({}, batch, lambda _: DEFAULT)
    _, again = run_batch(first.book, batch, lambda _: DEFAULT)
    assert again.events == [] and again.series == {}


def test_settle_reports_the_series_an_amendment_moved_a_member_out_of() -> None:
    _, first = run_batch({}, [ors("o1", 20, 0), ors("o2", 22, 1), ors("o3", 24, 2)], lambda _: DEFAULT)
    moved = ors("o2", 22, 1, status="amended", episode="ep_2", occurred=session(1) + timedelta(days=2))
    _, settled = run_batch(first.book, [moved], lambda _: DEFAULT)
    assert settled.series == {f"{as_episode('ep_1')}:ORS": (20.0, 24.0), f"{as_episode('ep_2')}:ORS": (22.0,)}


# The service's models (trajectory_models.TrajectoryModels) over an in-memory TrajectoryStore.


class Clock:
    def __init__(self) -> None:
        self.now = AT

    def __call__(self) -> datetime:
        return self.now


async def test_a_refit_keeps_each_version_and_says_why_an_instrument_is_inactive() -> None:
    store = MemoryTrajectories(synthetic(60))
    clock = Clock()
    models = TrajectoryModels(store, n_min=50, refit_s=3600, clock=clock)
    assert models.due(clock.now), "no model yet and never tried: the start-up attempt"
    found = {s.instrument: s for s in await models.refit()}
    assert found["PHQ-9"].active and found["PHQ-9"].episodes_available == 60
    assert found["PHQ-9"].model is not None and found["PHQ-9"].model.fitted_at == AT
    assert not found["ORS"].active
    assert found["ORS"].reason == "0 closed episodes with at least 3 scores; 50 needed"
    assert models.health()["GAD-7"] == {
        "status": "inactive",
        "version": None,
        "episodes_available": 0,
        "n_min": 50,
        "reason": "0 closed episodes with at least 3 scores; 50 needed",
    }
    # ORS and GAD-7 have none: the next attempt waits the interval from this one.
    clock.now = AT + timedelta(minutes=59)
    assert not models.due(clock.now)
    clock.now = AT + timedelta(hours=1)
    assert models.due(clock.now)
    await models.refit()
    assert len(store.models) == 2, "every version kept"
    assert models.book.current["PHQ-9"].fitted_at == AT + timedelta(hours=1)
    # A member pinned to the first version finds it again.
    first = next(m for m in store.models.values() if m.fitted_at == AT)
    fresh = TrajectoryModels(store, n_min=50, refit_s=3600, clock=clock)
    await fresh.reload()
    pinned = Tracked(version("p2", "PHQ-9", [1] * 9, 1), revision=1, trajectory=first.version)
    book = await fresh.covering(fresh.book, [pinned])
    assert book.model_for("PHQ-9", revision=1, pinned=first.version) == first


async def test_with_every_instrument_fitted_a_refit_is_due_when_the_oldest_model_is() -> None:
    store = MemoryTrajectories(
        [*synthetic(50), *synthetic(50, instrument="ORS"), *synthetic(50, instrument="GAD-7")]
    )
    clock = Clock()
    first = TrajectoryModels(store, n_min=50, refit_s=3600, clock=clock)
    await first.refit()
    # Another replica starting 10 minutes later finds fresh models: nothing to refit.
    clock.now = AT + timedelta(minutes=10)
    other = TrajectoryModels(store, n_min=50, refit_s=3600, clock=clock)
    await other.reload()
    assert not other.due(clock.now)
    clock.now = AT + timedelta(hours=1)
    assert other.due(clock.now)


async def test_the_schedule_tries_at_start_and_after_a_failure_waits_before_trying_again() -> None:
    class FailingOnce(MemoryTrajectories):
        failures = 1

        async def closed_series(self) -> list[EpisodeScores]:
            if self.failures:
                self.failures -= 1
                raise ConnectionError("store away")
            return await super().closed_series()

    store = FailingOnce(synthetic(50))
    clock = Clock()
    models = TrajectoryModels(store, n_min=50, refit_s=3600, poll_s=0, clock=clock)
    polls = 0

    def stopping() -> bool:
        nonlocal polls
        polls += 1
        return polls > 3

    await models.run(stopping)  # three polls: the start-up attempt fails, the next two wait
    assert models.checked_at is None and models.retry_at == AT + timedelta(minutes=10)
    assert not store.models
    clock.now, polls = AT + timedelta(minutes=10), 0
    await models.run(stopping)
    assert models.checked_at == clock.now and set(models.book.current) == {"PHQ-9"}
    assert len(store.models) == 1, "fitted once, then not due again within the interval"
