"""Table-driven scoring tests; every expectation is computed by hand from clinical-rules.md."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from attune_measures.domain.scoring import Score, UnscorableResponse, round_half_up, score
from attune_measures.domain.thresholds import DEFAULT, RULE_VERSIONS, ScoringThresholds

Items = Sequence[float | int | None]

# Items 1..12 (1-based): Task 1,2,10,12 = 5,4,4,4; Bond 3,5,7,9 = 3,5,4,3; Goal 4,6,8,11 = 4,3,2,5.
WAI = [5, 4, 3, 4, 5, 3, 4, 2, 3, 4, 5, 4]


def _without(items: list[int], *positions: int) -> list[int | None]:
    """The items with the given 1-based positions unanswered."""
    return [None if i + 1 in positions else v for i, v in enumerate(items)]


def _check(result: Score, expected: Mapping[str, Any]) -> None:
    assert set(result.values) == set(expected)
    for key, want in expected.items():
        got = result.values[key]
        if isinstance(want, float):
            assert got == pytest.approx(want, abs=1e-12), key
        else:
            assert got == want, key
            assert type(got) is type(want), key


# --- WAI-SR --------------------------------------------------------------------------------------

WAI_CASES = [
    pytest.param(
        WAI,
        {"total": 46.0, "mean": 46 / 12, "task": 4.25, "bond": 3.75, "goal": 3.5, "items_missing": 0},
        id="complete",
    ),
    pytest.param(
        [1] * 12,
        {"total": 12.0, "mean": 1.0, "task": 1.0, "bond": 1.0, "goal": 1.0, "items_missing": 0},
        id="floor",
    ),
    pytest.param(
        [5] * 12,
        {"total": 60.0, "mean": 5.0, "task": 5.0, "bond": 5.0, "goal": 5.0, "items_missing": 0},
        id="ceiling",
    ),
    # Item 10 (task) missing: task = (5+4+4)/3 = 13/3; total = 52/3 + 15 + 14 = 139/3.
    pytest.param(
        _without(WAI, 10),
        {"total": 139 / 3, "mean": 139 / 36, "task": 13 / 3, "bond": 3.75, "goal": 3.5, "items_missing": 1},
        id="task-prorated",
    ),
    # Items 1 (task), 3 (bond), 4 (goal) missing: task 12/3 = 4, bond 12/3 = 4, goal 10/3.
    # total = 16 + 16 + 40/3 = 136/3, mean = 136/36.
    pytest.param(
        _without(WAI, 1, 3, 4),
        {"total": 136 / 3, "mean": 136 / 36, "task": 4.0, "bond": 4.0, "goal": 10 / 3, "items_missing": 3},
        id="one-missing-per-subscale",
    ),
]


@pytest.mark.parametrize(("items", "expected"), WAI_CASES)
def test_wai_sr(items: Items, expected: Mapping[str, Any]) -> None:
    result = score("WAI-SR", items)
    _check(result, expected)
    assert result.primary == pytest.approx(expected["mean"], abs=1e-12)


@pytest.mark.parametrize(
    ("missing", "item"),
    [((3, 5), 2), ((1, 2), 0), ((4, 6, 8), 3), ((9, 7, 5, 3), 2)],
    ids=["bond-2-missing", "task-2-missing", "goal-3-missing", "bond-all-missing"],
)
def test_wai_sr_subscale_with_fewer_than_three_items_is_rejected(missing: tuple[int, ...], item: int) -> None:
    with pytest.raises(UnscorableResponse) as caught:
        score("WAI-SR", _without(WAI, *missing))
    assert caught.value.item == item
    assert caught.value.instrument == "WAI-SR"


# --- SRS -----------------------------------------------------------------------------------------

SRS_CASES = [
    pytest.param([8.9, 9.0, 9.0, 9.0], {}, 35.9, True, True, id="35.9-concern"),
    pytest.param([9.0, 9.0, 9.0, 9.0], {}, 36.0, False, False, id="36.0-no-concern"),
    pytest.param([8.9, 9, 9, 9.1], {}, 36.0, False, True, id="8.9+9+9+9.1-is-exactly-36"),
    # A naive float sum of these is 35.99999999999999, which would wrongly be below 36.
    pytest.param([9.7, 9.1, 9.4, 7.8], {}, 36.0, False, True, id="float-sum-trap"),
    pytest.param([9.0, 9.0, 9.0, 9.0], {"srs_cutoff_inclusive": True}, 36.0, True, False, id="inclusive-36"),
    pytest.param(
        [9.0, 9.0, 9.0, 9.1], {"srs_cutoff_inclusive": True}, 36.1, False, False, id="inclusive-36.1"
    ),
    pytest.param([8.9, 10, 10, 10], {}, 38.9, False, True, id="item-8.9"),
    pytest.param([9.0, 10, 10, 10], {}, 39.0, False, False, id="item-9.0"),
    pytest.param([8.9, 10, 10, 10], {"srs_item_cutoff": 8.9}, 38.9, False, False, id="item-cutoff-8.9"),
    pytest.param([8.9, 9.0, 9.0, 9.0], {"srs_cutoff": 30}, 35.9, False, True, id="cutoff-30"),
    pytest.param([0, 0, 0, 0], {}, 0.0, True, True, id="floor"),
    pytest.param([10, 10, 10, 10], {}, 40.0, False, False, id="ceiling"),
]


@pytest.mark.parametrize(("items", "overrides", "total", "concern", "item_concern"), SRS_CASES)
def test_srs(
    items: Items, overrides: dict[str, Any], total: float, concern: bool, item_concern: bool
) -> None:
    result = score("SRS", items, thresholds=DEFAULT.with_overrides(overrides))
    assert result.values == {"total": total, "alliance_concern": concern, "item_concern": item_concern}
    assert result.values["total"] == total  # exact, no approx: the tenths arithmetic must be exact
    assert result.primary == total


# --- ORS -----------------------------------------------------------------------------------------

ORS_CASES = [
    pytest.param([6.0, 6.0, 6.5, 6.5], {}, 25.0, True, id="25.0-clinical"),
    pytest.param([6.0, 6.0, 6.5, 6.6], {}, 25.1, False, id="25.1-not-clinical"),
    pytest.param([6.0, 6.0, 6.5, 6.5], {"ors_clinical_cutoff": 20}, 25.0, False, id="cutoff-20"),
    pytest.param([0, 0, 0, 0], {}, 0.0, True, id="floor"),
    pytest.param([10, 10, 10, 10], {}, 40.0, False, id="ceiling"),
    pytest.param([9.7, 9.1, 9.4, 7.8], {}, 36.0, False, id="float-sum-trap"),
]


@pytest.mark.parametrize(("items", "overrides", "total", "clinical"), ORS_CASES)
def test_ors(items: Items, overrides: dict[str, Any], total: float, clinical: bool) -> None:
    result = score("ORS", items, thresholds=DEFAULT.with_overrides(overrides))
    assert result.values == {"total": total, "clinical_range": clinical}
    assert result.primary == total


@pytest.mark.parametrize("instrument", ["SRS", "ORS"])
@pytest.mark.parametrize(
    ("items", "item"),
    [
        ([9, None, 9, 9], 1),
        ([9, 9, 9], None),
        ([9, 9, 9, 9, 9], None),
        ([9, 9, 9, 10.1], 3),
        ([-0.1, 9, 9, 9], 0),
        ([9, 9.25, 9, 9], 1),
        ([9, float("nan"), 9, 9], 1),
        ([9, True, 9, 9], 1),
    ],
    ids=["missing", "3-items", "5-items", "above-10", "below-0", "two-decimals", "nan", "bool"],
)
def test_srs_ors_reject(instrument: str, items: list[Any], item: int | None) -> None:
    with pytest.raises(UnscorableResponse) as caught:
        score(instrument, items)
    assert caught.value.item == item


# --- PHQ-9 ---------------------------------------------------------------------------------------

PHQ9_CASES = [
    pytest.param([0, 1, 2, 3, 0, 1, 2, 3, 0], 12, "moderate", 0, False, id="complete-item9-0"),
    pytest.param([0, 0, 0, 0, 0, 0, 0, 0, 1], 1, "minimal", 1, False, id="item9-1"),
    pytest.param([0, 0, 0, 0, 0, 0, 0, 0, 0], 0, "minimal", 0, False, id="zero"),
    pytest.param([1, 1, 1, 1, 0, 0, 0, 0, 0], 4, "minimal", 0, False, id="band-4"),
    pytest.param([1, 1, 1, 1, 1, 0, 0, 0, 0], 5, "mild", 0, False, id="band-5"),
    pytest.param([3, 3, 3, 0, 0, 0, 0, 0, 0], 9, "mild", 0, False, id="band-9"),
    pytest.param([3, 3, 3, 1, 0, 0, 0, 0, 0], 10, "moderate", 0, False, id="band-10"),
    pytest.param([3, 3, 3, 3, 2, 0, 0, 0, 0], 14, "moderate", 0, False, id="band-14"),
    pytest.param([3, 3, 3, 3, 3, 0, 0, 0, 0], 15, "moderately_severe", 0, False, id="band-15"),
    pytest.param([3, 3, 3, 3, 3, 3, 1, 0, 0], 19, "moderately_severe", 0, False, id="band-19"),
    pytest.param([3, 3, 3, 3, 3, 3, 2, 0, 0], 20, "severe", 0, False, id="band-20"),
    pytest.param([3] * 9, 27, "severe", 3, False, id="band-27"),
    # With the difficulty item (10th): validated, not scored.
    pytest.param([0, 1, 2, 3, 0, 1, 2, 3, 0, 3], 12, "moderate", 0, False, id="difficulty-item"),
    pytest.param([0, 1, 2, 3, 0, 1, 2, 3, 0, None], 12, "moderate", 0, False, id="difficulty-unanswered"),
    # Pro-rating: round half up of sum * 9 / 8.
    # 4 * 9/8 = 4.5 -> 5 (banker's rounding would give 4 and change the band to minimal).
    pytest.param([1, 1, 1, None, 0, 0, 0, 0, 1], 5, "mild", 1, True, id="prorate-4.5-half-up"),
    # 20 * 9/8 = 22.5 -> 23 (banker's: 22).
    pytest.param([3, 3, 3, 3, 3, 3, 2, None, 0], 23, "severe", 0, True, id="prorate-22.5-half-up"),
    # 12 * 9/8 = 13.5 -> 14 (banker's agrees).
    pytest.param([None, 3, 3, 3, 3, 0, 0, 0, 0], 14, "moderate", 0, True, id="prorate-13.5"),
    # 5 * 9/8 = 5.625 -> 6.
    pytest.param([2, 2, 0, 0, 0, 0, 0, None, 1], 6, "mild", 1, True, id="prorate-5.625"),
    # 7 * 9/8 = 7.875 -> 8.
    pytest.param([3, 3, None, 0, 0, 0, 0, 0, 1], 8, "mild", 1, True, id="prorate-7.875"),
    # 24 * 9/8 = 27 exactly: the scale maximum.
    pytest.param([3, 3, 3, 3, 3, 3, 3, None, 3], 27, "severe", 3, True, id="prorate-max"),
    pytest.param([None, 0, 0, 0, 0, 0, 0, 0, 0], 0, "minimal", 0, True, id="prorate-zero"),
]


@pytest.mark.parametrize(("items", "total", "band", "item9", "prorated"), PHQ9_CASES)
def test_phq9(items: Items, total: int, band: str, item9: int, prorated: bool) -> None:
    result = score("PHQ-9", items)
    _check(result, {"total": total, "band": band, "item9": item9, "prorated": prorated})
    assert result.primary == total


@pytest.mark.parametrize(
    ("items", "item"),
    [
        ([0, 0, 0, 0, 0, 0, 0, 0, None], 8),
        ([None, 0, 0, 0, 0, 0, 0, 0, None], 8),
        ([None, None, 0, 0, 0, 0, 0, 0, 0], 1),
        ([0, 0, 0, 0, 0, 0, 0, 0], None),
        ([0] * 11, None),
        ([0, 0, 0, 4, 0, 0, 0, 0, 0], 3),
        ([0, 0, 0, 0, 0, 0, 0, 0, 0, 4], 9),
        ([0, 1.5, 0, 0, 0, 0, 0, 0, 0], 1),
        ([0, 0, -1, 0, 0, 0, 0, 0, 0], 2),
    ],
    ids=[
        "item9-missing",
        "item9-and-another-missing",
        "two-missing",
        "8-items",
        "11-items",
        "above-3",
        "difficulty-above-3",
        "not-integer",
        "negative",
    ],
)
def test_phq9_reject(items: list[Any], item: int | None) -> None:
    with pytest.raises(UnscorableResponse) as caught:
        score("PHQ-9", items)
    assert caught.value.item == item


# --- GAD-7 ---------------------------------------------------------------------------------------

GAD7_CASES = [
    pytest.param([0, 1, 2, 3, 0, 1, 2], 9, "mild", False, id="complete"),
    pytest.param([1, 1, 1, 1, 0, 0, 0], 4, "minimal", False, id="band-4"),
    pytest.param([1, 1, 1, 1, 1, 0, 0], 5, "mild", False, id="band-5"),
    pytest.param([3, 3, 3, 1, 0, 0, 0], 10, "moderate", False, id="band-10"),
    pytest.param([3, 3, 3, 3, 2, 0, 0], 14, "moderate", False, id="band-14"),
    pytest.param([3, 3, 3, 3, 3, 0, 0], 15, "severe", False, id="band-15"),
    pytest.param([3] * 7, 21, "severe", False, id="band-21"),
    # 9 * 7/6 = 10.5 -> 11 (banker's rounding would give 10).
    pytest.param([3, 3, 3, None, 0, 0, 0], 11, "moderate", True, id="prorate-10.5-half-up"),
    # 3 * 7/6 = 3.5 -> 4 (banker's agrees).
    pytest.param([1, 1, 1, 0, 0, 0, None], 4, "minimal", True, id="prorate-3.5"),
    # 4 * 7/6 = 4.667 -> 5, crossing into mild.
    pytest.param([None, 1, 1, 1, 1, 0, 0], 5, "mild", True, id="prorate-4.667"),
    # 18 * 7/6 = 21 exactly.
    pytest.param([3, 3, 3, 3, 3, None, 3], 21, "severe", True, id="prorate-max"),
]


@pytest.mark.parametrize(("items", "total", "band", "prorated"), GAD7_CASES)
def test_gad7(items: Items, total: int, band: str, prorated: bool) -> None:
    result = score("GAD-7", items)
    _check(result, {"total": total, "band": band, "prorated": prorated})
    assert result.primary == total


@pytest.mark.parametrize(
    ("items", "item"),
    [([None, None, 0, 0, 0, 0, 0], 1), ([0] * 6, None), ([0, 0, 0, 0, 0, 0, 9], 6)],
    ids=["two-missing", "6-items", "above-3"],
)
def test_gad7_reject(items: list[Any], item: int | None) -> None:
    with pytest.raises(UnscorableResponse) as caught:
        score("GAD-7", items)
    assert caught.value.item == item


# --- PSQ -----------------------------------------------------------------------------------------

PSQ_CASES = [
    pytest.param([1, 4, 2], {}, True, 4, 2, False, id="rupture-unrepaired"),
    pytest.param([1, 3, 4], {}, True, 3, 4, True, id="repair-at-4"),
    pytest.param([1, 3, 3], {}, True, 3, 3, False, id="no-repair-at-3"),
    pytest.param([1, 3, 3], {"psq_repair_min": 3}, True, 3, 3, True, id="repair-min-3"),
    pytest.param([0, 1, 5], {}, False, 1, 5, True, id="no-rupture"),
    pytest.param([0, None, None], {}, False, None, None, None, id="follow-ups-unanswered"),
]


@pytest.mark.parametrize(("items", "overrides", "reported", "tension", "resolution", "repair"), PSQ_CASES)
def test_psq(
    items: Items,
    overrides: dict[str, Any],
    reported: bool,
    tension: int | None,
    resolution: int | None,
    repair: bool | None,
) -> None:
    result = score("PSQ", items, thresholds=DEFAULT.with_overrides(overrides))
    assert result.values == {
        "rupture_reported": reported,
        "tension": tension,
        "resolution": resolution,
        "in_session_repair": repair,
    }
    assert result.primary is None


@pytest.mark.parametrize(
    ("items", "item"),
    [([None, 3, 3], 0), ([2, 3, 3], 0), ([1, 0, 3], 1), ([1, 3, 6], 2), ([1, 3], None)],
    ids=["item1-missing", "item1-2", "tension-0", "resolution-6", "2-items"],
)
def test_psq_reject(items: list[Any], item: int | None) -> None:
    with pytest.raises(UnscorableResponse) as caught:
        score("PSQ", items)
    assert caught.value.item == item


# --- cross-cutting -------------------------------------------------------------------------------


def test_unknown_instrument_is_unscorable() -> None:
    with pytest.raises(UnscorableResponse, match="unknown instrument"):
        score("BDI-II", [0] * 21)


def test_error_message_names_the_item() -> None:
    with pytest.raises(UnscorableResponse) as caught:
        score("WAI-SR", [*WAI[:3], 7, *WAI[4:]])
    assert str(caught.value) == "WAI-SR items[3]: value 7 is above the WAI-SR maximum 5"
    assert isinstance(caught.value, ValueError)


def test_score_is_frozen_and_carries_its_rule() -> None:
    result = score("PHQ-9", [0] * 9)
    assert (result.rule_id, result.rule_version) == ("score.phq-9", 1)
    with pytest.raises(AttributeError):
        result.primary = 3.0  # type: ignore[misc, unused-ignore]
    with pytest.raises(TypeError):
        result.values["total"] = 3  # type: ignore[index, unused-ignore]


@pytest.mark.parametrize("instrument", ["WAI-SR", "SRS", "ORS", "PHQ-9", "GAD-7", "PSQ"])
def test_every_instrument_has_a_rule_version(instrument: str) -> None:
    assert RULE_VERSIONS[f"score.{instrument.lower()}"] == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [("4.5", 5), ("22.5", 23), ("10.5", 11), ("4.49", 4), ("0", 0), ("0.5", 1), ("2.5", 3)],
)
def test_round_half_up(value: str, expected: int) -> None:
    from fractions import Fraction

    assert round_half_up(Fraction(value)) == expected


# --- thresholds ----------------------------------------------------------------------------------


def test_defaults_match_the_rules() -> None:
    assert DEFAULT.as_dict() == {
        "srs_cutoff": 36.0,
        "srs_cutoff_inclusive": False,
        "srs_item_cutoff": 9.0,
        "ors_clinical_cutoff": 25.0,
        "psq_repair_min": 4,
        "reliable_change_ors": 5.0,
        "reliable_change_phq9": 6.0,
        "reliable_change_gad7": 4.0,
        "sd_floor_wai_sr": 0.30,
        "sd_floor_srs": 2.0,
        "series_window": 5,
        "series_k_min": 3,
    }
    assert DEFAULT.sd_floor("WAI-SR") == 0.30
    assert DEFAULT.sd_floor("SRS") == 2.0


def test_with_overrides_returns_a_copy_and_coerces_ints_for_numbers() -> None:
    changed = DEFAULT.with_overrides({"srs_cutoff": 35, "srs_cutoff_inclusive": True})
    assert changed.srs_cutoff == 35.0
    assert isinstance(changed.srs_cutoff, float)
    assert changed.srs_cutoff_inclusive is True
    assert DEFAULT.srs_cutoff == 36.0
    assert DEFAULT.with_overrides({}) == DEFAULT


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"srs_cut_off": 35}, "srs_cut_off"),
        ({"srs_cutoff": "36"}, "srs_cutoff"),
        ({"srs_cutoff": True}, "srs_cutoff"),
        ({"srs_cutoff": float("inf")}, "srs_cutoff"),
        ({"srs_cutoff_inclusive": 1}, "srs_cutoff_inclusive"),
        ({"psq_repair_min": 4.0}, "psq_repair_min"),
        ({"psq_repair_min": 6}, "psq_repair_min"),
        ({"srs_cutoff": 41}, "srs_cutoff"),
        ({"sd_floor_srs": 0}, "sd_floor_srs"),
        ({"reliable_change_phq9": -6}, "reliable_change_phq9"),
        ({"series_k_min": 6}, "series_k_min"),
        ({"series_window": 0}, "series_window"),
    ],
)
def test_with_overrides_rejects_bad_keys_and_values(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=repr(key)):
        DEFAULT.with_overrides(overrides)


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ValueError, match="'srs_item_cutoff'"):
        ScoringThresholds(srs_item_cutoff=11)
    with pytest.raises(ValueError, match="no alliance series"):
        DEFAULT.sd_floor("PHQ-9")
