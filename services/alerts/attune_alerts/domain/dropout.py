"""`engagement.dropout-risk`: consecutive missed sessions, or inactivity found by the periodic sweep."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from attune_alerts.domain.common import Evidence, raise_alert, resolve_alert, update_alert
from attune_alerts.domain.decisions import Decision
from attune_alerts.domain.errors import AlertDomainError
from attune_alerts.domain.inputs import CareEvent
from attune_alerts.domain.state import (
    ATTENDED,
    CLIENT_CANCELLED,
    MISS_KINDS,
    MISSED,
    OTHER_CANCELLED,
    EpisodeState,
    SessionOutcome,
)
from attune_alerts.domain.texts import DROPOUT, RUPTURE
from attune_alerts.domain.thresholds import AlertThresholds


def outcome_kind(event: CareEvent) -> str:
    """The history kind of a session event; only a client's cancellation counts as a miss."""
    if event.kind == "attended":
        return ATTENDED
    if event.kind == "missed":
        return MISSED
    if event.kind == "cancelled":
        return CLIENT_CANCELLED if event.cancelled_by == "client" else OTHER_CANCELLED
    raise AlertDomainError(f"not a session outcome: {event.kind!r}")


def record_outcome(state: EpisodeState, outcome: SessionOutcome) -> EpisodeState | None:
    """Insert an outcome in occurred_at order (same appointment_id replaces); None when already known."""
    kept = list(state.sessions)
    if outcome.appointment_id is not None:
        if outcome in kept:
            return None
        kept = [o for o in kept if o.appointment_id != outcome.appointment_id]
    elif outcome in kept:
        return None
    sessions = tuple(sorted((*kept, outcome), key=lambda o: o.occurred_at))
    attended = [o.occurred_at for o in sessions if o.kind == ATTENDED]
    return replace(state, sessions=sessions, last_attended_at=max(attended, default=None))


def trailing_misses(state: EpisodeState) -> list[SessionOutcome]:
    """Misses after the last attended session, in occurred_at order (cancellations by others skipped)."""
    run: list[SessionOutcome] = []
    for outcome in state.sessions:
        if outcome.kind == ATTENDED:
            run = []
        elif outcome.kind in MISS_KINDS:
            run.append(outcome)
    return run


def dropout_severity(state: EpisodeState, now: datetime, th: AlertThresholds) -> tuple[str, str | None]:
    """`high` while a rupture alert is open or one closed unrepaired within the recency window."""
    if state.alert(RUPTURE) is not None:
        return "high", "rupture_open"
    window = timedelta(days=th.rupture_recency_days)
    if any(not c.repaired and now - c.closed_at <= window for c in state.rupture_closures):
        return "high", "rupture_closed_unrepaired_recently"
    return "normal", None


def _used(th: AlertThresholds) -> dict[str, int]:
    return {
        "dropout_consecutive_misses": th.dropout_consecutive_misses,
        "inactivity_days": th.inactivity_days,
        "rupture_recency_days": th.rupture_recency_days,
    }


def apply_session(
    state: EpisodeState, event: CareEvent, th: AlertThresholds, now: datetime
) -> tuple[EpisodeState, list[Decision]]:
    """Record an attended, missed or cancelled session and raise, update or resolve dropout risk."""
    outcome = SessionOutcome(event.occurred_at, event.appointment_id, outcome_kind(event))
    recorded = record_outcome(state, outcome)
    if recorded is None:
        return state, []  # a replayed event: same appointment, same outcome
    state = recorded
    if not state.episode_open:
        return state, []
    alert = state.alert(DROPOUT)
    if outcome.kind == ATTENDED:
        if (
            alert is not None
            and alert.reengage_after is not None
            and outcome.occurred_at > alert.reengage_after
        ):
            state, r = resolve_alert(
                state, DROPOUT, "re_engaged", {"reason": "attended session after the risk"}, now
            )
            return state, [r]
        return state, []
    run = trailing_misses(state)
    if outcome.kind not in MISS_KINDS or outcome not in run or len(run) < th.dropout_consecutive_misses:
        return state, []
    severity, context = dropout_severity(state, now, th)
    evidence: Evidence = {
        "trigger": "consecutive_misses",
        "consecutive_misses": len(run),
        "no_shows_or_late_cancels": sum(o.kind == MISSED for o in run),
        "client_cancellations": sum(o.kind == CLIENT_CANCELLED for o in run),
        "severity_reason": context,
        "thresholds": _used(th),
    }
    last_miss = run[-1].occurred_at
    if alert is None:
        return _raised(state, severity, evidence, th, now, reengage_after=last_miss)
    higher = "high" if severity == "high" else None  # never lower an open alert's severity by itself
    after = last_miss if alert.reengage_after is None else max(alert.reengage_after, last_miss)
    state, u = update_alert(
        state, alert, {**alert.evidence, **evidence}, severity=higher, reengage_after=after
    )
    return state, [u]


def _raised(
    state: EpisodeState,
    severity: str,
    evidence: Evidence,
    th: AlertThresholds,
    now: datetime,
    *,
    reengage_after: datetime,
) -> tuple[EpisodeState, list[Decision]]:
    state, raised = raise_alert(
        state,
        rule_id=DROPOUT,
        severity=severity,
        evidence=evidence,
        thresholds_used=_used(th),
        triggers=(),
        now=now,
        reengage_after=reengage_after,
    )
    return state, [raised]


def sweep_inactivity(
    state: EpisodeState, now: datetime, th: AlertThresholds
) -> tuple[EpisodeState, list[Decision]]:
    """Raise dropout risk when an open episode that had an attended session has none for N days.

    An already-open dropout alert gets nothing from the sweep (it runs often; repeating the same
    evidence every run would only be noise).
    """
    last = state.last_attended_at
    if not state.episode_open or last is None or state.alert(DROPOUT) is not None:
        return state, []
    if now - last < timedelta(days=th.inactivity_days):
        return state, []
    severity, context = dropout_severity(state, now, th)
    evidence: Evidence = {
        "trigger": "inactivity",
        "days_since_attended": (now - last).days,
        "severity_reason": context,
        "thresholds": _used(th),
    }
    return _raised(state, severity, evidence, th, now, reengage_after=last)


def sync_dropout_severity(
    state: EpisodeState, now: datetime, th: AlertThresholds
) -> tuple[EpisodeState, list[Decision]]:
    """Raise an open normal dropout alert to high once a rupture alert opens (never the reverse)."""
    alert = state.alert(DROPOUT)
    if alert is None or alert.severity == "high":
        return state, []
    severity, context = dropout_severity(state, now, th)
    if severity != "high":
        return state, []
    state, u = update_alert(state, alert, {**alert.evidence, "severity_reason": context}, severity="high")
    return state, [u]
