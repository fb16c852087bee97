"""Ground truth per client (alerts, episodes) and the reporting figures per clinic."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from attune_cli.simulator.history import Models
from attune_cli.simulator.ledger import (
    DETERIORATION,
    DROPOUT,
    MISSES,
    NOT_ON_TRACK,
    RULES,
    RUPTURE,
    SAFETY,
    Response,
)
from attune_cli.simulator.model import ClientTruth, EpisodeTruth
from attune_cli.simulator.rules import EpisodeRules
from attune_cli.simulator.timeline import SimEvent

LOW_DOSE_SESSIONS = 4  # low_dose: closed with fewer than 4 attended sessions (design default)

# What each archetype must come to: (rule, allowed resolutions, severity or None for any).
STORIES: dict[str, list[tuple[str, tuple[str | None, ...], str | None]]] = {
    "stable": [],
    "rupture_repaired": [(RUPTURE, ("repaired",), "high")],
    "rupture_unrepaired": [(RUPTURE, (None, "episode_ended"), "high")],
    "deterioration_recovery": [(DETERIORATION, ("addressed",), "high")],
    "dropout_after_rupture": [(RUPTURE, ("episode_ended",), "high"), (DROPOUT, ("episode_ended",), "high")],
    "missed_then_reengaged": [(DROPOUT, ("re_engaged",), "normal")],
    "inactive_ghost": [(DROPOUT, (None,), "normal")],
    "safety_item9": [(SAFETY, (None, "episode_ended"), "urgent")],
    "psq_rupture": [(RUPTURE, ("repaired",), "high")],
    "psq_below_threshold": [],
    "amended_false_positive": [(RUPTURE, ("false_positive",), "high")],
    "early_mutual_ending": [],
    "early_dropout": [(DROPOUT, ("episode_ended",), "normal")],
    "returning_client": [],
    "not_on_track": [(NOT_ON_TRACK, (None, "episode_ended"), "normal")],
    "not_on_track_recovered": [(NOT_ON_TRACK, ("addressed",), "normal")],
}


def _session_kind(event: SimEvent) -> str:
    p = event.payload
    if event.event_type == "session.attended":
        return "attended"
    if event.event_type == "session.missed":
        return str(p["reason"])
    return "client_cancel" if p["cancelled_by"] == "client" else "clinician_cancel"


def evaluate(events: list[SimEvent], as_of: datetime, models: Models | None = None) -> list[EpisodeRules]:
    """Run every rule over a client's events in the order they happened; one EpisodeRules per episode
    (`models`: the expected trajectories outcome.not-on-track judges by, per instrument)."""
    ordered = sorted(events, key=lambda e: e.at)
    starts = {
        e.payload["appointment_id"]: datetime.fromisoformat(e.payload["scheduled_start"])
        for e in ordered
        if e.event_type == "appointment.scheduled"
    }
    sessions: dict[str, list[SimEvent]] = {}
    for e in ordered:
        if e.event_type == "questionnaire.completed" and e.payload["status"] == "completed":
            sessions.setdefault(e.payload["appointment_id"], []).append(e)
    episodes: dict[int, EpisodeRules] = {}
    done: set[str] = set()
    for e in ordered:
        rules = episodes.get(e.episode) or episodes.setdefault(
            e.episode, EpisodeRules(e.episode, e.at.date(), models)
        )
        p = e.payload
        if e.event_type == "questionnaire.completed":
            appointment_id = p["appointment_id"]
            if p["status"] == "amended":
                rules.amendment(_response(e, starts))
            elif appointment_id not in done:
                done.add(appointment_id)
                rules.touch(e.at)
                rules.responses([_response(q, starts) for q in sessions[appointment_id]])
        elif e.event_type.startswith("session."):
            appointment_id = p["appointment_id"]
            rules.session(e.at, _session_kind(e), appointment_id, starts[appointment_id])
        elif e.event_type == "episode.closed":
            rules.close(e.at, date.fromisoformat(p["closed_on"]), p["reason"])
        else:
            rules.touch(e.at)
    for rules in episodes.values():
        rules.finish(as_of)
    return [episodes[n] for n in sorted(episodes)]


def _response(e: SimEvent, starts: dict[str, datetime]) -> Response:
    p = e.payload
    return Response(p["response_id"], p["instrument"], starts[p["appointment_id"]], e.at, list(p["items"]))


def check_story(archetype: str, episodes: list[EpisodeRules]) -> None:
    """Fail loudly when a client's alerts are not what its archetype is for (a simulator bug)."""
    alerts = [a for ep in episodes for a in ep.alerts]
    wanted = STORIES[archetype]
    got = sorted((a.rule_id, a.resolution or "", a.severity) for a in alerts)
    ok = len(alerts) == len(wanted) and all(
        any(a.rule_id == rule and a.resolution in ends and sev in (None, a.severity) for a in alerts)
        for rule, ends, sev in wanted
    )
    if not ok:
        raise RuntimeError(f"simulator bug: a {archetype} client ended with alerts {got}, expected {wanted}")


def episode_truth(rules: EpisodeRules) -> EpisodeTruth:
    """What reporting should know of one episode."""
    c = rules.counts
    closed_on, reason = rules.closed if rules.closed else (None, None)
    last = rules.last_session[1] if rules.last_session else None
    dropout = {
        "unilateral": reason == "unilateral",
        "last_missed": last in MISSES and reason not in ("planned", "mutual"),
        "low_dose": rules.closed is not None and c.get("attended", 0) < LOW_DOSE_SESSIONS,
    }
    return EpisodeTruth(
        episode=rules.episode,
        opened_on=rules.opened_on.isoformat(),
        closed_on=None if closed_on is None else closed_on.isoformat(),
        close_reason=reason,
        open_at_end=rules.closed is None,
        attended=c.get("attended", 0),
        no_show=c.get("no_show", 0),
        late_cancel=c.get("late_cancel", 0),
        cancelled_by_client=c.get("client_cancel", 0),
        cancelled_by_clinician=c.get("clinician_cancel", 0),
        last_attended_at=None if rules.last_attended is None else rules.last_attended[0].isoformat(),
        last_session_outcome=last,
        dropout=dropout,
    )


def _empty_figures() -> dict[str, Any]:
    return {
        "clients": 0,
        "sessions": {
            "attended": 0,
            "missed": {"no_show": 0, "late_cancel": 0},
            "cancelled": {"client": 0, "clinician": 0},
            "attended_by_modality": {"in_person": 0, "video": 0, "phone": 0},
        },
        "episodes": {"opened": 0, "closed": 0, "open_at_end": 0, "closed_by_reason": {}},
        "ruptures": {"raised": 0, "repaired": 0, "unrepaired": 0, "false_positive": 0},
        "alerts_by_rule": dict.fromkeys(RULES, 0),
        "alerts_by_severity": {rule: {} for rule in RULES},
        "dropouts": {"unilateral": 0, "last_missed": 0, "low_dose": 0},
        "questionnaires": {},
    }


def _add(counter: dict[str, int], key: str, n: int = 1) -> None:
    counter[key] = counter.get(key, 0) + n


def add_client(figures: dict[str, Any], client: ClientTruth, events: list[SimEvent]) -> None:
    """Fold one client into its clinic's reporting figures."""
    figures["clients"] += 1
    s = figures["sessions"]
    for e in events:
        if e.event_type == "session.attended":
            s["attended"] += 1
            _add(s["attended_by_modality"], e.payload["modality"])
        elif e.event_type == "session.missed":
            s["missed"][e.payload["reason"]] += 1
        elif e.event_type == "session.cancelled":
            s["cancelled"][e.payload["cancelled_by"]] += 1
        elif e.event_type == "questionnaire.completed" and e.payload["status"] == "completed":
            _add(figures["questionnaires"], e.payload["instrument"])
    for ep in client.episodes:
        figures["episodes"]["opened"] += 1
        if ep.open_at_end:
            figures["episodes"]["open_at_end"] += 1
        else:
            figures["episodes"]["closed"] += 1
            _add(figures["episodes"]["closed_by_reason"], str(ep.close_reason))
        for name, hit in ep.dropout.items():
            figures["dropouts"][name] += int(hit)
    for alert in client.expected_alerts:
        figures["alerts_by_rule"][alert.rule_id] += 1
        _add(figures["alerts_by_severity"][alert.rule_id], alert.severity)
        if alert.rule_id == RUPTURE:
            r = figures["ruptures"]
            r["raised"] += 1
            if alert.resolution in ("repaired", "false_positive"):
                r[alert.resolution] += 1
            else:
                r["unrepaired"] += 1


def reporting(clinic_ids: list[str], clients: list[tuple[ClientTruth, list[SimEvent]]]) -> dict[str, Any]:
    """Expected reporting figures per clinic and for the network (whole simulation, no month split)."""
    per_clinic = {c: _empty_figures() for c in clinic_ids}
    network = _empty_figures()
    for client, events in clients:
        add_client(per_clinic[client.clinic_id], client, events)
        add_client(network, client, events)
    return {"clinics": per_clinic, "network": network}
