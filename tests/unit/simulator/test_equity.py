"""The equity view's ground truth: strata that partition the total, non-trivial strata, and a total that
agrees with the truth's network figures (a second computation of the same counts)."""

from __future__ import annotations

from datetime import date

import pytest

from attune_cli.simulator import Scenario
from attune_cli.simulator.equity import COUNTS, DIMENSIONS, FIGURES, age_band


@pytest.mark.parametrize(
    ("birth_year", "on", "band"),
    [
        (2009, date(2026, 1, 5), "<18"),  # 17 in 2026
        (2008, date(2026, 1, 5), "18-25"),
        (2001, date(2026, 12, 31), "18-25"),
        (2000, date(2026, 1, 5), "26-40"),
        (1986, date(2026, 1, 5), "26-40"),
        (1985, date(2026, 1, 5), "41-64"),
        (1962, date(2026, 1, 5), "41-64"),
        (1961, date(2026, 1, 5), "65+"),
        (2026, date(2026, 1, 5), "<18"),
        (2027, date(2026, 1, 5), "unknown"),  # born after the referral: a data error
        (None, date(2026, 1, 5), "unknown"),
    ],
)
def test_age_band_at_the_referral_year(birth_year: int | None, on: date, band: str) -> None:
    assert age_band(birth_year, on) == band


def test_the_strata_of_each_dimension_add_up_to_the_total(default_scenario: Scenario) -> None:
    equity = default_scenario.truth.equity
    assert set(equity["figures"]) == set(FIGURES)
    for dimension in DIMENSIONS:
        rows = equity["by"][dimension]
        assert "unknown" in rows
        for count in COUNTS:
            assert sum(r[count] for r in rows.values()) == equity["total"][count], (dimension, count)


def test_the_strata_are_not_trivial(default_scenario: Scenario) -> None:
    by = default_scenario.truth.equity["by"]
    languages = [v for v, r in by["language"].items() if v != "unknown" and r["sessions_attended"]]
    assert len(languages) >= 5 and "pt" in languages and "en" in languages  # primary subtags
    assert all(by["interpreter"][v]["sessions_attended"] > 0 for v in ("yes", "no", "unknown"))
    assert all(by["age_band"][v]["sessions_attended"] > 0 for v in ("<18", "18-25", "26-40", "41-64", "65+"))
    assert all(by["modality"][v]["sessions_attended"] > 0 for v in ("in_person", "video", "phone"))
    closed = [v for v, r in by["interpreter"].items() if r["episodes_closed"]]
    assert len(closed) >= 2


def test_the_total_agrees_with_the_network_figures(default_scenario: Scenario) -> None:
    total = default_scenario.truth.equity["total"]
    network = default_scenario.truth.reporting["network"]
    assert total["sessions_attended"] == network["sessions"]["attended"]
    assert total["sessions_missed"] == sum(network["sessions"]["missed"].values())
    assert total["episodes_closed"] == network["episodes"]["closed"]
    assert total["ruptures_raised"] == network["ruptures"]["raised"]
    assert total["ruptures_repaired"] == network["ruptures"]["repaired"]
    assert total["ruptures_unrepaired"] == network["ruptures"]["unrepaired"]
    assert total["dropout_unilateral"] == network["dropouts"]["unilateral"]
    assert total["dropout_low_dose"] == network["dropouts"]["low_dose"]
    assert total["wai_sr_responses"] == network["questionnaires"]["WAI-SR"]
    assert total["srs_responses"] == network["questionnaires"]["SRS"]
    assert total["attendance_rate"] == round(
        total["sessions_attended"] / (total["sessions_attended"] + total["sessions_missed"]), 4
    )
    assert 1 <= total["wai_sr_mean"] <= 5 and 0 <= total["srs_total_mean"] <= 40
    assert 0 < total["reliable_improvement"] <= total["outcome_measured"] <= total["episodes_closed"]
