"""`alliance.rupture` (high), version 1: score-based detection (strict and lenient criteria)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from attune_alerts.domain.common import (
    Evidence,
    amendment_explanation,
    at_least,
    new_trigger_evidence,
    num,
    raise_alert,
    resolve_alert,
    update_alert,
)
from attune_alerts.domain.decisions import Decision
from attune_alerts.domain.inputs import ALLIANCE_INSTRUMENTS, Measure
from attune_alerts.domain.repair import track_repair
from attune_alerts.domain.state import (
    AlliancePoint,
    EpisodeState,
    OpenAlert,
    RuptureTrack,
    SeriesBaseline,
    SrsSeen,
)
from attune_alerts.domain.texts import RUPTURE
from attune_alerts.domain.thresholds import AlertThresholds

STRICT, LENIENT = "strict", "lenient"


@dataclass(frozen=True, slots=True)
class ScoreTrigger:
    """A criterion that fired on an alliance score, and every response it depended on."""

    criterion: str
    response_ids: frozenset[str]
    point: AlliancePoint


def rupture_thresholds(th: AlertThresholds) -> dict[str, float | int]:
    """The thresholds a rupture decision uses, recorded with every rupture alert."""
    return {
        "rupture_strict_drop": th.rupture_strict_drop,
        "rupture_lenient_drop": th.rupture_lenient_drop,
        "psq_tension_min": th.psq_tension_min,
        "psq_repair_min": th.psq_repair_min,
        "repair_window_sessions": th.repair_window_sessions,
    }


def apply_alliance(
    state: EpisodeState, m: Measure, th: AlertThresholds, now: datetime, *, amended: bool
) -> tuple[EpisodeState, list[Decision]]:
    """Detect a possible rupture from a client-rated alliance score and track repair of an open one."""
    if not state.episode_open or m.instrument not in ALLIANCE_INSTRUMENTS or m.respondent != "client":
        return state, []
    state = _remember(state, m)
    state, own, triggers = _triggers(state, m, th)
    alert = state.alert(RUPTURE)
    if alert is not None and amended and m.response_id in alert.trigger_response_ids:
        still = None if own is None else score_evidence(own, th)
        return amend_rupture(state, alert, m, still, now)
    decisions: list[Decision] = []
    if alert is not None:
        state, decisions = track_repair(state, alert, m, th, now)
    for trigger in triggers:
        state, d = _fire(state, trigger, th, now)
        decisions.append(d)
    return state, decisions


def _point(m: Measure) -> AlliancePoint | None:
    s = m.series
    if s is None or s.mu is None or s.sd_eff is None or s.drop is None:
        return None  # fewer than k_min earlier scores: no baseline, no detection
    return AlliancePoint(
        m.response_id, m.instrument, s.series_key, s.score, s.mu, s.sd_eff, s.drop, s.position, m.session_at
    )


def _own_concern(m: Measure) -> bool:
    return m.flag("alliance_concern") or m.flag("item_concern")


def _concern_response(m: Measure, state: EpisodeState) -> str | None:
    """The SRS response of the same session that shows concern, if any."""
    if m.instrument == "SRS":
        return m.response_id if _own_concern(m) else None
    seen = state.srs_seen.get(m.appointment_id) if m.appointment_id else None
    return seen.response_id if seen is not None and seen.concern else None


def _remember(state: EpisodeState, m: Measure) -> EpisodeState:
    s = m.series
    if s is not None and s.mu is not None:
        known = state.baselines.get(s.series_key)
        if known is None or s.position >= known.position:
            state = replace(
                state,
                baselines={**state.baselines, s.series_key: SeriesBaseline(s.mu, m.session_at, s.position)},
            )
    if m.instrument == "SRS" and m.appointment_id:
        seen = SrsSeen(m.response_id, _own_concern(m))
        state = replace(state, srs_seen={**state.srs_seen, m.appointment_id: seen})
    return state


def _triggers(
    state: EpisodeState, m: Measure, th: AlertThresholds
) -> tuple[EpisodeState, ScoreTrigger | None, list[ScoreTrigger]]:
    """This score's own trigger, plus a waiting lenient candidate that this SRS's concern completes."""
    point, appt = _point(m), m.appointment_id
    own: ScoreTrigger | None = None
    lenient_drop = point is not None and at_least(point.drop, th.rupture_lenient_drop)
    if point is not None and at_least(point.drop, th.rupture_strict_drop):
        own = ScoreTrigger(STRICT, frozenset({m.response_id}), point)
    elif point is not None and lenient_drop and (concern := _concern_response(m, state)) is not None:
        own = ScoreTrigger(LENIENT, frozenset({m.response_id, concern}), point)
    pending = dict(state.lenient_pending)
    if appt and (waiting := pending.get(appt)) is not None and waiting.response_id == m.response_id:
        del pending[appt]  # an amended revision replaces its own candidacy
    if appt and point is not None and own is None and lenient_drop and m.instrument != "SRS":
        pending[appt] = point  # the session's SRS may still arrive (events come out of order)
    triggers = [own] if own is not None else []
    if (
        appt
        and m.instrument == "SRS"
        and _own_concern(m)
        and (waiting := pending.pop(appt, None)) is not None
    ):
        triggers.append(ScoreTrigger(LENIENT, frozenset({waiting.response_id, m.response_id}), waiting))
    return replace(state, lenient_pending=pending), own, triggers


def score_evidence(t: ScoreTrigger, th: AlertThresholds) -> Evidence:
    """What a score-based trigger shows: the score against its baseline, and the rule's thresholds."""
    p = t.point
    evidence: Evidence = {
        "instrument": p.instrument,
        "score": num(p.score),
        "mu": num(p.mu),
        "sd_eff": num(p.sd_eff),
        "drop": num(p.drop),
        "baseline": num(p.mu),
        "drop_sd": num(p.drop),
        "criterion": t.criterion,
        "position": p.position,
        "response_id": p.response_id,
        "thresholds": rupture_thresholds(th),
    }
    others = sorted(t.response_ids - {p.response_id})
    if others:
        evidence["srs_response_id"] = others[0]
    return evidence


def start_scored(track: RuptureTrack, p: AlliancePoint) -> RuptureTrack:
    """Start score-based repair tracking: baseline `mu` and the trough at this score."""
    return replace(
        track,
        series_key=p.series_key,
        mu=p.mu,
        trough_score=p.score,
        trough_position=p.position,
        trough_response_id=p.response_id,
        sessions_since_trough=0,
    )


def _fire(
    state: EpisodeState, t: ScoreTrigger, th: AlertThresholds, now: datetime
) -> tuple[EpisodeState, Decision]:
    p, alert = t.point, state.alert(RUPTURE)
    if alert is None:
        track = start_scored(RuptureTrack(criteria=(t.criterion,), trigger_session_at=p.session_at), p)
        evidence = {**score_evidence(t, th), "trough": num(p.score), "unrepaired": False}
        return raise_alert(
            state,
            rule_id=RUPTURE,
            severity="high",
            evidence=evidence,
            thresholds_used=rupture_thresholds(th),
            triggers=t.response_ids,
            now=now,
            rupture=track,
        )
    track = alert.rupture or RuptureTrack(criteria=(), trigger_session_at=p.session_at)
    criteria = track.criteria if t.criterion in track.criteria else (*track.criteria, t.criterion)
    track = replace(track, criteria=criteria)
    if track.trough_position is None and not alert.unrepaired:
        track = start_scored(track, p)  # PSQ-only so far: score-based repair tracking starts here
    evidence = new_trigger_evidence(
        alert, score_evidence(t, th), criteria=list(criteria), trough=num(track.trough_score)
    )
    return update_alert(
        state,
        alert,
        evidence,
        rupture=track,
        trigger_response_ids=alert.trigger_response_ids | t.response_ids,
    )


def amend_rupture(
    state: EpisodeState, alert: OpenAlert, m: Measure, still: Evidence | None, now: datetime
) -> tuple[EpisodeState, list[Decision]]:
    """Re-judge an open rupture alert after one of its trigger responses was amended."""
    rid = m.response_id
    if still is not None:
        track = alert.rupture
        if track is not None and track.trough_response_id == rid and m.series is not None:
            track = replace(track, trough_score=m.series.score)
        top = still if alert.evidence.get("response_id") == rid else {"amended_trigger": still}
        trough = {} if track is None or track.trough_score is None else {"trough": num(track.trough_score)}
        state, d = update_alert(
            state, alert, {**alert.evidence, **top, **trough, "amended_response_id": rid}, rupture=track
        )
        return state, [d]
    if alert.trigger_response_ids == {rid}:
        state, r = resolve_alert(
            state,
            RUPTURE,
            "false_positive",
            {"explanation": amendment_explanation(rid), "response_id": rid, "instrument": m.instrument},
            now,
        )
        return state, [r]
    note = {
        "amended_response_id": rid,
        "explanation": amendment_explanation(rid) + "; other responses still support the alert",
    }
    state, d = update_alert(
        state, alert, {**alert.evidence, **note}, trigger_response_ids=alert.trigger_response_ids - {rid}
    )
    return state, [d]
