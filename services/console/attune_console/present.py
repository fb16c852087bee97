"""Pure functions that turn API answers into what the pages show: order, SLA, evidence in words."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SEVERITY_RANK = {"urgent": 0, "high": 1, "normal": 2}
STATUS_RANK = {"open": 0, "acknowledged": 1, "resolved": 2}
# clinical-rules.md "Escalation": acknowledge within 1 h (urgent), 24 h (high), 72 h (normal).
SLA = {"urgent": timedelta(hours=1), "high": timedelta(hours=24), "normal": timedelta(hours=72)}
RULE_NAMES = {
    "safety.phq9-item9": "Self-harm item (PHQ-9 item 9)",
    "alliance.rupture": "Alliance rupture",
    "outcome.deterioration": "Reliable deterioration",
    "engagement.dropout-risk": "Dropout risk",
}
RESOLUTIONS = {
    "repaired": "repaired",
    "re_engaged": "client re-engaged",
    "episode_ended": "episode ended",
    "addressed": "addressed",
    "false_positive": "false positive",
}


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def sla_due(alert: dict[str, Any]) -> datetime | None:
    """When the next escalation falls due (level n at raised_at + n x SLA), for an open alert."""
    raised = parse_time(alert.get("raised_at"))
    period = SLA.get(str(alert.get("severity")))
    if alert.get("status") != "open" or raised is None or period is None:
        return None
    return raised + period * (int(alert.get("escalation_level") or 0) + 1)


def inbox_order(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Open first, then acknowledged, then resolved; within each, by severity, then the SLA due soonest
    (acknowledged and resolved: newest first)."""

    def key(a: dict[str, Any]) -> tuple[int, int, float]:
        due = sla_due(a)
        raised = parse_time(a.get("raised_at"))
        when = due.timestamp() if due else -(raised.timestamp() if raised else 0.0)
        return (STATUS_RANK.get(a.get("status", ""), 3), SEVERITY_RANK.get(a.get("severity", ""), 3), when)

    return sorted(alerts, key=key)


def rule_name(rule_id: str) -> str:
    return RULE_NAMES.get(rule_id, rule_id)


def counts_by_rule(alerts: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """(rule_id, name, count) of the alerts given, most first."""
    counted = Counter(str(a.get("rule_id")) for a in alerts)
    return [(r, rule_name(r), n) for r, n in sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))]


def _num(value: Any, digits: int = 1) -> str:
    if isinstance(value, bool) or value is None:
        return "not recorded"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else str(round(value))
    return str(value)


@dataclass(frozen=True)
class Explanation:
    """What fired and why: sentences, and the thresholds the rule used."""

    sentences: list[str]
    thresholds: list[tuple[str, str]]


def explain(alert: dict[str, Any]) -> Explanation:
    """The alert's evidence in words a clinician reads."""
    ev: dict[str, Any] = alert.get("evidence") or {}
    rule = str(alert.get("rule_id"))
    said: list[str] = []
    if rule == "alliance.rupture":
        said.append(
            f"The client's {ev.get('instrument', 'alliance')} score fell to {_num(ev.get('score'))}, "
            f"{_num(ev.get('drop_sd'))} standard deviations below their own baseline of "
            f"{_num(ev.get('baseline'))}."
        )
        th = ev.get("thresholds") or ev.get("thresholds_used") or {}
        if ev.get("criterion"):
            said.append(
                f"That meets the {ev['criterion']} criterion (a drop of at least "
                f"{_num(th.get('rupture_strict_drop'))} SD for strict, "
                f"{_num(th.get('rupture_lenient_drop'))} SD for lenient)."
            )
        if ev.get("trough") is not None:
            said.append(f"The lowest score since (the trough) is {_num(ev.get('trough'))}.")
        if ev.get("sessions_after_trough") is not None:
            state = "not yet repaired" if ev.get("unrepaired") else "repaired"
            said.append(
                f"{_num(ev.get('sessions_after_trough'))} session(s) after the trough, of a repair window of "
                f"{_num(ev.get('repair_window_sessions'))}: {state}."
            )
    elif rule == "outcome.deterioration":
        said.append(
            f"{ev.get('instrument', 'The outcome measure')} is {_num(ev.get('score'))} against "
            f"{_num(ev.get('intake_score'))} at intake: a change of {_num(ev.get('change'))}, beyond the "
            f"reliable-change threshold of {_num(ev.get('reliable_change_threshold'))}."
        )
    elif rule == "safety.phq9-item9":
        said.append(
            f"On the PHQ-9, item 9 (thoughts of being better off dead or of self-harm) was answered "
            f"{_num(ev.get('item9'))} (the rule fires at {_num(ev.get('item9_min'))} or more); "
            f"PHQ-9 total {_num(ev.get('total'))}."
        )
    elif rule == "engagement.dropout-risk":
        if ev.get("trigger") == "inactivity":
            said.append(f"No attended session for {_num(ev.get('days_since_attended'))} days.")
        elif ev.get("trigger") == "consecutive_misses":
            said.append(f"{_num(ev.get('consecutive_misses'))} sessions missed in a row.")
        if ev.get("severity_reason"):
            said.append(f"Raised to this severity because: {str(ev['severity_reason']).replace('_', ' ')}.")
    if not said:
        said.append(str(alert.get("title") or "An alert was raised."))
    if (ev.get("trigger_count") or 0) > 1:
        said.append(f"The rule has fired {_num(ev.get('trigger_count'))} times on this episode.")
    used = ev.get("thresholds_used") or ev.get("thresholds") or {}
    thresholds = (
        [(k.replace("_", " "), _num(v, 2)) for k, v in sorted(used.items())] if isinstance(used, dict) else []
    )
    return Explanation(said, thresholds)


@dataclass(frozen=True)
class Event:
    """One line of an alert's timeline."""

    at: str
    what: str
    by: str | None = None
    note: str | None = None


def timeline(alert: dict[str, Any]) -> list[Event]:
    """The alert's lifecycle and the notes people added, oldest first."""
    events: list[Event] = []
    if alert.get("triggered_at"):
        events.append(Event(alert["triggered_at"], "Triggering measure or appointment recorded in the EHR"))
    if alert.get("raised_at"):
        events.append(Event(alert["raised_at"], f"Alert raised ({alert.get('severity')})"))
    if int(alert.get("escalation_level") or 0) > 0:
        due = sla_due({**alert, "status": "open", "escalation_level": 0})
        if due is not None:
            events.append(Event(due.isoformat(), "Escalated: not acknowledged within the SLA"))
    if alert.get("acknowledged_at"):
        events.append(Event(alert["acknowledged_at"], "Acknowledged", alert.get("acknowledged_by")))
    if alert.get("resolved_at"):
        res = RESOLUTIONS.get(str(alert.get("resolution")), str(alert.get("resolution")))
        events.append(Event(alert["resolved_at"], f"Resolved: {res}"))
    for n in alert.get("notes") or []:
        action = str(n.get("action", "")).replace("_", " ")
        events.append(
            Event(str(n.get("at")), f"Note ({action})" if action else "Note", n.get("by"), n.get("note"))
        )
    return sorted(events, key=lambda e: parse_time(e.at) or _EPOCH)
