"""Reliable change from intake: direction and threshold boundaries per instrument."""

from __future__ import annotations

import pytest

from attune_measures.domain.change import Change, change_from_intake, jacobson_truax_threshold
from attune_measures.domain.thresholds import DEFAULT

CASES = [
    # PHQ-9: lower is better; +6 is reliable deterioration, -6 reliable improvement.
    pytest.param("PHQ-9", 10, 15, 5.0, False, False, 6.0, id="phq9+5"),
    pytest.param("PHQ-9", 10, 16, 6.0, False, True, 6.0, id="phq9+6"),
    pytest.param("PHQ-9", 10, 5, -5.0, False, False, 6.0, id="phq9-5"),
    pytest.param("PHQ-9", 10, 4, -6.0, True, False, 6.0, id="phq9-6"),
    pytest.param("PHQ-9", 20, 3, -17.0, True, False, 6.0, id="phq9-17"),
    pytest.param("PHQ-9", 10, 10, 0.0, False, False, 6.0, id="phq9-none"),
    # GAD-7: lower is better, threshold 4.
    pytest.param("GAD-7", 8, 11, 3.0, False, False, 4.0, id="gad7+3"),
    pytest.param("GAD-7", 8, 12, 4.0, False, True, 4.0, id="gad7+4"),
    pytest.param("GAD-7", 8, 5, -3.0, False, False, 4.0, id="gad7-3"),
    pytest.param("GAD-7", 8, 4, -4.0, True, False, 4.0, id="gad7-4"),
    # ORS: higher is better, threshold 5.
    pytest.param("ORS", 30.0, 25.1, -4.9, False, False, 5.0, id="ors-4.9"),
    pytest.param("ORS", 30.0, 25.0, -5.0, False, True, 5.0, id="ors-5"),
    pytest.param("ORS", 20.0, 24.9, 4.9, False, False, 5.0, id="ors+4.9"),
    pytest.param("ORS", 20.0, 25.0, 5.0, True, False, 5.0, id="ors+5"),
    # Naive float subtraction gives 4.999999999999999 here and would miss the threshold.
    pytest.param("ORS", 3.2, 8.2, 5.0, True, False, 5.0, id="ors+5-float-trap"),
    pytest.param("ORS", 8.2, 3.2, -5.0, False, True, 5.0, id="ors-5-float-trap"),
]


@pytest.mark.parametrize(
    ("instrument", "intake", "now", "change", "improvement", "deterioration", "threshold"), CASES
)
def test_change_from_intake(
    instrument: str,
    intake: float,
    now: float,
    change: float,
    improvement: bool,
    deterioration: bool,
    threshold: float,
) -> None:
    assert change_from_intake(instrument, intake, now) == Change(
        intake_score=intake,
        change=change,
        reliable_improvement=improvement,
        reliable_deterioration=deterioration,
        threshold=threshold,
    )


@pytest.mark.parametrize("instrument", ["WAI-SR", "SRS", "PSQ", "BDI-II"])
def test_instruments_without_a_table_entry_have_no_change(instrument: str) -> None:
    assert change_from_intake(instrument, 4.0, 2.0) is None


def test_thresholds_are_configurable() -> None:
    lenient = DEFAULT.with_overrides({"reliable_change_phq9": 5, "reliable_change_ors": 4})
    phq = change_from_intake("PHQ-9", 10, 15, lenient)
    assert phq is not None
    assert (phq.reliable_deterioration, phq.threshold) == (True, 5.0)
    ors = change_from_intake("ORS", 30.0, 26.0, lenient)
    assert ors is not None
    assert ors.reliable_deterioration is True


def test_reliable_change_table_directions() -> None:
    table = DEFAULT.reliable_change_table
    assert {name: (rule.threshold, rule.higher_is_better) for name, rule in table.items()} == {
        "ORS": (5.0, True),
        "PHQ-9": (6.0, False),
        "GAD-7": (4.0, False),
    }


@pytest.mark.parametrize(
    ("sd", "r", "expected"),
    [
        (1.0, 0.5, 1.96),  # sqrt(2 * 0.5) = 1
        (5.0, 0.9, 4.3827),  # 1.96 * 5 * sqrt(0.2) = 9.8 * 0.447214
        (10.0, 0.8, 12.3961),  # 1.96 * 10 * sqrt(0.4) = 19.6 * 0.632456
        (7.0, 1.0, 0.0),
    ],
)
def test_jacobson_truax_threshold(sd: float, r: float, expected: float) -> None:
    assert jacobson_truax_threshold(sd, r) == pytest.approx(expected, abs=5e-5)


@pytest.mark.parametrize(("sd", "r"), [(-1.0, 0.8), (5.0, 1.2), (5.0, -0.1), (float("nan"), 0.8)])
def test_jacobson_truax_rejects_impossible_inputs(sd: float, r: float) -> None:
    with pytest.raises(ValueError):
        jacobson_truax_threshold(sd, r)
