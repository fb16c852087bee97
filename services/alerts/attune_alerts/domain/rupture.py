"""`alliance.rupture` (high), version 1: score-based detection (strict and lenient criteria)."""

from __future__ import annotations

import json
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
from attune_alerts.domain.decisions import Decision, Update
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
    """A criterion that fired on an alliance score, and every response it depended on; `at` is the
    EHR time of the latest of those responses (None when one was kept without its time)."""

    criterion: str
    response_ids: frozenset[str]
    point: AlliancePoint
    at: datetime | None


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
    for i, trigger in enumerate(triggers):
        state, d = _fire(state, trigger, th, now)
        if i > 0 and isinstance(d, Update):
            # The SRS's own trigger and the waiting WAI-SR it completes: in the other order (SRS
            # first) the WAI-SR's trigger is an input of its own, so it is a change of its own here too.
            d = replace(d, alone=True)
        decisions.append(d)
    return state, decisions


def _point(m: Measure) -> AlliancePoint | None:
    s = m.series
    if s is None or s.mu is None or s.sd_eff is None or s.drop is None:
        return None  # fewer than k_min earlier scores: no baseline, no detection
    return AlliancePoint(
        m.response_id,
        m.instrument,
        s.series_key,
        s.score,
        s.mu,
        s.sd_eff,
        s.drop,
        s.position,
        m.session_at,
        m.occurred_at,
    )


def _own_concern(m: Measure) -> bool:
    return m.flag("alliance_concern") or m.flag("item_concern")


def _concern_response(m: Measure, state: EpisodeState) -> SrsSeen | None:
    """The SRS response of the same session that shows concern, if any."""
    if m.instrument == "SRS":
        return SrsSeen(m.response_id, True, m.occurred_at) if _own_concern(m) else None
    seen = state.srs_seen.get(m.appointment_id) if m.appointment_id else None
    return seen if seen is not None and seen.concern else None


def _latest(*times: datetime | None) -> datetime | None:
    """The latest of the responses' times, the same whatever their order; None if one is unknown."""
    known = [t for t in times if t is not None]
    if len(known) < len(times):
        return None
    return max(known, key=lambda t: (t, t.isoformat()))


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
        seen = SrsSeen(m.response_id, _own_concern(m), m.occurred_at)
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
        own = ScoreTrigger(STRICT, frozenset({m.response_id}), point, m.occurred_at)
    elif point is not None and lenient_drop and (concern := _concern_response(m, state)) is not None:
        at = _latest(m.occurred_at, concern.occurred_at)
        own = ScoreTrigger(LENIENT, frozenset({m.response_id, concern.response_id}), point, at)
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
        at = _latest(waiting.occurred_at, m.occurred_at)
        triggers.append(ScoreTrigger(LENIENT, frozenset({waiting.response_id, m.response_id}), waiting, at))
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


def trigger_key(state: EpisodeState, t: ScoreTrigger) -> str | None:
    """What names the alert a trigger of several responses raises: those responses at their applied
    revisions. A lenient rupture fires on whichever of its session's WAI-SR and SRS the rules see
    second (measures emits them in arrival order across its batches), so the raising input, which
    names every other alert, would name it by that order. The revisions keep a rupture withdrawn by
    an amendment and raised again by a later revision of the same responses a new alert (each raise
    includes a revision applied just then, and a revision is applied once). None for one response:
    the input that raised the alert is that response's own."""
    if len(t.response_ids) < 2:
        return None
    revisions = sorted([rid, state.applied.get(rid, 0)] for rid in t.response_ids)
    return "responses:" + json.dumps(revisions, separators=(",", ":"))


def _fire(
    state: EpisodeState, t: ScoreTrigger, th: AlertThresholds, now: datetime
) -> tuple[EpisodeState, Decision]:
    p, alert = t.point, state.alert(RUPTURE)
    if alert is None:
        track = start_scored(RuptureTrack(criteria=(t.criterion,), trigger_session_at=p.session_at), p)
        evidence = {**score_evidence(t, th), "trough": num(p.score), "unrepaired": False}
        state, raised = raise_alert(
            state,
            rule_id=RUPTURE,
            severity="high",
            evidence=evidence,
            thresholds_used=rupture_thresholds(th),
            triggers=t.response_ids,
            now=now,
            rupture=track,
        )
        key = trigger_key(state, t)
        if key is None:
            return state, raised
        return state, replace(raised, key=key, triggered_at=t.at)
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
