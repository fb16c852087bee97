"""Pure translations at the edge of the rules: shared events -> domain inputs, and the repair figures
reporting needs that the rules do not compute themselves."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from attune_alerts.domain.decisions import Resolve
from attune_alerts.domain.inputs import CareEvent as DomainCare
from attune_alerts.domain.inputs import ChangeFromIntake, ExpectedBand, Measure, Score, SeriesPoint
from attune_alerts.domain.state import ATTENDED, EpisodeState
from attune_alerts.domain.texts import RUPTURE
from attune_shared.events import (
    CareEvent,
    EpisodeClosed,
    EpisodeOpened,
    MeasureScored,
    SessionAttended,
    SessionCancelled,
    SessionMissed,
)


def to_measure(ev: MeasureScored) -> Measure:
    """A scored response as the rules see it (text scores such as a PHQ-9 band are not rule inputs)."""
    scores: dict[str, Score] = {
        k: v for k, v in ev.scores.items() if isinstance(v, bool | int | float) and v is not None
    }
    change = (
        None
        if ev.change is None
        else ChangeFromIntake(
            intake_score=ev.change.intake_score,
            change=ev.change.change,
            reliable_deterioration=ev.change.reliable_deterioration,
            threshold=ev.change.threshold,
        )
    )
    s = ev.series
    series = (
        None
        if s is None
        else SeriesPoint(
            series_key=s.series_key,
            score=s.score,
            position=s.position,
            earlier_count=s.earlier_count,
            mu=s.mu,
            sd_eff=s.sd_eff,
            drop=s.drop,
        )
    )
    e = ev.expected
    expected = (
        None
        if e is None
        else ExpectedBand(
            session_index=e.session_index,
            median=e.median,
            low=e.low,
            high=e.high,
            quantiles=e.quantiles,
            model_version=e.model_version,
            model_fitted_at=e.model_fitted_at,
            model_episodes=e.model_episodes,
        )
    )
    return Measure(
        response_id=ev.response_id,
        revision=ev.revision,
        instrument=ev.instrument,
        respondent=ev.respondent,
        session_at=ev.session_at,
        occurred_at=ev.occurred_at,
        scores=scores,
        appointment_id=ev.appointment_id,
        change=change,
        series=series,
        superseded=ev.superseded,
        expected=expected,
    )


def to_care(ev: CareEvent) -> DomainCare | None:
    """A care event the rules act on, or None for context-only events (referral, scheduling, ...)."""
    if isinstance(ev, SessionAttended):
        return DomainCare("attended", ev.occurred_at, appointment_id=ev.appointment_id)
    if isinstance(ev, SessionMissed):
        return DomainCare("missed", ev.occurred_at, appointment_id=ev.appointment_id, missed_reason=ev.reason)
    if isinstance(ev, SessionCancelled):
        return DomainCare(
            "cancelled", ev.occurred_at, appointment_id=ev.appointment_id, cancelled_by=ev.cancelled_by
        )
    if isinstance(ev, EpisodeClosed):
        return DomainCare("closed", ev.occurred_at, close_reason=ev.reason)
    if isinstance(ev, EpisodeOpened):
        return DomainCare("opened", ev.occurred_at)
    return None


def tracking_at_raise(rule_id: str, state: EpisodeState) -> dict[str, Any]:
    """What to remember with a new rupture alert so its repair can be measured in sessions later.

    `raised_position` is the alliance-series position the alert was raised at: the triggering score's
    position for a score-based alert, the latest known position of the baseline series for a
    PSQ-triggered one (the PSQ itself has no series position).
    """
    alert = state.alert(rule_id)
    if rule_id != RUPTURE or alert is None or alert.rupture is None:
        return {}
    track = alert.rupture
    position = track.trough_position
    if position is None and track.series_key is not None and track.series_key in state.baselines:
        position = state.baselines[track.series_key].position
    return {"raised_position": position, "trigger_session_at": track.trigger_session_at.isoformat()}


def _attended_between(state: EpisodeState, after: datetime, until: datetime) -> int:
    days = {o.occurred_at.date() for o in state.sessions if o.kind == ATTENDED}
    return sum(1 for d in days if after.date() < d <= until.date())


def repair_extras(
    d: Resolve, tracking: Mapping[str, Any], measure: Measure | None, state: EpisodeState
) -> dict[str, Any]:
    """`sessions_to_repair` for a rupture resolved `repaired` (reporting takes the median of it).

    - Score-based alert: repair position minus TROUGH position in the alliance series
      (`sessions_to_repair_from: "trough"`, the rules' `sessions_after_trough`); the distance from
      the position the alert was raised at is added as `sessions_since_raised`.
    - PSQ-triggered alert repaired by an alliance score: repair position minus the position it was
      raised at (`sessions_to_repair_from: "raised"`).
    - PSQ in-session repair (no series position): attended sessions after the triggering session up
      to the repairing one, at least 1 (`"raised"`, `counted_by: "attended_sessions"`).
    """
    if d.rule_id != RUPTURE or d.resolution != "repaired":
        return {}
    position = measure.series.position if measure is not None and measure.series is not None else None
    raised_at_position = tracking.get("raised_position")
    if "sessions_after_trough" in d.evidence:
        out: dict[str, Any] = {
            "sessions_to_repair": int(d.evidence["sessions_after_trough"]),
            "sessions_to_repair_from": "trough",
        }
        if position is not None and raised_at_position is not None:
            out["sessions_since_raised"] = position - int(raised_at_position)
        return out
    if position is not None and raised_at_position is not None:
        return {"sessions_to_repair": position - int(raised_at_position), "sessions_to_repair_from": "raised"}
    trigger = tracking.get("trigger_session_at")
    if measure is None or trigger is None:
        return {"sessions_to_repair": None, "sessions_to_repair_from": "raised"}
    n = _attended_between(state, datetime.fromisoformat(trigger), measure.session_at)
    return {
        "sessions_to_repair": max(1, n),
        "sessions_to_repair_from": "raised",
        "counted_by": "attended_sessions",
    }
