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
    "outcome.not-on-track": "Not on track",
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
    """When the next escalation falls due, for an open alert: the alerts API's `escalation_due_at`
    (under the clinic's own SLA); without it, level n at raised_at + n x the default SLA."""
    if "escalation_due_at" in alert:
        return parse_time(alert.get("escalation_due_at")) if alert.get("status") == "open" else None
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
    if rule == "alliance.rupture" and ev.get("criterion") == "psq":
        th = ev.get("thresholds") or ev.get("thresholds_used") or {}
        said.append(
            "After the session the client reported a rupture on the post-session questions (PSQ): "
            f"tension {_num(ev.get('tension'))} of 5 and resolution {_num(ev.get('resolution'))} of 5."
        )
        said.append(
            f"That meets the PSQ criterion: a rupture reported with tension of at least "
            f"{_num(th.get('psq_tension_min'))}. It counts as repaired when a later PSQ has a resolution of "
            f"{_num(th.get('psq_repair_min'))} or more, or a later alliance score is back at the baseline."
        )
        if ev.get("baseline") is not None:
            said.append(f"The client's alliance baseline before it was {_num(ev.get('baseline'))}.")
    elif rule == "alliance.rupture":
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
    elif rule == "outcome.not-on-track":
        said.extend(_not_on_track_sentences(ev))
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


# What a higher score means, for the instruments not-on-track judges.
_WORSE = {
    "ORS": ("below", "lower ORS totals mean the client rates their life as going less well"),
    "PHQ-9": ("above", "higher PHQ-9 totals mean more symptoms of depression"),
    "GAD-7": ("above", "higher GAD-7 totals mean more symptoms of anxiety"),
}


def _pct(q: Any) -> str:
    """A quantile as a percentile in words: 0.1 -> "10th", 0.9 -> "90th", 0.5 -> "50th"."""
    if isinstance(q, bool) or not isinstance(q, int | float):
        return "?"
    n = round(q * 100)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def band_triggers(ev: dict[str, Any]) -> list[dict[str, Any]]:
    """The scores a not-on-track alert names with their expected band: the first trigger and, when
    another fired since, the latest one."""
    out: list[dict[str, Any]] = []
    for e in (ev, ev.get("latest_trigger")):
        if not isinstance(e, dict) or e.get("expected_low") is None or e.get("expected_high") is None:
            continue
        if all(e.get("response_id") != o.get("response_id") for o in out):
            out.append(e)
    return out


def _not_on_track_sentences(ev: dict[str, Any]) -> list[str]:
    said: list[str] = []
    shown = band_triggers(ev)
    for e in shown:
        name = str(e.get("instrument", "The outcome measure"))
        side, meaning = _WORSE.get(name, (str(e.get("worse_side") or "outside"), ""))
        said.append(
            f"{name} total {_num(e.get('score'))} at session {_num(e.get('session_index'))} is {side} the "
            f"band expected for that session ({_num(e.get('expected_low'), 2)} to "
            f"{_num(e.get('expected_high'), 2)}; median {_num(e.get('expected_median'), 2)})"
            + (f": {meaning}." if meaning else ".")
        )
    if shown:
        e = shown[-1]
        found = e.get("quantiles")
        q: list[Any] = found if isinstance(found, list) else []
        low_q, high_q = (q[0], q[-1]) if len(q) >= 2 else (None, None)
        fitted = parse_time(e.get("model_fitted_at"))
        said.append(
            f"The band runs from the {_pct(low_q)} to the {_pct(high_q)} percentile of where clients of "
            f"this network with a similar first score were at that session: the expected-trajectory "
            f"model {e.get('model_version', 'not recorded')}, fitted"
            + (f" on {fitted.date().isoformat()}" if fitted else "")
            + f" from {_num(e.get('model_episodes'))} closed episodes."
        )
    instruments = ev.get("instruments")
    if isinstance(instruments, list) and len(instruments) > 1:
        said.append(f"Not on track on {', '.join(str(i) for i in instruments)}.")
    return said


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


# ---- the client's series on an alert page ---------------------------------------------------------

# Each instrument's full scale (contract section 2, clinical-rules.md), so a chart's axis never
# magnifies a small change: WAI-SR is drawn as its mean, the others as totals.
SCALES = {"WAI-SR": (1, 5), "SRS": (0, 40), "ORS": (0, 40), "PHQ-9": (0, 27), "GAD-7": (0, 21)}
MARK_LABELS = {
    "intake": "First score (intake)",
    "trigger": "Trigger",
    "trough": "Trough",
    "repair": "Repair",
}


def _ids(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {v for v in value if isinstance(v, str)}
    return set()


def chart(series: dict[str, Any], alert: dict[str, Any]) -> dict[str, Any]:
    """The episode's series as the alert page draws it: an alliance and an outcome panel, each with a
    line per instrument, and the points the alert is about marked (trigger, trough, repair; the
    intake score for deterioration). Pure data; console.js draws it with Chart.js, and the page
    shows the same points as a table."""
    ev: dict[str, Any] = alert.get("evidence") or {}
    _psq_rows: list[dict[str, Any]] = []
    trigger_ids = (
        _ids(ev.get("response_id"))
        | _ids(ev.get("srs_response_id"))
        | _ids(
            (ev.get("latest_trigger") or {}).get("response_id")
            if isinstance(ev.get("latest_trigger"), dict)
            else None
        )
        | _ids(ev.get("trigger_response_ids"))
    )
    found = ev.get("resolution_evidence")
    resolved_by: dict[str, Any] = found if isinstance(found, dict) else {}
    repair_ids = _ids(ev.get("repair_response_id")) | _ids(resolved_by.get("repair_response_id"))
    # A rupture the client reported on the PSQ: the PSQ has no score to draw, so the trigger is marked
    # on the alliance score of the same session (and the PSQ answers are in the table).
    psq_sessions: set[str] = set()
    for s in series.get("series") or []:
        if s.get("kind") == "rupture":
            for p in s.get("points") or []:
                if p.get("response_id") in trigger_ids:
                    psq_sessions.add(str(p.get("session_at")))
                rows_psq = p.get("scores") or {}
                _psq_rows.append(
                    {
                        "at": p.get("session_at"),
                        "instrument": str(s.get("instrument")),
                        "score": _psq_text(rows_psq),
                        "score_name": None,
                        "mark": "Trigger" if p.get("response_id") in trigger_ids else "",
                    }
                )
    panels: dict[str, dict[str, Any]] = {
        "alliance": {"title": "Alliance", "lines": [], "marks": [], "bands": []},
        "outcome": {"title": "Outcome", "lines": [], "marks": [], "bands": []},
    }
    # A not-on-track alert: each trigger's expected band at its session, drawn as a range.
    bands = (
        {str(e.get("response_id")): e for e in band_triggers(ev)}
        if alert.get("rule_id") == "outcome.not-on-track"
        else {}
    )
    rows: list[dict[str, Any]] = list(_psq_rows)
    for s in series.get("series") or []:
        kind = s.get("kind")
        if kind not in panels or s.get("score_name") is None:
            continue
        name = str(s.get("instrument"))
        label = name if s.get("respondent") == "client" else f"{name} ({s.get('respondent')})"
        points = [p for p in s.get("points") or [] if isinstance(p.get("score"), int | float)]
        line = [{"x": p["session_at"], "y": p["score"], "ref": p["response_id"]} for p in points]
        panels[kind].setdefault("instruments", []).append(name)
        panels[kind]["lines"].append(
            {
                "label": f"{label}, {s.get('score_name')}",
                "higher_is_better": s.get("higher_is_better"),
                "points": line,
            }
        )
        marks: dict[str, list[str]] = {}
        for p in points:
            if p["response_id"] in trigger_ids or (kind == "alliance" and p["session_at"] in psq_sessions):
                marks.setdefault(p["response_id"], []).append("trigger")
            if p["response_id"] in repair_ids:
                marks.setdefault(p["response_id"], []).append("repair")
        # The trough: the lowest alliance score from the trigger on (the rule's own trough value when
        # the evidence names one), for a rupture; it can be the trigger itself.
        if kind == "alliance" and alert.get("rule_id") == "alliance.rupture" and ev.get("criterion") != "psq":
            after = [p for p in points if _after_trigger(p, points, trigger_ids)]
            if after:
                wanted = ev.get("trough")
                lowest = min(after, key=lambda p: (p["score"] != wanted, p["score"]))
                marks.setdefault(lowest["response_id"], []).append("trough")
        if kind == "outcome" and alert.get("rule_id") == "outcome.deterioration":
            for p in points:
                change = p.get("change") or {}
                if p["response_id"] in trigger_ids and change.get("intake_response_id"):
                    marks.setdefault(str(change["intake_response_id"]), []).append("intake")
        expected: dict[str, str] = {}
        for p in points:
            e = bands.get(p["response_id"])
            if kind != "outcome" or e is None or e.get("instrument") not in (None, name):
                continue
            panels[kind]["bands"].append(
                {
                    "x": p["session_at"],
                    "low": e.get("expected_low"),
                    "median": e.get("expected_median"),
                    "high": e.get("expected_high"),
                    "label": "Expected band",
                    "line": label,
                }
            )
            expected[p["response_id"]] = (
                f"expected {score(e.get('expected_low'))} to {score(e.get('expected_high'))} "
                f"(median {score(e.get('expected_median'))})"
            )
        for p in points:
            kinds = sorted(marks.get(p["response_id"], []), key=list(MARK_LABELS).index)
            for mark in kinds:
                panels[kind]["marks"].append(
                    {
                        "x": p["session_at"],
                        "y": p["score"],
                        "mark": mark,
                        "label": MARK_LABELS[mark],
                        "line": label,
                    }
                )
            rows.append(
                {
                    "at": p["session_at"],
                    "instrument": label,
                    "score": p["score"],
                    "score_name": s.get("score_name"),
                    "mark": "; ".join(
                        x
                        for x in (", ".join(MARK_LABELS[m] for m in kinds), expected.get(p["response_id"]))
                        if x
                    ),
                }
            )
    rows.sort(key=lambda r: parse_time(r["at"]) or _EPOCH)
    for panel in panels.values():
        scales = [SCALES[n] for n in panel.pop("instruments", []) if n in SCALES]
        if scales:
            panel["y_min"], panel["y_max"] = min(a for a, _ in scales), max(b for _, b in scales)
    shown = {k: v for k, v in panels.items() if v["lines"]}
    return {"panels": shown, "rows": rows}


def _after_trigger(p: dict[str, Any], points: list[dict[str, Any]], trigger_ids: set[str]) -> bool:
    first = next((q for q in points if q["response_id"] in trigger_ids), None)
    if first is None:
        return False
    return (parse_time(p["session_at"]) or _EPOCH) >= (parse_time(first["session_at"]) or _EPOCH)


def _psq_text(scores: dict[str, Any]) -> str:
    """A PSQ answer in words: whether a rupture was reported, tension and resolution (1-5)."""
    said = ["rupture reported" if scores.get("rupture_reported") else "no rupture reported"]
    if scores.get("tension") is not None:
        said.append(f"tension {scores['tension']}")
    if scores.get("resolution") is not None:
        said.append(f"resolution {scores['resolution']}")
    return ", ".join(said)


def score(value: Any) -> str:
    """A score as people read it: at most two decimals, no trailing zeros (4.08, 15, 3.5)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    return f"{value:.2f}".rstrip("0").rstrip(".")
