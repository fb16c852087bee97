"""`alliance.rupture` from the post-session rupture questions (PSQ), and PSQ-reported repair."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from attune_alerts.domain.common import (
    Evidence,
    new_trigger_evidence,
    num,
    raise_alert,
    resolve_alert,
    update_alert,
)
from attune_alerts.domain.decisions import Decision
from attune_alerts.domain.inputs import Measure
from attune_alerts.domain.rupture import amend_rupture, rupture_thresholds
from attune_alerts.domain.state import EpisodeState, RuptureTrack, SeriesBaseline
from attune_alerts.domain.texts import RUPTURE
from attune_alerts.domain.thresholds import AlertThresholds

PSQ = "psq"


def psq_fires(m: Measure, th: AlertThresholds) -> bool:
    """Criterion 3: rupture reported and tension at or above the threshold."""
    tension = m.score("tension")
    return m.flag("rupture_reported") and tension is not None and tension >= th.psq_tension_min


def in_session_repair(m: Measure, th: AlertThresholds) -> bool:
    """Resolution at or above the clinic's threshold; the scored flag only when resolution is absent."""
    resolution = m.score("resolution")
    return m.flag("in_session_repair") if resolution is None else resolution >= th.psq_repair_min


def _latest_baseline(state: EpisodeState) -> tuple[str, SeriesBaseline] | None:
    """The alliance series whose latest `mu` is the most recent one known (ties: series key order)."""
    if not state.baselines:
        return None
    return max(state.baselines.items(), key=lambda kv: (kv[1].session_at, kv[1].position, kv[0]))


def apply_psq(
    state: EpisodeState, m: Measure, th: AlertThresholds, now: datetime, *, amended: bool
) -> tuple[EpisodeState, list[Decision]]:
    """Raise or add to the rupture alert from a PSQ, or resolve a PSQ-triggered one `repaired`.

    A later PSQ that reports a new rupture (criterion 3 again) counts as a new trigger, not as a
    repair, even when it also shows in-session repair.
    """
    if m.instrument != "PSQ" or not state.episode_open:
        return state, []
    fires = psq_fires(m, th)
    evidence: Evidence = {
        "instrument": "PSQ",
        "criterion": PSQ,
        "rupture_reported": m.flag("rupture_reported"),
        "tension": m.scores.get("tension"),
        "resolution": m.scores.get("resolution"),
        "response_id": m.response_id,
        "thresholds": rupture_thresholds(th),
    }
    alert = state.alert(RUPTURE)
    if alert is not None and amended and m.response_id in alert.trigger_response_ids:
        return amend_rupture(state, alert, m, evidence if fires else None, now)
    track = None if alert is None else alert.rupture
    if (
        alert is not None
        and track is not None
        and not alert.unrepaired
        and not fires
        and in_session_repair(m, th)
        and PSQ in track.criteria
        and track.psq_session_at is not None
        and m.session_at > track.psq_session_at
    ):
        state, r = resolve_alert(
            state,
            RUPTURE,
            "repaired",
            {
                "repair": "in_session_repair",
                "resolution": m.scores.get("resolution"),
                "repair_response_id": m.response_id,
            },
            now,
        )
        return state, [r]
    if not fires:
        return state, []
    base = _latest_baseline(state)
    if alert is None:
        track = RuptureTrack(
            criteria=(PSQ,),
            trigger_session_at=m.session_at,
            psq_session_at=m.session_at,
            series_key=None if base is None else base[0],
            mu=None if base is None else base[1].mu,
        )
        evidence = {**evidence, "mu": num(track.mu), "baseline": num(track.mu), "unrepaired": False}
        state, raised = raise_alert(
            state,
            rule_id=RUPTURE,
            severity="high",
            evidence=evidence,
            thresholds_used=rupture_thresholds(th),
            triggers={m.response_id},
            now=now,
            rupture=track,
        )
        return state, [raised]
    track = track or RuptureTrack(criteria=(), trigger_session_at=m.session_at)
    psq_at = m.session_at if track.psq_session_at is None else max(track.psq_session_at, m.session_at)
    criteria = track.criteria if PSQ in track.criteria else (*track.criteria, PSQ)
    track = replace(track, criteria=criteria, psq_session_at=psq_at)
    if track.mu is None and base is not None:
        track = replace(track, series_key=base[0], mu=base[1].mu)
    state, d = update_alert(
        state,
        alert,
        new_trigger_evidence(alert, evidence, criteria=list(criteria)),
        rupture=track,
        trigger_response_ids=alert.trigger_response_ids | {m.response_id},
    )
    return state, [d]
