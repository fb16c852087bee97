"""The alliance series: ordering, late and amended responses, and mu / sd / drop by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from attune_measures.domain.series import (
    SD_FLOOR,
    SeriesContext,
    SeriesPoint,
    context_for,
    order_series,
    recompute_series,
    upsert_point,
)

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
WAI_FLOOR = 0.30


def _day(n: int) -> datetime:
    return T0 + timedelta(days=7 * n)


def _point(rid: str, day: int, value: float, revision: int = 0) -> SeriesPoint:
    return SeriesPoint(response_id=rid, session_at=_day(day), score=value, revision=revision)


def _stats(context: SeriesContext) -> tuple[float | None, ...]:
    return (context.mu, context.sd_within, context.sd_eff, context.drop)


def _approx(*values: float | None) -> tuple[object, ...]:
    return tuple(None if v is None else pytest.approx(v, abs=5e-5) for v in values)


def test_sd_floor_defaults() -> None:
    assert dict(SD_FLOOR) == {"WAI-SR": 0.30, "SRS": 2.0}


def test_v_shaped_wai_sr_series_by_hand() -> None:
    scores = [4.0, 4.1, 4.2, 3.2, 3.6, 4.1]
    points = [_point(f"r{i}", i, s) for i, s in enumerate(scores)]
    contexts = [c for _, c in recompute_series(points, sd_floor=WAI_FLOOR)]
    assert [c.earlier_count for c in contexts] == [0, 1, 2, 3, 4, 5]
    assert [c.score for c in contexts] == scores
    # Fewer than 3 earlier scores: no statistics at all.
    for context in contexts[:3]:
        assert _stats(context) == (None, None, None, None)
    # a4 = 3.2 after [4.0, 4.1, 4.2]: mu 4.1, deviations -.1, 0, .1, ss .02, var .01, sd .1;
    # sd_eff = max(.1, .3) = .3; drop = (4.1 - 3.2) / .3 = 3.0.
    assert _stats(contexts[3]) == _approx(4.1000, 0.1000, 0.3000, 3.0000)
    # a5 = 3.6 after [4.0, 4.1, 4.2, 3.2]: mu 15.5 / 4 = 3.875; deviations .125, .225, .325, -.675;
    # ss .015625 + .050625 + .105625 + .455625 = .6275; var .6275 / 3 = .209167; sd .4573;
    # drop = .275 / .4573 = .6013.
    assert _stats(contexts[4]) == _approx(3.8750, 0.4573, 0.4573, 0.6013)
    # a6 = 4.1 after [4.0, 4.1, 4.2, 3.2, 3.6]: mu 19.1 / 5 = 3.82; deviations .18, .28, .38, -.62, -.22;
    # ss .0324 + .0784 + .1444 + .3844 + .0484 = .688; var .688 / 4 = .172; sd .4147;
    # drop = -.28 / .4147 = -.6751 (a rise).
    assert _stats(contexts[5]) == _approx(3.8200, 0.4147, 0.4147, -0.6751)


def test_only_the_five_most_recent_earlier_scores_count() -> None:
    # Earlier [1, 2, 4, 4, 4, 4, 4]: the last five are flat 4.0, so mu 4, sd 0, sd_eff .3,
    # drop (4 - 3) / .3 = 3.3333. With all seven, mu would be 23 / 7 = 3.2857.
    context = context_for([1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0], 3.0, sd_floor=WAI_FLOOR)
    assert context.earlier_count == 7
    assert _stats(context) == _approx(4.0000, 0.0000, 0.3000, 3.3333)


def test_fewer_than_k_min_earlier_scores_gives_no_drop() -> None:
    context = context_for([4.0, 4.1], 2.0, sd_floor=WAI_FLOOR)
    assert context == SeriesContext(
        score=2.0, earlier_count=2, mu=None, sd_within=None, sd_eff=None, drop=None
    )
    assert context_for([], 2.0, sd_floor=WAI_FLOOR).earlier_count == 0
    # k_min is configurable: with k_min 2 the same history has statistics.
    assert context_for([4.0, 4.1], 2.0, sd_floor=WAI_FLOOR, k_min=2).drop is not None


def test_sd_floor_used_when_earlier_scores_are_flat() -> None:
    # WAI-SR mean: flat 4.0 history, sd 0 -> floor .3; drop (4.0 - 3.4) / .3 = 2.0.
    wai = context_for([4.0, 4.0, 4.0], 3.4, sd_floor=SD_FLOOR["WAI-SR"])
    assert _stats(wai) == _approx(4.0, 0.0, 0.3, 2.0)
    # SRS total: flat 38, sd 0 -> floor 2.0; drop (38 - 34) / 2 = 2.0.
    srs = context_for([38.0, 38.0, 38.0], 34.0, sd_floor=SD_FLOOR["SRS"])
    assert _stats(srs) == (38.0, 0.0, 2.0, 2.0)


def test_sd_within_above_the_floor_is_used() -> None:
    # SRS earlier [30, 36, 39]: mu 35, deviations -5, 1, 4, ss 42, var 21, sd 4.5826 > 2;
    # drop (35 - 30) / 4.5826 = 1.0911.
    context = context_for([30.0, 36.0, 39.0], 30.0, sd_floor=SD_FLOOR["SRS"])
    assert _stats(context) == _approx(35.0, 4.5826, 4.5826, 1.0911)


def test_order_series_sorts_by_session_then_response_id() -> None:
    a, b, c = _point("b", 1, 4.0), _point("a", 1, 3.0), _point("z", 0, 5.0)
    assert order_series([a, b, c]) == [c, b, a]


def test_late_arrival_lands_in_order_and_changes_later_contexts() -> None:
    on_time = [_point("r1", 1, 4.0), _point("r2", 2, 4.0), _point("r3", 3, 4.0), _point("r5", 5, 3.0)]
    on_time.append(_point("r6", 6, 4.0))
    before = {p.response_id: c for p, c in recompute_series(on_time, sd_floor=WAI_FLOOR)}
    # r5 after [4, 4, 4]: mu 4, sd 0, floor .3, drop 1 / .3 = 3.3333.
    assert _stats(before["r5"]) == _approx(4.0, 0.0, 0.3, 3.3333)
    # r6 after [4, 4, 4, 3]: mu 3.75; deviations .25 x3, -.75; ss .75; var .25; sd .5; drop -.5.
    assert _stats(before["r6"]) == _approx(3.75, 0.5, 0.5, -0.5)

    late = _point("r4", 4, 3.0)  # an earlier session, arriving last
    after = recompute_series([*on_time, late], sd_floor=WAI_FLOOR)
    assert [p.response_id for p, _ in after] == ["r1", "r2", "r3", "r4", "r5", "r6"]
    contexts = {p.response_id: c for p, c in after}
    assert _stats(contexts["r4"]) == _approx(4.0, 0.0, 0.3, 3.3333)
    # r5 now after [4, 4, 4, 3]: mu 3.75, sd .5, drop (3.75 - 3) / .5 = 1.5.
    assert _stats(contexts["r5"]) == _approx(3.75, 0.5, 0.5, 1.5)
    # r6 now after [4, 4, 4, 3, 3]: mu 3.6; deviations .4 x3, -.6 x2; ss .48 + .72 = 1.2; var .3;
    # sd .5477; drop -.4 / .5477 = -.7303.
    assert _stats(contexts["r6"]) == _approx(3.6, 0.5477, 0.5477, -0.7303)
    assert contexts["r6"].earlier_count == 5
    # Points before the late one are untouched.
    for rid in ("r1", "r2", "r3"):
        assert contexts[rid] == before[rid]


def test_amendment_replaces_in_place_and_recomputes_later_contexts() -> None:
    series = [_point("r1", 1, 4.0), _point("r2", 2, 4.0), _point("r3", 3, 4.0), _point("r4", 4, 3.0)]
    series.append(_point("r5", 5, 4.0))
    before = {p.response_id: c for p, c in recompute_series(series, sd_floor=WAI_FLOOR)}
    assert _stats(before["r5"]) == _approx(3.75, 0.5, 0.5, -0.5)

    amended = upsert_point(series, _point("r4", 4, 4.0, revision=1))
    assert [(p.response_id, p.score) for p in amended] == [
        ("r1", 4.0),
        ("r2", 4.0),
        ("r3", 4.0),
        ("r4", 4.0),
        ("r5", 4.0),
    ]
    after = {p.response_id: c for p, c in recompute_series(amended, sd_floor=WAI_FLOOR)}
    # r4 is now 4.0 after a flat 4.0 history: drop 0.
    assert _stats(after["r4"]) == _approx(4.0, 0.0, 0.3, 0.0)
    # r5 after [4, 4, 4, 4]: mu 4, sd 0, floor .3, drop 0 (was -.5).
    assert _stats(after["r5"]) == _approx(4.0, 0.0, 0.3, 0.0)


def test_a_stale_original_arriving_after_its_amendment_is_ignored() -> None:
    series = [_point("r1", 1, 4.0), _point("r2", 2, 3.0, revision=1)]
    assert upsert_point(series, _point("r2", 2, 2.0, revision=0)) == series
    # The same revision again (a replay) keeps one point.
    assert upsert_point(series, _point("r2", 2, 3.0, revision=1)) == series


def test_recompute_passes_window_and_k_min() -> None:
    points = [_point(f"r{i}", i, s) for i, s in enumerate([1.0, 4.0, 4.0, 3.0])]
    # k_min 4: the fourth point has only 3 earlier scores.
    assert recompute_series(points, sd_floor=WAI_FLOOR, k_min=4)[-1][1].drop is None
    # window 2: mu of [4, 4] = 4, sd 0, floor .3, drop 1 / .3 = 3.3333.
    last = recompute_series(points, sd_floor=WAI_FLOOR, window=2, k_min=2)[-1][1]
    assert _stats(last) == _approx(4.0, 0.0, 0.3, 3.3333)


@pytest.mark.parametrize("kwargs", [{"sd_floor": 0.0}, {"sd_floor": 0.3, "window": 0}])
def test_context_for_rejects_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        context_for([4.0, 4.0, 4.0], 3.0, **kwargs)  # type: ignore[arg-type, unused-ignore]
