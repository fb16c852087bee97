"""`safety.phq9-item9` (urgent): any PHQ-9 response with item 9 at or above the threshold."""

from __future__ import annotations

from datetime import datetime

from attune_alerts.domain.common import amendment_explanation, new_trigger_evidence, raise_alert, update_alert
from attune_alerts.domain.decisions import Decision
from attune_alerts.domain.inputs import Measure
from attune_alerts.domain.state import EpisodeState
from attune_alerts.domain.texts import SAFETY
from attune_alerts.domain.thresholds import AlertThresholds


def apply_safety(
    state: EpisodeState, m: Measure, th: AlertThresholds, now: datetime, *, amended: bool
) -> tuple[EpisodeState, list[Decision]]:
    """Raise (or add evidence to) the urgent item-9 alert; this rule never resolves it.

    Only a person resolves a safety alert (clinical-rules.md), so an amendment that lowers item 9
    below the threshold does NOT resolve it `false_positive`: it adds that fact to the evidence and
    leaves the decision to the clinician. Episode closure is the one automatic resolution (rules.py).
    """
    item9 = m.scores.get("item9")
    if m.instrument != "PHQ-9" or item9 is None:
        return state, []
    fires = float(item9) >= th.phq9_item9_min
    evidence = {
        "instrument": "PHQ-9",
        "item9": item9,
        "total": m.scores.get("total"),
        "response_id": m.response_id,
        "item9_min": th.phq9_item9_min,
    }
    alert = state.alert(SAFETY)
    if alert is not None and amended and m.response_id in alert.trigger_response_ids:
        if fires:
            state, d = update_alert(
                state, alert, {**alert.evidence, **evidence, "amended_response_id": m.response_id}
            )
        else:
            note = {
                "amended_response_id": m.response_id,
                "explanation": amendment_explanation(m.response_id) + "; a person must review and resolve",
                "amended_item9": item9,
            }
            state, d = update_alert(state, alert, {**alert.evidence, **note})
        return state, [d]
    if not fires:
        return state, []
    if alert is None:
        state, raised = raise_alert(
            state,
            rule_id=SAFETY,
            severity="urgent",
            evidence=evidence,
            thresholds_used={"phq9_item9_min": th.phq9_item9_min},
            triggers={m.response_id},
            now=now,
        )
        return state, [raised]
    state, d = update_alert(
        state,
        alert,
        new_trigger_evidence(alert, evidence),
        trigger_response_ids=alert.trigger_response_ids | {m.response_id},
    )
    return state, [d]
