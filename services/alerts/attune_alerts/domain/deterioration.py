"""`outcome.deterioration` (high): reliable deterioration from intake on ORS, PHQ-9 or GAD-7."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from attune_alerts.domain.common import (
    Evidence,
    amendment_explanation,
    new_trigger_evidence,
    num,
    raise_alert,
    resolve_alert,
    update_alert,
)
from attune_alerts.domain.decisions import Decision
from attune_alerts.domain.inputs import OUTCOME_INSTRUMENTS, ChangeFromIntake, Measure
from attune_alerts.domain.state import EpisodeState, OpenAlert, TriggerMark
from attune_alerts.domain.texts import DETERIORATION
from attune_alerts.domain.thresholds import AlertThresholds

AUTO_REASON = "no longer reliably worse than intake"


def _evidence(m: Measure, change: ChangeFromIntake) -> Evidence:
    return {
        "instrument": m.instrument,
        "score": num(m.score("total")),
        "intake_score": num(change.intake_score),
        "change": num(change.change),
        "reliable_change_threshold": num(change.threshold),
        "response_id": m.response_id,
    }


def apply_deterioration(
    state: EpisodeState, m: Measure, th: AlertThresholds, now: datetime, *, amended: bool
) -> tuple[EpisodeState, list[Decision]]:
    """Raise, update or resolve the deterioration alert from one outcome score.

    The measures service decides `reliable_deterioration` (direction-aware, from the Jacobson-Truax
    table); this rule trusts that flag. The alert resolves by itself when every instrument that
    triggered it has a later score (by session time) that is no longer reliably deteriorated. The
    contract has no "recovered" resolution, so that resolution is `addressed` with evidence
    `auto: true, reason: "no longer reliably worse than intake"`. An amendment that removes the only
    triggering response resolves `false_positive`.
    """
    if m.instrument not in OUTCOME_INSTRUMENTS or m.change is None or not state.episode_open:
        return state, []
    evidence = _evidence(m, m.change)
    alert = state.alert(DETERIORATION)
    amended_trigger = alert is not None and amended and m.response_id in alert.trigger_response_ids
    if alert is not None and amended_trigger:
        if m.change.reliable_deterioration:
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
            state, r = resolve_alert(state, DETERIORATION, "false_positive", note, now)
            return state, [r]
        # Other responses also triggered it: drop this one and judge the rest as for any later score.
        alert = replace(
            alert,
            trigger_response_ids=alert.trigger_response_ids - {m.response_id},
            marks=tuple(k for k in alert.marks if k.response_id != m.response_id),
        )
        state = state.with_alert(alert)
    if m.change.reliable_deterioration:
        return _triggered(state, alert, m, evidence, th, now)
    if alert is None:
        return state, []
    return _not_deteriorated(state, alert, m, evidence, now, amended_trigger=amended_trigger)


def _triggered(
    state: EpisodeState,
    alert: OpenAlert | None,
    m: Measure,
    evidence: Evidence,
    th: AlertThresholds,
    now: datetime,
) -> tuple[EpisodeState, list[Decision]]:
    mark = TriggerMark(m.response_id, m.instrument, m.session_at)
    if alert is None:
        state, raised = raise_alert(
            state,
            rule_id=DETERIORATION,
            severity="high",
            evidence={**evidence, "instruments": [m.instrument]},
            thresholds_used={"reliable_change_threshold": evidence["reliable_change_threshold"]},
            triggers={m.response_id},
            now=now,
            marks=(mark,),
        )
        return state, [raised]
    marks = (*alert.marks, mark)
    state, d = update_alert(
        state,
        alert,
        new_trigger_evidence(alert, evidence, instruments=_instruments(marks)),
        marks=marks,
        trigger_response_ids=alert.trigger_response_ids | {m.response_id},
    )
    return state, [d]


def _not_deteriorated(
    state: EpisodeState,
    alert: OpenAlert,
    m: Measure,
    evidence: Evidence,
    now: datetime,
    *,
    amended_trigger: bool,
) -> tuple[EpisodeState, list[Decision]]:
    # Only a LATER score of the same instrument clears a mark; a late-arriving older one does not.
    remaining = tuple(k for k in alert.marks if k.instrument != m.instrument or k.session_at >= m.session_at)
    if not remaining:
        note = {**evidence, "auto": True, "reason": AUTO_REASON}
        state, r = resolve_alert(state, DETERIORATION, "addressed", note, now)
        return state, [r]
    if remaining == alert.marks and not amended_trigger:
        return state, []
    extra = {"instruments": _instruments(remaining), "no_longer_deteriorated": m.instrument}
    if amended_trigger:
        extra["amended_response_id"] = m.response_id
    state, d = update_alert(state, alert, {**alert.evidence, **extra}, marks=remaining)
    return state, [d]


def _instruments(marks: tuple[TriggerMark, ...]) -> list[str]:
    return sorted({k.instrument for k in marks})
