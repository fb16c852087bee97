"""The values the simulator's rule engine works on, the rules' constants, and the alert ledger.

The engine (ledger.py, alliance.py, rules.py) implements clinical-rules.md independently of services/
so that the truth can catch the services out. Besides deciding, every rule checks the simulator's
design margins and raises MarginError when a decision would hang on a threshold, a tie or a reading the
rules leave open; the generator then redraws that client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from attune_cli.simulator.model import ExpectedAlert

RUPTURE, DETERIORATION, SAFETY, DROPOUT = (
    "alliance.rupture",
    "outcome.deterioration",
    "safety.phq9-item9",
    "engagement.dropout-risk",
)
NOT_ON_TRACK = "outcome.not-on-track"
RULES = (SAFETY, RUPTURE, DETERIORATION, DROPOUT, NOT_ON_TRACK)
K_MIN, WINDOW, STRICT_DROP, LENIENT_DROP, REPAIR_WINDOW = 3, 5, 2.0, 1.0, 3
INACTIVITY, RUPTURE_RECENCY, CONSECUTIVE_MISSES = timedelta(days=21), timedelta(days=14), 2
MISSES = ("no_show", "late_cancel", "client_cancel")

# The design margins: how far from its threshold every decision must sit.
FIRE_MIN_DROP = 3.0
QUIET_MAX_DROP = 1.5  # no same-session SRS concern
QUIET_MAX_DROP_WITH_CONCERN = 0.5
REPAIR_MARGIN = {"WAI-SR": 0.15, "SRS": 0.5}
CHANGE_MARGIN = 2.0
GAP_MARGIN = timedelta(days=3)


@dataclass(slots=True)
class Response:
    """One questionnaire response as the rules see it."""

    response_id: str
    instrument: str
    session_at: datetime  # the appointment's start: orders the alliance series
    at: datetime  # completion time
    items: list[Any]


@dataclass(slots=True)
class Point:
    """One score in an alliance series."""

    response_id: str
    session_at: datetime
    value: float
    concern: bool


@dataclass(slots=True)
class Track:
    """Score-based repair tracking of one series: the pre-rupture baseline and the trough."""

    mu: float
    trough: float
    trough_position: int


@dataclass(slots=True)
class Alert:
    """An alert while the rules run."""

    rule_id: str
    severity: str
    episode: int
    trigger: str
    trigger_kind: Literal["response", "appointment"]
    criteria: list[str]
    raised_at: datetime
    evidence: dict[str, Any]
    triggers: list[str] = field(default_factory=list)
    resolution: str | None = None
    resolved_at: datetime | None = None
    tracks: dict[str, Track] = field(default_factory=dict)
    psq_session_at: datetime | None = None
    psq_mu: dict[str, tuple[float, float]] = field(default_factory=dict)  # series -> lowest, highest mu
    unrepaired: bool = False
    instruments: list[str] = field(default_factory=list)

    def truth(self) -> ExpectedAlert:
        """The alert as truth.json states it."""
        return ExpectedAlert(
            rule_id=self.rule_id,
            severity=self.severity,
            episode=self.episode,
            trigger=self.trigger,
            trigger_kind=self.trigger_kind,
            criteria=list(self.criteria),
            raised_at=self.raised_at.isoformat(),
            resolution=self.resolution,
            resolved_at=None if self.resolved_at is None else self.resolved_at.isoformat(),
            evidence=dict(self.evidence),
        )


def rounded(x: float) -> float:
    """Three decimals, for evidence."""
    return round(x, 3)


class AlertLedger:
    """The alerts of one episode: at most one open per rule, every one ever raised kept in order."""

    def __init__(self, episode: int, opened_on: date) -> None:
        self.episode = episode
        self.opened_on = opened_on
        self.open: dict[str, Alert] = {}
        self.alerts: list[Alert] = []
        self.rupture_ends: list[tuple[datetime, bool]] = []  # (resolved at, repaired)

    def _raise(self, alert: Alert) -> Alert:
        self.open[alert.rule_id] = alert
        self.alerts.append(alert)
        return alert

    def _resolve(self, alert: Alert, resolution: str, at: datetime, **evidence: Any) -> None:
        alert.resolution, alert.resolved_at = resolution, at
        alert.evidence.update(evidence)
        del self.open[alert.rule_id]
        if alert.rule_id == RUPTURE:
            self.rupture_ends.append((at, resolution == "repaired"))
