"""Repair of an open `alliance.rupture` alert from later scores in the same alliance series."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from attune_alerts.domain.common import at_least, num, resolve_alert, update_alert
from attune_alerts.domain.decisions import Decision
from attune_alerts.domain.inputs import Measure
from attune_alerts.domain.state import EpisodeState, OpenAlert
from attune_alerts.domain.texts import RUPTURE
from attune_alerts.domain.thresholds import AlertThresholds


def track_repair(
    state: EpisodeState, alert: OpenAlert, m: Measure, th: AlertThresholds, now: datetime
) -> tuple[EpisodeState, list[Decision]]:
    """Move the trough, resolve `repaired`, or mark the alert unrepaired, from one later alliance score.

    Score-based alert: repaired when a score later in the same series is >= `mu` (the pre-rupture
    baseline) at most W scored sessions after the trough. The trough is the lowest score since the
    alert was raised; a lower score moves it and restarts the count. When W sessions pass without
    repair the alert is marked `unrepaired` (one Update, severity stays high) and repair tracking
    stops: a later recovery does NOT count as repaired, because the rule is "repair within W" and
    reporting treats unrepaired ruptures as the outcome-relevant ones; the alert stays open until a
    person resolves it or the episode closes.

    PSQ-only alert (no trough): repaired by a later score in the baseline series >= `mu`, no window.
    """
    track, s = alert.rupture, m.series
    if track is None or s is None or alert.unrepaired or track.mu is None or track.series_key != s.series_key:
        return state, []
    repaired = {
        "repair": "alliance_score",
        "repair_score": num(s.score),
        "mu": num(track.mu),
        "repair_response_id": m.response_id,
    }
    if track.trough_position is None or track.trough_score is None:
        if m.session_at > track.trigger_session_at and at_least(s.score, track.mu):
            state, r = resolve_alert(state, RUPTURE, "repaired", repaired, now)
            return state, [r]
        return state, []
    mu, trough_position = track.mu, track.trough_position
    if s.position <= trough_position:
        return state, []  # not after the trough (a late-arriving earlier session)
    if s.score < track.trough_score:
        track = replace(
            track,
            trough_score=s.score,
            trough_position=s.position,
            trough_response_id=m.response_id,
            sessions_since_trough=0,
        )
        evidence = {
            **alert.evidence,
            "trough": num(s.score),
            "trough_position": s.position,
            "sessions_after_trough": 0,
        }
        state, u = update_alert(state, alert, evidence, rupture=track)
        return state, [u]
    n = s.position - trough_position
    if at_least(s.score, mu) and n <= th.repair_window_sessions:
        evidence = {**repaired, "trough": num(track.trough_score), "sessions_after_trough": n}
        state, r = resolve_alert(state, RUPTURE, "repaired", evidence, now)
        return state, [r]
    since = max(track.sessions_since_trough, n)
    track = replace(track, sessions_since_trough=since)
    if since < th.repair_window_sessions:
        return state.with_alert(replace(alert, rupture=track)), []
    evidence = {
        **alert.evidence,
        "unrepaired": True,
        "sessions_after_trough": since,
        "repair_window_sessions": th.repair_window_sessions,
    }
    state, u = update_alert(state, alert, evidence, unrepaired=True, rupture=track)
    return state, [u]
