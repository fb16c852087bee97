"""Shared steps of every rule: raise, update and resolve an episode's one open alert per rule."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from attune_alerts.domain.decisions import Decision, Raise, Resolve, Update
from attune_alerts.domain.state import EpisodeState, OpenAlert, RuptureClosure, RuptureTrack, TriggerMark
from attune_alerts.domain.texts import RULE_VERSION, RUPTURE, SUGGESTED_ACTIONS, TITLES

# Scores and drops arrive as floats computed elsewhere; a drop of exactly 2.0 may come out as
# 1.9999999999999996, and "2 SD" must still fire.
EPS = 1e-9

Evidence = dict[str, Any]


def at_least(value: float, threshold: float) -> bool:
    """`value >= threshold`, tolerant of float rounding."""
    return value >= threshold - EPS


def num(value: float | None) -> float | None:
    """A number rounded for display in evidence (state keeps the exact value)."""
    return None if value is None else round(float(value), 4)


def raise_alert(
    state: EpisodeState,
    *,
    rule_id: str,
    severity: str,
    evidence: Evidence,
    thresholds_used: Mapping[str, Any],
    triggers: Iterable[str],
    now: datetime,
    rupture: RuptureTrack | None = None,
    marks: tuple[TriggerMark, ...] = (),
    reengage_after: datetime | None = None,
) -> tuple[EpisodeState, Raise]:
    """Open the rule's alert and say so."""
    evidence = {**evidence, "trigger_count": 1}
    alert = OpenAlert(
        rule_id,
        severity,
        evidence,
        frozenset(triggers),
        now,
        rupture=rupture,
        marks=marks,
        reengage_after=reengage_after,
    )
    decision = Raise(
        rule_id,
        RULE_VERSION,
        severity,
        TITLES[rule_id],
        evidence,
        SUGGESTED_ACTIONS[rule_id],
        dict(thresholds_used),
    )
    return state.with_alert(alert), decision


def update_alert(
    state: EpisodeState, alert: OpenAlert, evidence: Evidence, *, severity: str | None = None, **changes: Any
) -> tuple[EpisodeState, Update]:
    """Store new evidence (and tracking `changes`) on an open alert and say so."""
    new_severity = severity if severity is not None and severity != alert.severity else None
    updated = replace(alert, evidence=evidence, severity=new_severity or alert.severity, **changes)
    return state.with_alert(updated), Update(alert.rule_id, evidence, new_severity)


def new_trigger_evidence(alert: OpenAlert, latest: Evidence, **extra: Any) -> Evidence:
    """The open alert's evidence plus one more trigger: kept as `latest_trigger`, counted."""
    count = int(alert.evidence.get("trigger_count", 1)) + 1
    return {**alert.evidence, **extra, "latest_trigger": latest, "trigger_count": count}


def resolve_alert(
    state: EpisodeState, rule_id: str, resolution: str, evidence: Evidence, now: datetime
) -> tuple[EpisodeState, Resolve]:
    """Close the rule's open alert; a closed rupture is remembered for the dropout severity rule."""
    state = state.without_alert(rule_id)
    if rule_id == RUPTURE and resolution != "false_positive":
        state = state.with_rupture_closure(RuptureClosure(now, repaired=resolution == "repaired"))
    return state, Resolve(rule_id, resolution, evidence)


def amendment_explanation(response_id: str) -> str:
    """The explanation recorded when an amended response no longer meets a rule."""
    return f"amended response {response_id} no longer meets the rule"


def compact(decisions: Iterable[Decision]) -> list[Decision]:
    """Fold an Update into the Raise or Update of the same rule just before it: one decision per change
    (an Update `alone` stays a change of its own)."""
    out: list[Decision] = []
    for d in decisions:
        prev = out[-1] if out else None
        if isinstance(d, Update) and d.alone:
            out.append(d)
        elif isinstance(d, Update) and isinstance(prev, Raise) and prev.rule_id == d.rule_id:
            out[-1] = replace(prev, evidence=d.evidence, severity=d.severity or prev.severity)
        elif isinstance(d, Update) and isinstance(prev, Update) and prev.rule_id == d.rule_id:
            out[-1] = Update(d.rule_id, d.evidence, d.severity or prev.severity, prev.alone)
        else:
            out.append(d)
    return out
