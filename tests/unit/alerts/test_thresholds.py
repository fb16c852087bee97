"""AlertThresholds: clinical-rules.md defaults and validated per-clinic overrides."""

from __future__ import annotations

import pytest

from attune_alerts.domain.errors import InvalidThresholds
from attune_alerts.domain.thresholds import AlertThresholds


def test_defaults_are_the_clinical_rules_values():
    t = AlertThresholds()
    assert (t.rupture_strict_drop, t.rupture_lenient_drop, t.psq_tension_min, t.psq_repair_min) == (
        2.0,
        1.0,
        3,
        4,
    )
    assert (t.repair_window_sessions, t.dropout_consecutive_misses, t.inactivity_days) == (3, 2, 21)
    assert (t.rupture_recency_days, t.sla_urgent_hours, t.sla_high_hours, t.sla_normal_hours) == (
        14,
        1,
        24,
        72,
    )
    assert t.phq9_item9_min == 1


def test_overrides_return_a_new_value():
    base = AlertThresholds()
    t = base.with_overrides({"repair_window_sessions": 6, "rupture_strict_drop": 2.5})
    assert (t.repair_window_sessions, t.rupture_strict_drop) == (6, 2.5)
    assert base.repair_window_sessions == 3


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"repair_window": 4}, "repair_window"),
        ({"inactivity_days": 0}, "inactivity_days"),
        ({"inactivity_days": 2.5}, "inactivity_days"),
        ({"rupture_strict_drop": "2"}, "rupture_strict_drop"),
        ({"rupture_strict_drop": True}, "rupture_strict_drop"),
        ({"rupture_strict_drop": float("nan")}, "rupture_strict_drop"),
        ({"rupture_lenient_drop": 3.0}, "rupture_lenient_drop"),
        ({"psq_tension_min": 6}, "psq_tension_min"),
        ({"phq9_item9_min": 4}, "phq9_item9_min"),
    ],
)
def test_bad_overrides_name_the_key(overrides, named):
    with pytest.raises(InvalidThresholds, match=named) as info:
        AlertThresholds().with_overrides(overrides)
    assert isinstance(info.value, ValueError)


def test_whole_number_floats_are_accepted_for_integer_thresholds():
    assert AlertThresholds().with_overrides({"inactivity_days": 28.0}).inactivity_days == 28
