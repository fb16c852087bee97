"""Property-based checks of the scoring, change and series rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attune_measures.domain.scoring import UnscorableResponse, score
from attune_measures.domain.series import SeriesPoint, recompute_series
from attune_measures.domain.thresholds import DEFAULT

WAI_SUBSCALES = {"task": (0, 1, 9, 11), "bond": (2, 4, 6, 8), "goal": (3, 5, 7, 10)}

wai_items = st.lists(st.integers(1, 5), min_size=12, max_size=12)
tenths = st.integers(0, 100).map(lambda t: t / 10)  # 0.0 .. 10.0, one decimal


@st.composite
def wai_with_prorating(draw: st.DrawFn) -> list[int | None]:
    """A WAI-SR response with at most one missing item in each subscale."""
    items: list[int | None] = list(draw(wai_items))
    for indexes in WAI_SUBSCALES.values():
        dropped = draw(st.sampled_from((None, *indexes)))
        if dropped is not None:
            items[dropped] = None
    return items


def _assert_subscales_add_up(values: Any) -> None:
    assert (values["task"] + values["bond"] + values["goal"]) * 4 == pytest.approx(values["total"], abs=1e-9)
    assert values["mean"] * 12 == pytest.approx(values["total"], abs=1e-9)


@given(wai_items)
def test_wai_sr_complete_subscales_add_up_to_the_total(items: list[int]) -> None:
    values = score("WAI-SR", items).values
    assert values["total"] == sum(items)
    assert values["items_missing"] == 0
    _assert_subscales_add_up(values)


@given(wai_with_prorating())
def test_wai_sr_prorated_subscales_add_up_and_stay_in_scale(items: list[int | None]) -> None:
    result = score("WAI-SR", items)
    values = result.values
    _assert_subscales_add_up(values)
    assert values["items_missing"] == items.count(None)
    assert 1.0 <= values["mean"] <= 5.0  # type: ignore[operator, unused-ignore]
    for name in WAI_SUBSCALES:
        assert 1.0 <= values[name] <= 5.0  # type: ignore[operator, unused-ignore]
    assert result.primary == values["mean"]


@given(wai_items, st.sampled_from(list(WAI_SUBSCALES.values())), st.data())
def test_wai_sr_two_missing_in_a_subscale_is_rejected(
    items: list[int], subscale: tuple[int, ...], data: st.DataObject
) -> None:
    dropped = data.draw(st.lists(st.sampled_from(subscale), min_size=2, max_size=4, unique=True))
    response: list[int | None] = [None if i in dropped else v for i, v in enumerate(items)]
    with pytest.raises(UnscorableResponse):
        score("WAI-SR", response)


@given(st.lists(st.integers(0, 3), min_size=9, max_size=9), st.sampled_from([None, *range(8)]))
def test_phq9_prorated_total_stays_in_scale_and_near_the_exact_value(
    items: list[int], missing: int | None
) -> None:
    response: list[int | None] = list(items)
    if missing is not None:
        response[missing] = None
    values = score("PHQ-9", response).values
    total = values["total"]
    assert isinstance(total, int)
    assert 0 <= total <= 27
    present = sum(v for v in response if v is not None)
    exact = Fraction(present * 9, 8) if missing is not None else Fraction(present)
    # Rounded half up: never more than half a point away, and a half always goes up.
    assert exact - Fraction(1, 2) < total <= exact + Fraction(1, 2)
    assert values["prorated"] is (missing is not None)
    assert values["item9"] == items[8]


@given(st.lists(st.integers(0, 3), min_size=7, max_size=7), st.sampled_from([None, *range(7)]))
def test_gad7_prorated_total_stays_in_scale_and_near_the_exact_value(
    items: list[int], missing: int | None
) -> None:
    response: list[int | None] = list(items)
    if missing is not None:
        response[missing] = None
    total = score("GAD-7", response).values["total"]
    assert isinstance(total, int)
    assert 0 <= total <= 21
    present = sum(v for v in response if v is not None)
    exact = Fraction(present * 7, 6) if missing is not None else Fraction(present)
    assert exact - Fraction(1, 2) < total <= exact + Fraction(1, 2)


@given(st.lists(tenths, min_size=4, max_size=4))
def test_srs_total_is_the_exact_decimal_sum_and_in_scale(items: list[float]) -> None:
    values = score("SRS", items).values
    exact = sum(Decimal(str(v)) for v in items)
    assert values["total"] == float(exact)
    assert 0.0 <= values["total"] <= 40.0  # type: ignore[operator, unused-ignore]
    assert values["alliance_concern"] is (exact < 36)
    assert values["item_concern"] is any(Decimal(str(v)) < 9 for v in items)


@given(st.lists(tenths, min_size=4, max_size=4))
def test_ors_total_is_the_exact_decimal_sum(items: list[float]) -> None:
    values = score("ORS", items).values
    exact = sum(Decimal(str(v)) for v in items)
    assert values["total"] == float(exact)
    assert values["clinical_range"] is (exact <= 25)


overrides = st.fixed_dictionaries(
    {},
    optional={
        "srs_cutoff": st.integers(0, 400).map(lambda t: t / 10),
        "srs_cutoff_inclusive": st.booleans(),
        "srs_item_cutoff": st.integers(0, 100).map(lambda t: t / 10),
        "ors_clinical_cutoff": st.integers(0, 40),
        "psq_repair_min": st.integers(1, 5),
        "reliable_change_ors": st.integers(1, 10),
        "sd_floor_srs": st.floats(0.1, 5.0),
    },
)


@given(overrides, st.randoms(use_true_random=False), st.lists(tenths, min_size=4, max_size=4))
def test_scoring_does_not_depend_on_the_order_of_overrides(
    mapping: dict[str, Any], rnd: Any, items: list[float]
) -> None:
    keys = list(mapping)
    rnd.shuffle(keys)
    shuffled = {key: mapping[key] for key in keys}
    reversed_ = dict(reversed(list(mapping.items())))
    a, b, c = (DEFAULT.with_overrides(m) for m in (mapping, shuffled, reversed_))
    assert a == b == c
    for instrument in ("SRS", "ORS"):
        assert score(instrument, items, thresholds=a) == score(instrument, items, thresholds=c)
    psq = [1, 3, min(5, max(1, int(items[0] // 2) or 1))]
    assert score("PSQ", psq, thresholds=a) == score("PSQ", psq, thresholds=b)


@given(st.lists(st.integers(10, 50).map(lambda t: t / 10), min_size=1, max_size=12), st.randoms())
def test_series_contexts_do_not_depend_on_arrival_order(scores: list[float], rnd: Any) -> None:
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    points = [SeriesPoint(f"r{i:02d}", start + timedelta(days=7 * i), s) for i, s in enumerate(scores)]
    arrived = list(points)
    rnd.shuffle(arrived)
    in_order = recompute_series(points, sd_floor=0.3)
    assert recompute_series(arrived, sd_floor=0.3) == in_order
    for _, context in in_order:
        if context.drop is not None:
            assert context.sd_eff is not None
            assert context.sd_eff >= 0.3
            assert (context.drop > 0) is (context.score < context.mu)  # type: ignore[operator, unused-ignore]
