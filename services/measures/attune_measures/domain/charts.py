"""An episode's scored series for people to read (a chart, a caseload row). Pure.

Each point is computed as the pipeline computes what it publishes (revisions.recompute_group): the
response's scores under its clinic's thresholds, its change from the first scored response of its
episode and instrument ("intake"), and, for a client-rated WAI-SR or SRS, its place in the alliance
series. So a point equals the content of the response's last published revision, unless the
thresholds file changed since that revision was published.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Final, Literal

from attune_measures.domain.revisions import ALLIANCE_INSTRUMENTS, alliance_context, intake_change
from attune_measures.domain.scoring import ScoreValue, UnscorableResponse, score
from attune_measures.domain.thresholds import ScoringThresholds
from attune_measures.domain.versions import ResponseVersion, Tracked
from attune_shared.events import ChangeFromIntake, SeriesContext
from attune_shared.instruments import INSTRUMENTS

Kind = Literal["alliance", "outcome", "rupture"]
KIND: Final[Mapping[str, Kind]] = MappingProxyType(
    {
        "WAI-SR": "alliance",
        "SRS": "alliance",
        "ORS": "outcome",
        "PHQ-9": "outcome",
        "GAD-7": "outcome",
        "PSQ": "rupture",
    }
)
# Which of the scores a point's `score` is (the number change from intake and the series use).
SCORE_NAME: Final[Mapping[str, str]] = MappingProxyType(
    {"WAI-SR": "mean", "SRS": "total", "ORS": "total", "PHQ-9": "total", "GAD-7": "total"}
)
# Instruments in the contract's order (a display order, and the tie-break between instruments).
RANK: Final[Mapping[str, int]] = MappingProxyType({name: i for i, name in enumerate(INSTRUMENTS)})
HIGHER_IS_BETTER: Final[Mapping[str, bool]] = MappingProxyType(
    {"WAI-SR": True, "SRS": True, "ORS": True, "PHQ-9": False, "GAD-7": False}
)


@dataclass(frozen=True, slots=True)
class ChartPoint:
    """One scored response of a series, with what measures computes about it."""

    response: ResponseVersion
    revision: int  # the last revision published for it
    values: Mapping[str, ScoreValue]
    score: float | None  # the primary score (WAI-SR mean, else total); None for PSQ
    change: ChangeFromIntake | None
    alliance: SeriesContext | None


def chart_group(group: Iterable[Tracked], thresholds: ScoringThresholds) -> list[ChartPoint]:
    """Every scorable member of one episode + instrument group, in session order."""
    scored = []
    for tracked in sorted(group, key=lambda t: t.response.order):
        r = tracked.response
        try:
            scored.append((tracked, score(r.instrument, r.items, thresholds=thresholds)))
        except UnscorableResponse:  # cannot happen for a stored version; left out, as the pipeline does
            continue
    intake = next(((t.response.response_id, s.primary) for t, s in scored if s.primary is not None), None)
    earlier: list[tuple[str, float]] = []
    out = []
    for tracked, result in scored:
        r, primary = tracked.response, result.primary
        change = (
            intake_change(r.instrument, intake, primary, thresholds)
            if intake and primary is not None
            else None
        )
        alliance = None
        if r.instrument in ALLIANCE_INSTRUMENTS and r.respondent == "client" and primary is not None:
            alliance = alliance_context(r.series_key, earlier, primary, thresholds, r.instrument)
            earlier.append((r.response_id, primary))
        out.append(ChartPoint(r, tracked.revision, result.values, primary, change, alliance))
    return out


def chart_episode(
    members: Iterable[Tracked], thresholds_for: Callable[[str], ScoringThresholds]
) -> dict[str, list[ChartPoint]]:
    """An episode's points by `series_key` (episode + instrument), each group in session order."""
    groups: dict[str, list[Tracked]] = {}
    for tracked in members:
        groups.setdefault(tracked.response.series_key, []).append(tracked)
    return {
        key: chart_group(group, thresholds_for(group[0].response.clinic_id))
        for key, group in sorted(groups.items())
    }


def preference(p: ChartPoint) -> tuple[datetime, int, bool, str]:
    """Which point is the latest: the later session; in one session the instrument the contract lists
    first (WAI-SR before SRS, ORS before PHQ-9 before GAD-7), client-rated first; then the response id."""
    r = p.response
    return (r.session_at, -RANK[r.instrument], r.respondent == "client", r.response_id)


def latest(points: Iterable[ChartPoint], kind: Kind, *, client_only: bool = False) -> ChartPoint | None:
    """The latest point with a score among this kind's instruments (see `preference`)."""
    found = [
        p
        for p in points
        if p.score is not None
        and KIND[p.response.instrument] == kind
        and (p.response.respondent == "client" or not client_only)
    ]
    return max(found, key=preference, default=None)


def latest_per_series(points: Iterable[ChartPoint]) -> list[ChartPoint]:
    """The latest point with a score of each instrument and respondent, in the contract's instrument
    order, client-rated first (PSQ has no score, so none)."""
    by: dict[tuple[int, bool], ChartPoint] = {}
    for p in points:
        if p.score is None:
            continue
        key = (RANK[p.response.instrument], p.response.respondent != "client")
        if key not in by or preference(p) > preference(by[key]):
            by[key] = p
    return [by[k] for k in sorted(by)]


def last_response(members: Sequence[Tracked]) -> ResponseVersion | None:
    """The episode's latest response by session order (it names the episode's current clinician)."""
    return max((t.response for t in members), key=lambda r: r.order, default=None)
