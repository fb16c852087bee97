"""Builders for the alert-rules unit tests: measures, alliance series and care events as frozen values."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from attune_alerts.domain.decisions import Decision
from attune_alerts.domain.inputs import CareEvent, ChangeFromIntake, Measure, Score, SeriesPoint
from attune_alerts.domain.rules import on_care, on_inactivity_sweep, on_measure
from attune_alerts.domain.state import EpisodeState
from attune_alerts.domain.thresholds import AlertThresholds

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SD_FLOOR = {"WAI-SR": 0.30, "SRS": 2.0}
# Reliable deterioration from intake (clinical-rules.md): sign is the worse direction.
RC = {"ORS": -5.0, "PHQ-9": 6.0, "GAD-7": 4.0}


def day(n: float) -> datetime:
    """The time n days after T0."""
    return T0 + timedelta(days=n)


def series_stats(earlier: Sequence[float], score: float, floor: float) -> tuple[float | None, ...]:
    """mu, sd_eff, drop per clinical-rules.md (None with fewer than 3 earlier scores)."""
    if len(earlier) < 3:
        return None, None, None
    recent = list(earlier[-5:])
    mu = statistics.fmean(recent)
    sd_eff = max(statistics.stdev(recent), floor)
    return mu, sd_eff, (mu - score) / sd_eff


@dataclass
class Episode:
    """Feeds events to the rules in order, keeping the state and every step's decisions."""

    thresholds: AlertThresholds = field(default_factory=AlertThresholds)
    state: EpisodeState = field(default_factory=EpisodeState)
    log: list[list[Decision]] = field(default_factory=list)
    now: datetime = T0

    def measure(self, m: Measure, *, now: datetime | None = None) -> list[Decision]:
        self.now = now or m.occurred_at
        self.state, decisions = on_measure(self.state, m, self.thresholds, self.now)
        self.log.append(decisions)
        return decisions

    def care(self, event: CareEvent, *, now: datetime | None = None) -> list[Decision]:
        self.now = now or event.occurred_at
        self.state, decisions = on_care(self.state, event, self.thresholds, self.now)
        self.log.append(decisions)
        return decisions

    def sweep(self, now: datetime) -> list[Decision]:
        self.now = now
        self.state, decisions = on_inactivity_sweep(self.state, now, self.thresholds)
        self.log.append(decisions)
        return decisions

    def feed(self, items: Iterable[Measure | CareEvent]) -> list[Decision]:
        """Apply each item; return the last step's decisions."""
        last: list[Decision] = []
        for item in items:
            last = self.measure(item) if isinstance(item, Measure) else self.care(item)
        return last


class Build:
    """Value builders with sensible defaults."""

    @staticmethod
    def measure(
        rid: str,
        instrument: str,
        scores: Mapping[str, Score],
        *,
        at: float = 0,
        revision: int = 1,
        respondent: str = "client",
        appt: str | None = None,
        change: ChangeFromIntake | None = None,
        series: SeriesPoint | None = None,
        superseded: bool = False,
    ) -> Measure:
        return Measure(
            response_id=rid,
            revision=revision,
            instrument=instrument,
            respondent=respondent,
            session_at=day(at),
            occurred_at=day(at) + timedelta(hours=1),
            scores=dict(scores),
            appointment_id=appt,
            change=change,
            series=series,
            superseded=superseded,
        )

    @staticmethod
    def point(
        rid: str,
        score: float,
        *,
        drop: float | None,
        mu: float | None = 4.0,
        sd_eff: float | None = 0.3,
        instrument: str = "WAI-SR",
        position: int = 4,
        at: float | None = None,
        appt: str | None = None,
        extra: Mapping[str, Score] | None = None,
        revision: int = 1,
        superseded: bool = False,
    ) -> Measure:
        """One alliance score with given series statistics (for boundary cases)."""
        name = "mean" if instrument == "WAI-SR" else "total"
        series = SeriesPoint(
            f"ep1:{instrument}",
            score,
            position,
            position - 1,
            None if drop is None else mu,
            None if drop is None else sd_eff,
            drop,
        )
        return Build.measure(
            rid,
            instrument,
            {name: score, **(extra or {})},
            at=position if at is None else at,
            appt=appt,
            series=series,
            revision=revision,
            superseded=superseded,
        )

    @staticmethod
    def series(
        scores: Sequence[float],
        *,
        instrument: str = "WAI-SR",
        prefix: str = "w",
        concern: Sequence[bool] | None = None,
        start: int = 1,
    ) -> list[Measure]:
        """Client-rated alliance responses, one per weekly session, with the series statistics computed."""
        out = []
        name = "mean" if instrument == "WAI-SR" else "total"
        for i, score in enumerate(scores):
            mu, sd_eff, drop = series_stats(scores[:i], score, SD_FLOOR[instrument])
            position = start + i
            series = SeriesPoint(f"ep1:{instrument}", score, position, i, mu, sd_eff, drop)
            extra: dict[str, Score] = {}
            if instrument == "SRS":
                flag = bool(concern[i]) if concern is not None else score < 36
                extra = {"alliance_concern": flag, "item_concern": False}
            out.append(
                Build.measure(
                    f"{prefix}{position}",
                    instrument,
                    {name: score, **extra},
                    at=7 * position,
                    appt=f"a{position}",
                    series=series,
                )
            )
        return out

    @staticmethod
    def outcome(
        rid: str,
        instrument: str,
        intake: float,
        score: float,
        *,
        at: float = 7,
        revision: int = 1,
        superseded: bool = False,
    ) -> Measure:
        """An ORS, PHQ-9 or GAD-7 total with change from intake judged by the published thresholds."""
        rc = RC[instrument]
        change = score - intake
        worse = change <= rc if rc < 0 else change >= rc
        scores: dict[str, Score] = {"total": score}
        if instrument == "PHQ-9":
            scores["item9"] = 0
        return Build.measure(
            rid,
            instrument,
            scores,
            at=at,
            revision=revision,
            superseded=superseded,
            change=ChangeFromIntake(intake, change, worse, abs(rc)),
        )

    @staticmethod
    def psq(
        rid: str,
        *,
        reported: bool,
        tension: int,
        resolution: int = 2,
        at: float = 7,
        revision: int = 1,
        superseded: bool = False,
    ) -> Measure:
        return Build.measure(
            rid,
            "PSQ",
            {
                "rupture_reported": reported,
                "tension": tension,
                "resolution": resolution,
                "in_session_repair": resolution >= 4,
            },
            at=at,
            revision=revision,
            superseded=superseded,
        )

    @staticmethod
    def care(
        kind: str, at: float, appt: str | None = None, *, by: str | None = None, reason: str | None = None
    ) -> CareEvent:
        return CareEvent(
            kind=kind,
            occurred_at=day(at),
            appointment_id=appt,
            missed_reason="no_show" if kind == "missed" else None,
            cancelled_by=by,
            close_reason=reason,
        )


@pytest.fixture
def b() -> type[Build]:
    return Build


@pytest.fixture
def ep() -> Episode:
    return Episode()


def kinds(decisions: Sequence[Decision]) -> list[tuple[str, str]]:
    """(decision type, rule_id) pairs, for compact assertions."""
    return [(type(d).__name__, d.rule_id) for d in decisions]


@pytest.fixture
def kinds_of() -> Callable[[Sequence[Decision]], list[tuple[str, str]]]:
    return kinds
