"""Per-episode rule state: open alerts, session outcomes, alliance baselines, applied revisions.

Its JSON document form is `state_codec` (`state_to_dict`, `state_from_dict`), which imports this
module and never the reverse, so the domain has no import cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

# Session-outcome kinds kept in the history; only `missed` and `client_cancelled` count as misses.
ATTENDED = "attended"
MISSED = "missed"
CLIENT_CANCELLED = "client_cancelled"
OTHER_CANCELLED = "other_cancelled"
MISS_KINDS = frozenset({MISSED, CLIENT_CANCELLED})

# Enough closures for the recency rule; older ones can never matter to a 14-day window again.
MAX_RUPTURE_CLOSURES = 20


@dataclass(frozen=True, slots=True)
class RuptureTrack:
    """Repair tracking of an open `alliance.rupture` alert.

    `criteria` lists every criterion that fired while open, the source criterion first. `mu` is the
    pre-rupture baseline of `series_key`. The trough fields are set for score-based alerts only; a
    PSQ-only alert has no trough and repairs without a window.
    """

    criteria: tuple[str, ...]
    trigger_session_at: datetime
    series_key: str | None = None
    mu: float | None = None
    trough_score: float | None = None
    trough_position: int | None = None
    trough_response_id: str | None = None
    sessions_since_trough: int = 0
    psq_session_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TriggerMark:
    """One response that triggered `outcome.deterioration` or `outcome.not-on-track`, per instrument
    and session."""

    response_id: str
    instrument: str
    session_at: datetime


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """An alert the rules consider open for the episode (one per rule_id)."""

    rule_id: str
    severity: str
    evidence: Mapping[str, Any]
    trigger_response_ids: frozenset[str]
    raised_at: datetime
    unrepaired: bool = False
    rupture: RuptureTrack | None = None
    marks: tuple[TriggerMark, ...] = ()
    reengage_after: datetime | None = None


@dataclass(frozen=True, slots=True)
class SessionOutcome:
    """One appointment's outcome in the session history."""

    occurred_at: datetime
    appointment_id: str | None
    kind: str


@dataclass(frozen=True, slots=True)
class RuptureClosure:
    """A closed rupture alert, for the dropout-risk severity rule."""

    closed_at: datetime
    repaired: bool


@dataclass(frozen=True, slots=True)
class SeriesBaseline:
    """The latest known `mu` of an alliance series (the baseline a PSQ-triggered alert repairs to)."""

    mu: float
    session_at: datetime
    position: int


@dataclass(frozen=True, slots=True)
class SrsSeen:
    """The latest SRS of an appointment and whether it showed alliance or item concern; `occurred_at` is
    the response's EHR time (None in documents written before it was kept)."""

    response_id: str
    concern: bool
    occurred_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AlliancePoint:
    """One alliance score with its baseline statistics (a trigger, or a lenient candidate waiting for
    its session's SRS to show concern)."""

    response_id: str
    instrument: str
    series_key: str
    score: float
    mu: float
    sd_eff: float
    drop: float
    position: int
    session_at: datetime
    occurred_at: datetime | None = None  # the response's EHR time (None in documents written before)


@dataclass(frozen=True, slots=True)
class EpisodeState:
    """Everything the alert rules remember about one episode."""

    open_alerts: Mapping[str, OpenAlert] = field(default_factory=dict)
    sessions: tuple[SessionOutcome, ...] = ()
    last_attended_at: datetime | None = None
    rupture_closures: tuple[RuptureClosure, ...] = ()
    applied: Mapping[str, int] = field(default_factory=dict)
    baselines: Mapping[str, SeriesBaseline] = field(default_factory=dict)
    srs_seen: Mapping[str, SrsSeen] = field(default_factory=dict)
    lenient_pending: Mapping[str, AlliancePoint] = field(default_factory=dict)
    episode_open: bool = True
    # The session time of the latest outcome score per instrument (not-on-track judges the latest only).
    outcome_seen: Mapping[str, datetime] = field(default_factory=dict)

    def alert(self, rule_id: str) -> OpenAlert | None:
        """The open alert of a rule, if any."""
        return self.open_alerts.get(rule_id)

    def with_alert(self, alert: OpenAlert) -> EpisodeState:
        """A copy with `alert` stored as the open alert of its rule."""
        return replace(self, open_alerts={**self.open_alerts, alert.rule_id: alert})

    def without_alert(self, rule_id: str) -> EpisodeState:
        """A copy with the rule's open alert removed."""
        return replace(self, open_alerts={k: v for k, v in self.open_alerts.items() if k != rule_id})

    def with_rupture_closure(self, closure: RuptureClosure) -> EpisodeState:
        """A copy that remembers one more closed rupture alert."""
        closures = sorted((*self.rupture_closures, closure), key=lambda c: c.closed_at)
        return replace(self, rupture_closures=tuple(closures[-MAX_RUPTURE_CLOSURES:]))
