"""One report cell (clinic x month): additive parts per breakdown, computed from facts alone.

A part holds only what adds up across months and breakdowns: counters, sums (means are sums and
counts), value lists (for medians) and client sets (for distinct counts and suppression). Parts are
kept for the whole clinic ("all"), per clinician ("clinician:<id>") and per modality
("modality:<in_person|video|phone>"), and for the equity view per stratum ("eq:<dimension>:<value>",
strata.py: the headline figures only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from attune_reporting.domain import strata
from attune_reporting.domain.episodes import EpisodeSummary
from attune_reporting.domain.facts import RUPTURE_RULE, UNASSIGNED, AlertFact, CareFact, MeasureFact

# Client sets, one per figure group: the distinct clients a group's figures are computed from.
GROUPS: Final = ("sessions", "active", "episodes", "closed", "wai_sr", "srs", "ruptures", "alerts")
# Groups that have a modality: session facts carry one, measures and cancellations borrow their
# appointment's. Episodes, outcomes and alerts span sessions and have none.
MODALITY_GROUPS: Final = frozenset({"sessions", "active", "wai_sr", "srs"})
MODALITIES: Final = ("in_person", "video", "phone")
SLA_HOURS: Final = {"urgent": 1.0, "high": 24.0, "normal": 72.0}  # clinical-rules.md, Escalation
ALL: Final = "all"

S = TypeVar("S")


@dataclass
class Part(Generic[S]):
    """Additive figures of one breakdown; S is the client-set type (a frozenset, or a stored bitmap)."""

    n: dict[str, int] = field(default_factory=dict)
    s: dict[str, float] = field(default_factory=dict)
    v: dict[str, list[float]] = field(default_factory=dict)
    c: dict[str, S] = field(default_factory=dict)


@dataclass(frozen=True)
class Cell(Generic[S]):
    """A clinic's month: its parts by breakdown key."""

    clinic_id: str
    month: str
    parts: Mapping[str, Part[S]]


def clinician_key(clinician_id: str | None) -> str:
    """Part key of a clinician (facts without one go to "unassigned")."""
    return f"clinician:{clinician_id or UNASSIGNED}"


def modality_key(modality: str) -> str:
    """Part key of a modality."""
    return f"modality:{modality}"


class _Builder:
    """Accumulates one cell; sets are plain sets of client_ref until frozen."""

    def __init__(self) -> None:
        self.parts: dict[str, Part[set[str]]] = {}

    def _part(self, key: str) -> Part[set[str]]:
        return self.parts.setdefault(key, Part())

    def keys(self, clinician: str | None, modality: str | None) -> list[str]:
        keys = [ALL, clinician_key(clinician)]
        if modality in MODALITIES:
            keys.append(modality_key(modality))
        return keys

    def count(self, keys: Iterable[str], name: str, by: int = 1) -> None:
        if not by:
            return
        for k in _kept(keys, name):
            part = self._part(k)
            part.n[name] = part.n.get(name, 0) + by

    def total(self, keys: Iterable[str], name: str, value: float) -> None:
        for k in _kept(keys, name):
            part = self._part(k)
            part.s[name] = part.s.get(name, 0.0) + value

    def value(self, keys: Iterable[str], name: str, value: float) -> None:
        for k in _kept(keys, name):
            self._part(k).v.setdefault(name, []).append(value)

    def client(self, keys: Iterable[str], group: str, client_ref: str) -> None:
        for k in keys:
            if k.startswith("modality:") and group not in MODALITY_GROUPS:
                continue
            if k.startswith(strata.PREFIX) and group not in strata.GROUPS:
                continue
            self._part(k).c.setdefault(group, set()).add(client_ref)

    def frozen(self) -> dict[str, Part[frozenset[str]]]:
        out: dict[str, Part[frozenset[str]]] = {}
        for key, p in sorted(self.parts.items()):
            out[key] = Part(
                n={k: v for k, v in sorted(p.n.items()) if v},
                s=dict(sorted(p.s.items())),
                v={k: sorted(v) for k, v in sorted(p.v.items())},
                c={k: frozenset(v) for k, v in sorted(p.c.items())},
            )
        return out


def _kept(keys: Iterable[str], name: str) -> list[str]:
    """The keys a figure is kept under: equity parts keep only the names they need."""
    return [k for k in keys if name in strata.NAMES or not k.startswith(strata.PREFIX)]


def _episode_modality(ep: EpisodeSummary | None) -> str | None:
    return ep.main_modality if ep is not None else None


def _sessions(b: _Builder, care: Iterable[CareFact], episodes: Mapping[str, EpisodeSummary]) -> None:
    for f in care:
        if f.kind not in ("attended", "missed", "cancelled"):
            continue
        ep = episodes.get(f.episode_id)
        modality = f.modality
        if modality is None and ep is not None:
            modality = ep.modality_of(f.appointment_id)
        keys = b.keys(f.clinician_id, modality) + strata.keys(ep, modality)
        if f.kind == "attended":
            b.count(keys, "attended")
            b.client(keys, "active", f.client_ref)
        elif f.kind == "missed":
            b.count(keys, f"missed_{f.reason}")
        else:
            b.count(keys, f"cancelled_{f.cancelled_by}")
        b.client(keys, "sessions", f.client_ref)


def _alliance(b: _Builder, measures: Iterable[MeasureFact], episodes: Mapping[str, EpisodeSummary]) -> None:
    for m in measures:
        if m.respondent != "client":
            continue  # alliance figures are the client's view of the alliance
        ep = episodes.get(m.episode_id)
        modality = ep.modality_of(m.appointment_id) if ep else None
        keys = b.keys(m.clinician_id, modality) + strata.keys(ep, modality)
        if m.instrument == "WAI-SR" and m.mean is not None:
            b.count(keys, "wai_n")
            b.total(keys, "wai_mean", m.mean)
            b.total(keys, "wai_mean_sq", m.mean * m.mean)  # for the equity view's t intervals
            b.total(keys, "wai_task", m.task or 0.0)
            b.total(keys, "wai_bond", m.bond or 0.0)
            b.total(keys, "wai_goal", m.goal or 0.0)
            b.client(keys, "wai_sr", m.client_ref)
        elif m.instrument == "SRS" and m.total is not None:
            b.count(keys, "srs_n")
            b.total(keys, "srs_total", m.total)
            b.total(keys, "srs_total_sq", m.total * m.total)
            b.count(keys, "srs_concern", 1 if m.alliance_concern else 0)
            b.client(keys, "srs", m.client_ref)


def _alerts(b: _Builder, alerts: Iterable[AlertFact], episodes: Mapping[str, EpisodeSummary]) -> None:
    for a in alerts:
        ep = episodes.get(a.episode_id)
        keys = b.keys(a.clinician_id, None) + strata.keys(ep, _episode_modality(ep))
        b.count(keys, "alerts_raised")
        b.count(keys, f"rule:{a.rule_id}")
        b.count(keys, f"severity:{a.first_severity}")
        b.count(keys, "alerts_open", 1 if a.status != "resolved" else 0)
        b.client(keys, "alerts", a.client_ref)
        sla = SLA_HOURS.get(a.first_severity)
        if a.acknowledged_at is not None:
            hours = (a.acknowledged_at - a.raised_at).total_seconds() / 3600
            b.count(keys, "alerts_acknowledged")
            b.value(keys, "ack_hours", hours)
            if sla is not None:
                b.count(keys, "ack_eligible")
                b.count(keys, "ack_within_sla", 1 if hours <= sla else 0)
        elif a.escalation_level > 0 and sla is not None:
            b.count(keys, "ack_eligible")  # escalated unacknowledged: its SLA passed without an answer
        b.count(keys, "alerts_escalated", 1 if a.escalation_level > 0 else 0)
        b.count(keys, "escalations", a.escalation_level)
        if a.rule_id == RUPTURE_RULE:
            repaired = a.resolution == "repaired"
            b.count(keys, "ruptures_raised")
            b.count(keys, "ruptures_repaired", 1 if repaired else 0)
            unrepaired = not repaired and (a.unrepaired or a.resolution == "episode_ended")
            b.count(keys, "ruptures_unrepaired", 1 if unrepaired else 0)
            if repaired and a.sessions_to_repair is not None:
                b.value(keys, "repair_sessions", a.sessions_to_repair)
            b.client(keys, "ruptures", a.client_ref)


def _episodes(b: _Builder, month: str, episodes: Iterable[EpisodeSummary]) -> None:
    for ep in episodes:
        keys = b.keys(ep.clinician_id, None) + strata.keys(ep, ep.main_modality)
        if ep.opened_month == month:
            b.count(keys, "opened")
            b.client(keys, "episodes", ep.client_ref)
        if ep.closed_month == month:
            b.count(keys, "closed")
            b.client(keys, "episodes", ep.client_ref)
            b.client(keys, "closed", ep.client_ref)
            b.count(keys, "outcome_measured", 1 if ep.outcome_measured else 0)
            b.count(keys, "improved", 1 if ep.improved else 0)
            b.count(keys, "deteriorated", 1 if ep.deteriorated else 0)
            b.count(keys, "closed_ruptured", 1 if ep.ruptured else 0)
            b.count(keys, "dropout_unilateral", 1 if ep.dropout_unilateral else 0)
            b.count(keys, "dropout_last_missed", 1 if ep.dropout_last_missed else 0)
            b.count(keys, "dropout_low_dose", 1 if ep.dropout_low_dose else 0)


def build_cell(
    clinic_id: str,
    month: str,
    *,
    care: Iterable[CareFact],
    measures: Iterable[MeasureFact],
    alerts: Iterable[AlertFact],
    episodes: Mapping[str, EpisodeSummary],
) -> Cell[frozenset[str]]:
    """The cell's parts from the facts placed in it and the clinic's episode summaries."""

    def here(f: Any) -> bool:
        return bool(f.clinic_id == clinic_id and f.month == month)

    def ordered(facts: Iterable[Any]) -> list[Any]:
        # Sorted, so that float sums come out bit-identical whatever order the facts were read in.
        return sorted((f for f in facts if here(f)), key=lambda f: f.fact_id)

    b = _Builder()
    _sessions(b, ordered(care), episodes)
    _alliance(b, ordered(measures), episodes)
    _alerts(b, ordered(alerts), episodes)
    mine = [
        ep
        for ep in episodes.values()
        if ep.clinic_id == clinic_id and month in (ep.opened_month, ep.closed_month)
    ]
    _episodes(b, month, sorted(mine, key=lambda ep: ep.episode_id))
    return Cell(clinic_id, month, b.frozen())


def cell_clients(cell: Cell[frozenset[str]]) -> frozenset[str]:
    """Every client a cell's sets mention."""
    out: set[str] = set()
    for part in cell.parts.values():
        for refs in part.c.values():
            out |= refs
    return frozenset(out)
