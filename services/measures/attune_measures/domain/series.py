"""The alliance series and each score's context against its earlier scores (clinical-rules.md)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Final

# Design defaults (clinical-rules.md, "Rupture"); a clinic may override them in ScoringThresholds.
SD_FLOOR: Final[Mapping[str, float]] = MappingProxyType({"WAI-SR": 0.30, "SRS": 2.0})
WINDOW: Final = 5
K_MIN: Final = 3


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One alliance score: WAI-SR mean or SRS total of one client-rated response."""

    response_id: str
    session_at: datetime  # appointment time, else completion time; timezone-aware
    score: float
    revision: int = 0  # higher wins when the same response_id appears twice (amendments)


@dataclass(frozen=True, slots=True)
class SeriesContext:
    """A score against the earlier scores of its series; the statistics are None without history."""

    score: float
    earlier_count: int
    mu: float | None
    sd_within: float | None
    sd_eff: float | None
    drop: float | None


def order_series(points: Iterable[SeriesPoint]) -> list[SeriesPoint]:
    """One point per response_id (highest revision, later on a tie) ordered by (session_at, response_id)."""
    latest: dict[str, SeriesPoint] = {}
    for point in points:
        current = latest.get(point.response_id)
        if current is None or point.revision >= current.revision:
            latest[point.response_id] = point
    return sorted(latest.values(), key=lambda p: (p.session_at, p.response_id))


def upsert_point(points: Iterable[SeriesPoint], point: SeriesPoint) -> list[SeriesPoint]:
    """The ordered series with `point` added, or replacing its response_id unless it is older."""
    return order_series([*points, point])


def context_for(
    points_before: Sequence[float],
    score: float,
    *,
    sd_floor: float,
    window: int = WINDOW,
    k_min: int = K_MIN,
) -> SeriesContext:
    """The context of `score` given the earlier scores of its series, oldest first."""
    if not sd_floor > 0:
        raise ValueError(f"sd_floor must be positive, got {sd_floor!r}")
    if window < 1 or k_min < 1:
        raise ValueError("window and k_min must be at least 1")
    earlier_count = len(points_before)
    if earlier_count < k_min:
        return SeriesContext(score, earlier_count, None, None, None, None)
    recent = list(points_before[-window:])
    mu = statistics.mean(recent)  # exact then rounded once, so a flat history has sd 0
    sd_within = statistics.stdev(recent) if len(recent) >= 2 else None  # sample SD, n - 1
    # The floor keeps a flat history from turning a small dip into a huge drop.
    sd_eff = sd_floor if sd_within is None else max(sd_within, sd_floor)
    return SeriesContext(score, earlier_count, mu, sd_within, sd_eff, (mu - score) / sd_eff)


def recompute_series(
    points: Iterable[SeriesPoint],
    *,
    sd_floor: float,
    window: int = WINDOW,
    k_min: int = K_MIN,
) -> list[tuple[SeriesPoint, SeriesContext]]:
    """Every point of the series in order with its context, e.g. after a late or amended response."""
    ordered = order_series(points)
    scores = [p.score for p in ordered]
    return [
        (point, context_for(scores[:i], point.score, sd_floor=sd_floor, window=window, k_min=k_min))
        for i, point in enumerate(ordered)
    ]
