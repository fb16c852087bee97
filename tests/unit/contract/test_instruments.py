"""Item rules per instrument (contract.md section 2 table, clinical-rules.md Scoring: missing items)."""

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attune_shared.instruments import INSTRUMENTS, SPECS, WAI_SR_SUBSCALES, ItemError, check_items

VALID: dict[str, list[Any]] = {
    "WAI-SR": [4, 5, 3, 4, 2, 1, 5, 4, 3, 4, 4, 5],
    "SRS": [9.5, 10, 0, 7.2],
    "ORS": [4.5, 6, 10.0, 0.1],
    "PHQ-9": [0, 1, 2, 3, 0, 1, 2, 3, 0],
    "GAD-7": [0, 1, 2, 3, 3, 2, 1],
    "PSQ": [1, 3, 4],
}


def _rejected(instrument: str, items: list[float | int | None]) -> ItemError:
    with pytest.raises(ItemError) as caught:
        check_items(instrument, items)
    return caught.value


def _with(instrument: str, **changes: object) -> list[Any]:
    """A valid item list of the instrument with some items (i<0-based index>=value) replaced."""
    items: list[Any] = list(VALID[instrument])
    for key, value in changes.items():
        items[int(key.removeprefix("i"))] = value
    return items


def test_the_six_instruments_are_known() -> None:
    assert set(INSTRUMENTS) == {"WAI-SR", "SRS", "ORS", "PHQ-9", "GAD-7", "PSQ"}
    assert set(SPECS) == set(INSTRUMENTS)


def test_wai_sr_subscales_are_the_published_ones_and_partition_the_items() -> None:
    one_based = {name: sorted(i + 1 for i in idx) for name, idx in WAI_SR_SUBSCALES.items()}
    assert one_based == {"task": [1, 2, 10, 12], "bond": [3, 5, 7, 9], "goal": [4, 6, 8, 11]}
    assert sorted(i for idx in WAI_SR_SUBSCALES.values() for i in idx) == list(range(12))


@pytest.mark.parametrize("instrument", sorted(VALID))
def test_a_complete_valid_response_is_accepted(instrument: str) -> None:
    check_items(instrument, VALID[instrument])


@pytest.mark.parametrize(
    ("instrument", "items"),
    [
        pytest.param("WAI-SR", [1] * 12, id="wai-sr-min"),
        pytest.param("WAI-SR", [5] * 12, id="wai-sr-max"),
        pytest.param("WAI-SR", [4.0] * 12, id="wai-sr-integral-floats"),
        pytest.param(
            "WAI-SR", _with("WAI-SR", i0=None, i2=None, i3=None), id="wai-sr-one-missing-per-subscale"
        ),
        pytest.param("SRS", [0, 0, 0, 0], id="srs-min"),
        pytest.param("SRS", [10, 10.0, 9.9, 0.1], id="srs-one-decimal"),
        pytest.param("ORS", [3, 3, 3, 3], id="ors-ints"),
        pytest.param("PHQ-9", [0] * 9 + [3], id="phq9-ten-items"),
        pytest.param("PHQ-9", [1] * 9 + [None], id="phq9-difficulty-null"),
        pytest.param("PHQ-9", _with("PHQ-9", i0=None), id="phq9-one-missing-first"),
        pytest.param("PHQ-9", _with("PHQ-9", i7=None), id="phq9-one-missing-item8"),
        pytest.param("PHQ-9", [*_with("PHQ-9", i4=None), None], id="phq9-one-missing-and-difficulty-null"),
        pytest.param("GAD-7", _with("GAD-7", i6=None), id="gad7-one-missing"),
        pytest.param("PSQ", [0, 1, 1], id="psq-min"),
        pytest.param("PSQ", [1, 5, 5], id="psq-max"),
    ],
)
def test_accepted(instrument: str, items: list[float | int | None]) -> None:
    check_items(instrument, items)


@pytest.mark.parametrize(
    ("instrument", "items", "loc_index", "fragment"),
    [
        # counts
        pytest.param("WAI-SR", [3] * 11, None, "WAI-SR expects 12 items, got 11", id="wai-sr-11"),
        pytest.param("WAI-SR", [3] * 13, None, "WAI-SR expects 12 items, got 13", id="wai-sr-13"),
        pytest.param("SRS", [9, 9, 9], None, "SRS expects 4 items, got 3", id="srs-3"),
        pytest.param("ORS", [5] * 5, None, "ORS expects 4 items, got 5", id="ors-5"),
        pytest.param("PHQ-9", [0] * 8, None, "PHQ-9 expects 9 or 10 items, got 8", id="phq9-8"),
        pytest.param("PHQ-9", [0] * 11, None, "PHQ-9 expects 9 or 10 items, got 11", id="phq9-11"),
        pytest.param("GAD-7", [0] * 6, None, "GAD-7 expects 7 items, got 6", id="gad7-6"),
        pytest.param("PSQ", [1, 3], None, "PSQ expects 3 items, got 2", id="psq-2"),
        pytest.param("PSQ", [], None, "PSQ expects 3 items, got 0", id="psq-empty"),
        # ranges
        pytest.param(
            "WAI-SR",
            _with("WAI-SR", i3=7),
            3,
            "payload.items[3]: value 7 is above the WAI-SR maximum 5",
            id="wai-7",
        ),
        pytest.param(
            "WAI-SR",
            _with("WAI-SR", i0=0),
            0,
            "payload.items[0]: value 0 is below the WAI-SR minimum 1",
            id="wai-0",
        ),
        pytest.param(
            "SRS", _with("SRS", i1=10.1), 1, "value 10.1 is above the SRS maximum 10", id="srs-10.1"
        ),
        pytest.param("SRS", _with("SRS", i2=-0.5), 2, "value -0.5 is below the SRS minimum 0", id="srs-neg"),
        pytest.param("ORS", _with("ORS", i0=11), 0, "value 11 is above the ORS maximum 10", id="ors-11"),
        pytest.param("PHQ-9", _with("PHQ-9", i8=4), 8, "value 4 is above the PHQ-9 maximum 3", id="phq9-4"),
        pytest.param(
            "PHQ-9", [0] * 9 + [4], 9, "value 4 is above the PHQ-9 maximum 3", id="phq9-difficulty-4"
        ),
        pytest.param(
            "PHQ-9", _with("PHQ-9", i2=-1), 2, "value -1 is below the PHQ-9 minimum 0", id="phq9-neg"
        ),
        pytest.param("GAD-7", _with("GAD-7", i5=4), 5, "value 4 is above the GAD-7 maximum 3", id="gad7-4"),
        pytest.param("PSQ", [2, 3, 3], 0, "value 2 is above the PSQ item 1 maximum 1", id="psq-item1-2"),
        pytest.param("PSQ", [1, 0, 3], 1, "value 0 is below the PSQ item 2 minimum 1", id="psq-item2-0"),
        pytest.param("PSQ", [1, 3, 6], 2, "value 6 is above the PSQ item 3 maximum 5", id="psq-item3-6"),
        # integers where integers are required, decimals where decimals are allowed
        pytest.param("WAI-SR", _with("WAI-SR", i5=3.5), 5, "value 3.5 is not an integer", id="wai-3.5"),
        pytest.param("PHQ-9", _with("PHQ-9", i0=1.5), 0, "value 1.5 is not an integer", id="phq9-1.5"),
        pytest.param("GAD-7", _with("GAD-7", i1=0.5), 1, "value 0.5 is not an integer", id="gad7-0.5"),
        pytest.param("PSQ", [1, 2.5, 3], 1, "value 2.5 is not an integer", id="psq-2.5"),
        pytest.param("SRS", _with("SRS", i3=7.25), 3, "value 7.25 has more than 1 decimal", id="srs-7.25"),
        pytest.param("ORS", _with("ORS", i0=0.05), 0, "value 0.05 has more than 1 decimal", id="ors-0.05"),
        # not numbers
        pytest.param("WAI-SR", _with("WAI-SR", i0=True), 0, "value true is not a number", id="wai-true"),
        pytest.param("PSQ", [False, 3, 3], 0, "value false is not a number", id="psq-false"),
        pytest.param("SRS", _with("SRS", i1="9"), 1, 'value "9" is not a number', id="srs-string"),
        pytest.param("ORS", _with("ORS", i2=math.nan), 2, "is not a finite number", id="ors-nan"),
        pytest.param("SRS", _with("SRS", i0=math.inf), 0, "is not a finite number", id="srs-inf"),
        # missing items
        pytest.param(
            "WAI-SR",
            _with("WAI-SR", i2=None, i4=None),
            4,
            "payload.items[4]: value null: the WAI-SR Bond subscale (items 3, 5, 7, 9)",
            id="wai-two-missing-bond",
        ),
        pytest.param(
            "WAI-SR",
            _with("WAI-SR", i0=None, i11=None),
            11,
            "Task subscale (items 1, 2, 10, 12)",
            id="wai-two-task",
        ),
        pytest.param("WAI-SR", _with("WAI-SR", i3=None, i10=None), 10, "Goal subscale", id="wai-two-goal"),
        pytest.param("SRS", _with("SRS", i0=None), 0, "SRS allows no missing item", id="srs-missing-first"),
        pytest.param("SRS", _with("SRS", i3=None), 3, "SRS allows no missing item", id="srs-missing-last"),
        pytest.param("ORS", _with("ORS", i1=None), 1, "ORS allows no missing item", id="ors-missing"),
        pytest.param("PSQ", [1, None, 3], 1, "PSQ allows no missing item", id="psq-missing"),
        pytest.param(
            "PHQ-9", _with("PHQ-9", i8=None), 8, "PHQ-9 item 9 must be answered", id="phq9-item9-missing"
        ),
        pytest.param(
            "PHQ-9",
            _with("PHQ-9", i1=None, i6=None),
            6,
            "PHQ-9 items 1-8 allows at most 1",
            id="phq9-two-missing",
        ),
        pytest.param(
            "GAD-7", _with("GAD-7", i0=None, i3=None), 3, "GAD-7 allows at most 1", id="gad7-two-missing"
        ),
        pytest.param("GAD-7", [None] * 7, 1, "GAD-7 allows at most 1", id="gad7-all-missing"),
    ],
)
def test_rejected(
    instrument: str, items: list[float | int | None], loc_index: int | None, fragment: str
) -> None:
    error = _rejected(instrument, items)
    assert error.loc_index == loc_index
    assert fragment in error.message
    if loc_index is not None:
        assert error.message.startswith(f"payload.items[{loc_index}]: value ")


def test_an_unknown_instrument_is_an_item_error_for_the_whole_list() -> None:
    error = _rejected("BDI-II", [1, 2, 3])
    assert error.loc_index is None
    assert "BDI-II" in error.message


@given(st.lists(st.integers(1, 5), min_size=12, max_size=12))
def test_any_complete_wai_sr_in_range_is_accepted(items: list[int]) -> None:
    check_items("WAI-SR", list(items))


@given(
    st.lists(st.integers(1, 5), min_size=12, max_size=12),
    st.integers(0, 11),
    st.integers().filter(lambda v: not 1 <= v <= 5),
)
def test_any_out_of_range_wai_sr_item_is_named(items: list[int], index: int, value: int) -> None:
    bad: list[float | int | None] = list(items)
    bad[index] = value
    error = _rejected("WAI-SR", bad)
    assert error.loc_index == index
    assert f"payload.items[{index}]: value {value} " in error.message


@given(st.lists(st.integers(0, 100).map(lambda tenths: tenths / 10), min_size=4, max_size=4))
def test_any_srs_with_one_decimal_is_accepted(items: list[float]) -> None:
    check_items("SRS", list(items))
