"""`outcome.not-on-track` (normal): an outcome score worse than the network's expected band for it.

Measures fits, per instrument (ORS, PHQ-9, GAD-7), the score expected at session `s` from the intake
score and `log(s)` on the network's closed episodes, and sends the band with each score it can judge
(`Measure.expected`). This rule only compares: it never fits, and a score without a band (no fitted
model yet, or the intake itself) never alerts.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from attune_alerts.domain.common import (
    EPS,
    Evidence,
    amendment_explanation,
    new_trigger_evidence,
    num,
    raise_alert,
    resolve_alert,
    update_alert,
)
from attune_alerts.domain.decisions import Decision
from attune_alerts.domain.inputs import OUTCOME_INSTRUMENTS, ExpectedBand, Measure
from attune_alerts.domain.state import EpisodeState, OpenAlert, TriggerMark
from attune_alerts.domain.texts import NOT_ON_TRACK
from attune_alerts.domain.thresholds import AlertThresholds

# clinical-rules.md: ORS is higher-is-better (worse = below the band); PHQ-9 and GAD-7 are
# lower-is-better (worse = above it).
HIGHER_IS_BETTER = frozenset({"ORS"})
AUTO_REASON = "back inside the expected band"


def worse_than_band(instrument: str, score: float, band: ExpectedBand) -> bool:
    """True when the score is outside the band on the worse side; a score on the edge is inside."""
    if instrument in HIGHER_IS_BETTER:
        return score < band.low - EPS
    return score > band.high + EPS


def _evidence(m: Measure, score: float, band: ExpectedBand | None) -> Evidence:
    out: Evidence = {"instrument": m.instrument, "score": num(score), "response_id": m.response_id}
    if band is None:
        return {**out, "expected": None}
    return {
        **out,
        "session_index": band.session_index,
        "expected_median": num(band.median),
        "expected_low": num(band.low),
        "expected_high": num(band.high),
        "quantiles": [float(q) for q in band.quantiles],
        "worse_side": "below" if m.instrument in HIGHER_IS_BETTER else "above",
        "model_version": band.model_version,
        "model_fitted_at": band.model_fitted_at.isoformat(),
        "model_episodes": band.model_episodes,
    }


def apply_not_on_track(
    state: EpisodeState, m: Measure, th: AlertThresholds, now: datetime, *, amended: bool
) -> tuple[EpisodeState, list[Decision]]:
    """Raise, update or resolve the not-on-track alert from one outcome score.

    Fires when the instrument's latest score (by session time), at session index
    `not_on_track_min_session` or later, is worse than its expected band. One alert per episode: a
    trigger on another instrument, or a later one on the same, adds evidence. It resolves by itself
    when every instrument that triggered it has a later score no longer worse than its band (inside
    it, or better). The contract has no "back on track" resolution, so, as for deterioration, that
    resolution is `addressed` with evidence `auto: true, reason: "back inside the expected band"`. A
    later score without a band (the model was withdrawn) cannot judge and changes nothing. An
    amendment re-judges a triggering response: still worse updates the evidence; no longer worse
    drops it, and when it was the only trigger the alert resolves `false_positive`.
    """
    if m.instrument not in OUTCOME_INSTRUMENTS or not state.episode_open:
        return state, []
    score = m.score("total")
    if score is None:
        return state, []
    seen = state.outcome_seen.get(m.instrument)
    latest = seen is None or m.session_at >= seen
    if seen is None or m.session_at > seen:
        state = replace(state, outcome_seen={**state.outcome_seen, m.instrument: m.session_at})
    band = m.expected
    evidence = _evidence(m, score, band)
    worse = (
        band is not None
        and band.session_index >= th.not_on_track_min_session
        and worse_than_band(m.instrument, score, band)
    )
    fires = worse and latest
    alert = state.alert(NOT_ON_TRACK)
    amended_trigger = alert is not None and amended and m.response_id in alert.trigger_response_ids
    if alert is not None and amended_trigger:
        if worse:  # a trigger stays one when amended, even if a later score has arrived since
            mark = TriggerMark(m.response_id, m.instrument, m.session_at)
            marks = (*(k for k in alert.marks if k.response_id != m.response_id), mark)
            state, d = update_alert(
                state,
                alert,
                {**alert.evidence, **evidence, "amended_response_id": m.response_id},
                marks=marks,
            )
            return state, [d]
        if alert.trigger_response_ids == {m.response_id}:
            note = {**evidence, "explanation": amendment_explanation(m.response_id)}
            state, r = resolve_alert(state, NOT_ON_TRACK, "false_positive", note, now)
            return state, [r]
        # Other responses also triggered it: drop this one and judge the rest as for any later score.
        alert = replace(
            alert,
            trigger_response_ids=alert.trigger_response_ids - {m.response_id},
            marks=tuple(k for k in alert.marks if k.response_id != m.response_id),
        )
        state = state.with_alert(alert)
    if fires:
        assert band is not None
        return _triggered(state, alert, m, evidence, band, th, now)
    if alert is None:
        return state, []
    return _on_track(state, alert, m, evidence, now, judged=band is not None, amended_trigger=amended_trigger)


def _triggered(
    state: EpisodeState,
    alert: OpenAlert | None,
    m: Measure,
    evidence: Evidence,
    band: ExpectedBand,
    th: AlertThresholds,
    now: datetime,
) -> tuple[EpisodeState, list[Decision]]:
    mark = TriggerMark(m.response_id, m.instrument, m.session_at)
    if alert is None:
        state, raised = raise_alert(
            state,
            rule_id=NOT_ON_TRACK,
            severity="normal",
            evidence={**evidence, "instruments": [m.instrument]},
            thresholds_used={
                "not_on_track_min_session": th.not_on_track_min_session,
                "band_low_quantile": float(band.quantiles[0]),
                "band_high_quantile": float(band.quantiles[2]),
            },
            triggers={m.response_id},
            now=now,
            marks=(mark,),
        )
        return state, [raised]
    marks = (*(k for k in alert.marks if k.response_id != m.response_id), mark)
    state, d = update_alert(
        state,
        alert,
        new_trigger_evidence(alert, evidence, instruments=_instruments(marks)),
        marks=marks,
        trigger_response_ids=alert.trigger_response_ids | {m.response_id},
    )
    return state, [d]


def _on_track(
    state: EpisodeState,
    alert: OpenAlert,
    m: Measure,
    evidence: Evidence,
    now: datetime,
    *,
    judged: bool,
    amended_trigger: bool,
) -> tuple[EpisodeState, list[Decision]]:
    # Only a LATER score of the same instrument, with a band to judge it by, clears a mark.
    remaining = (
        tuple(k for k in alert.marks if k.instrument != m.instrument or k.session_at >= m.session_at)
        if judged
        else alert.marks
    )
    if not remaining:
        note = {**evidence, "auto": True, "reason": AUTO_REASON}
        state, r = resolve_alert(state, NOT_ON_TRACK, "addressed", note, now)
        return state, [r]
    if remaining == alert.marks and not amended_trigger:
        return state, []
    extra: Evidence = {"instruments": _instruments(remaining)}
    if remaining != alert.marks:
        extra["back_on_track"] = m.instrument
    if amended_trigger:
        extra["amended_response_id"] = m.response_id
    state, d = update_alert(state, alert, {**alert.evidence, **extra}, marks=remaining)
    return state, [d]


def _instruments(marks: tuple[TriggerMark, ...]) -> list[str]:
    return sorted({k.instrument for k in marks})
