"""Read a scenario back from its bytes, as the services would, to check the truth against it.

These helpers recompute scores and drops from the records themselves (through parse_envelope), not
from the simulator's own rule engine, so that the tests are a second computation of the same rules.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from attune_cli.simulator import OutboundRecord, Scenario
from attune_intake.domain.validation import parse_envelope
from attune_shared.events import EhrEnvelope

SD_FLOOR = {"WAI-SR": 0.30, "SRS": 2.0}


def first_sends(scenario: Scenario) -> list[tuple[OutboundRecord, EhrEnvelope]]:
    """Every valid record sent for the first time (late ones included), parsed."""
    return [(r, parse_envelope(r.value)) for r in scenario.records if r.kind in ("event", "late")]


def alliance_value(instrument: str, items: list[float | int | None]) -> float:
    """WAI-SR mean or SRS total (the simulator sends no missing alliance items)."""
    values = [float(v) for v in items if v is not None]
    return sum(values) / 12 if instrument == "WAI-SR" else round(sum(values), 1)


def srs_concern(items: list[float | int | None]) -> bool:
    """alliance_concern (total < 36) or item_concern (an item < 9)."""
    values = [float(v) for v in items if v is not None]
    return sum(values) < 36 or any(v < 9 for v in values)


def drop(earlier: list[float], value: float, floor: float) -> float | None:
    """(mu - value) / max(sd, floor) over the up to 5 most recent earlier scores; None below 3 of them."""
    if len(earlier) < 3:
        return None
    window = earlier[-5:]
    return (statistics.mean(window) - value) / max(statistics.stdev(window), floor)


@dataclass
class SeriesPoint:
    """One alliance response: the value first sent, and the value after any amendment."""

    response_id: str
    appointment_id: str
    session_at: datetime
    completed_at: datetime
    original: float
    final: float
    concern: bool = False  # the same session's SRS shows concern (as first sent)


@dataclass
class ClientRecords:
    """Everything one client's key carried, split into episodes by episode.closed."""

    key: str
    envelopes: list[EhrEnvelope] = field(default_factory=list)
    series: dict[tuple[int, str], list[SeriesPoint]] = field(default_factory=dict)


def episode_of(env: EhrEnvelope, closures: list[datetime]) -> int:
    """1 + the number of closures that happened before this event."""
    return 1 + sum(1 for c in closures if c < env.occurred_at)


def by_client(scenario: Scenario) -> dict[str, ClientRecords]:
    """Every client's envelopes (occurred order) and alliance series (appointment order), keyed by key."""
    clients: dict[str, ClientRecords] = {}
    for record, env in first_sends(scenario):
        key = env.kafka_key
        assert record.key == key.encode()
        clients.setdefault(key, ClientRecords(key)).envelopes.append(env)
    for client in clients.values():
        client.envelopes.sort(key=lambda e: e.occurred_at)
        _build_series(client)
    return clients


def _build_series(client: ClientRecords) -> None:
    starts: dict[str, datetime] = {}
    closures = [e.occurred_at for e in client.envelopes if e.event_type == "episode.closed"]
    concern_by_appointment: dict[str, bool] = {}
    points: dict[str, tuple[int, str, SeriesPoint]] = {}
    for env in client.envelopes:
        p: Any = env.payload  # one of the payload types; the event_type says which
        if env.event_type == "appointment.scheduled":
            starts[p.appointment_id] = p.scheduled_start
        if env.event_type != "questionnaire.completed":
            continue
        instrument, items = p.instrument, list(p.items)
        if instrument not in SD_FLOOR:
            continue
        rid, appointment = p.response_id, p.appointment_id
        value = alliance_value(instrument, items)
        if p.status == "amended":
            points[rid][2].final = value
            continue
        if instrument == "SRS":
            concern_by_appointment[appointment] = srs_concern(items)
        point = SeriesPoint(rid, appointment, starts[appointment], env.occurred_at, value, value)
        points[rid] = (episode_of(env, closures), instrument, point)
    for episode, instrument, point in points.values():
        point.concern = concern_by_appointment.get(point.appointment_id, False)
        client.series.setdefault((episode, instrument), []).append(point)
    for series in client.series.values():
        series.sort(key=lambda pt: pt.session_at)


def drops(series: list[SeriesPoint], instrument: str) -> list[tuple[SeriesPoint, float, float]]:
    """Each point's drop as first sent and after its amendment, against the earlier points' final values.

    Amendments arrive before the next session, so a later score is always judged against fixed values.
    """
    out = []
    values: list[float] = []
    for point in series:
        first = drop(values, point.original, SD_FLOOR[instrument])
        final = drop(values, point.final, SD_FLOOR[instrument])
        if first is not None and final is not None:
            out.append((point, first, final))
        values.append(point.final)
    return out


def outcome_total(instrument: str, items: list[float | int | None]) -> float:
    """ORS, PHQ-9 (items 1-9) or GAD-7 total; one missing item pro-rated as round(sum * n / (n - 1))."""
    if instrument == "ORS":
        return round(sum(float(v) for v in items if v is not None), 1)
    scored = items[:9] if instrument == "PHQ-9" else items
    answered = [int(v) for v in scored if v is not None]
    if len(answered) == len(scored):
        return sum(answered)
    return round(sum(answered) * len(scored) / len(answered))


def outcomes(client: ClientRecords) -> dict[tuple[int, str], list[tuple[str, datetime, float]]]:
    """Per (episode, instrument): (response_id, session time, total), in session order."""
    starts: dict[str, datetime] = {}
    closures = [e.occurred_at for e in client.envelopes if e.event_type == "episode.closed"]
    out: dict[tuple[int, str], list[tuple[str, datetime, float]]] = {}
    for env in client.envelopes:
        p: Any = env.payload  # one of the payload types; the event_type says which
        if env.event_type == "appointment.scheduled":
            starts[p.appointment_id] = p.scheduled_start
        if env.event_type == "questionnaire.completed" and p.instrument in ("ORS", "PHQ-9", "GAD-7"):
            total = outcome_total(p.instrument, list(p.items))
            row = (p.response_id, starts[p.appointment_id], total)
            out.setdefault((episode_of(env, closures), p.instrument), []).append(row)
    for rows in out.values():
        rows.sort(key=lambda row: row[1])
    return out


def per_key_records(scenario: Scenario) -> dict[bytes | None, list[OutboundRecord]]:
    """Records grouped by key, in stream order."""
    grouped: dict[bytes | None, list[OutboundRecord]] = defaultdict(list)
    for record in scenario.records:
        grouped[record.key].append(record)
    return grouped
