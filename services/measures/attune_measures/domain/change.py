"""Reliable change from intake (clinical-rules.md, reliable change table, Jacobson-Truax)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from attune_measures.domain.thresholds import DEFAULT, ScoringThresholds


@dataclass(frozen=True, slots=True)
class Change:
    """Change of a score from the episode's intake score, and whether it is reliable."""

    intake_score: float
    change: float  # score - intake; its sign is raw, the flags below account for direction
    reliable_improvement: bool
    reliable_deterioration: bool
    threshold: float  # the positive magnitude a change must reach to be reliable


def change_from_intake(
    instrument: str,
    intake_score: float,
    score: float,
    thresholds: ScoringThresholds = DEFAULT,
) -> Change | None:
    """Change from intake for ORS, PHQ-9 or GAD-7; None for instruments without a table entry."""
    rule = thresholds.reliable_change_table.get(instrument)
    if rule is None:
        return None
    # Decimal on the shortest repr: ORS 25.1 - 30.0 is exactly -4.9, not -4.899999999999999.
    delta = _decimal(score) - _decimal(intake_score)
    threshold = _decimal(rule.threshold)
    better = delta if rule.higher_is_better else -delta
    return Change(
        intake_score=float(intake_score),
        change=float(delta),
        reliable_improvement=better >= threshold,
        reliable_deterioration=-better >= threshold,
        threshold=rule.threshold,
    )


def jacobson_truax_threshold(sd: float, r: float) -> float:
    """Reliable change threshold 1.96 * SD * sqrt(2 * (1 - r)) (Jacobson & Truax 1991)."""
    if not sd >= 0:
        raise ValueError(f"sd must be non-negative, got {sd!r}")
    if not 0 <= r <= 1:
        raise ValueError(f"reliability r must be between 0 and 1, got {r!r}")
    return 1.96 * sd * math.sqrt(2 * (1 - r))


def _decimal(value: float) -> Decimal:
    if not math.isfinite(value):
        raise ValueError(f"score must be finite, got {value!r}")
    return Decimal(repr(float(value)))
