"""An in-memory fold of events into facts, episodes and cells: the reference model of the store.

The service keeps the same facts in MongoDB (adapters/store.py) and materializes the same cells
with the same functions; this class lets tests, tools and the unit suite fold events without I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from attune_reporting.domain.cells import Cell, build_cell
from attune_reporting.domain.episodes import EpisodeSummary, summarize
from attune_reporting.domain.facts import (
    AlertFact,
    CareFact,
    Fact,
    MeasureFact,
    alert_fact,
    care_fact,
    measure_fact,
    merge_alert,
    newer_measure,
)
from attune_shared.events import AlertEvent, CareEvent, MeasureScored

Foldable = CareEvent | MeasureScored | AlertEvent


class Ledger:
    """Facts by id; folding an event twice, or events in another per-client order, changes nothing."""

    def __init__(self) -> None:
        self.care: dict[str, CareFact] = {}
        self.measures: dict[str, MeasureFact] = {}
        self.alerts: dict[str, AlertFact] = {}

    def fold(self, event: Foldable) -> bool:
        """Fold one event; True when it changed a fact."""
        if isinstance(event, MeasureScored):
            m = measure_fact(event)
            new_m = newer_measure(self.measures.get(m.fact_id), m)
            if new_m is not None:
                self.measures[m.fact_id] = new_m
            return new_m is not None
        if isinstance(event, AlertEvent):
            a = alert_fact(event)
            new_a = merge_alert(self.alerts.get(a.fact_id), a)
            if new_a is not None:
                self.alerts[a.fact_id] = new_a
            return new_a is not None
        c = care_fact(event)
        if c.fact_id in self.care:
            return False
        self.care[c.fact_id] = c
        return True

    def fold_all(self, events: Iterable[Foldable]) -> None:
        """Fold events in order."""
        for event in events:
            self.fold(event)

    def episodes(self) -> dict[str, EpisodeSummary]:
        """Every episode's summary."""
        ids = {f.episode_id for f in self.care.values()} | {m.episode_id for m in self.measures.values()}
        ids |= {a.episode_id for a in self.alerts.values()}
        out = {}
        for episode_id in sorted(ids):
            summary = summarize(episode_id, self.care.values(), self.measures.values(), self.alerts.values())
            if summary is not None:
                out[episode_id] = summary
        return out

    def cells(self) -> list[Cell[frozenset[str]]]:
        """Every non-empty cell, by clinic and month."""
        episodes = self.episodes()
        facts: list[Fact] = [*self.care.values(), *self.measures.values(), *self.alerts.values()]
        keys = {(f.clinic_id, f.month) for f in facts}
        for ep in episodes.values():
            keys |= {(ep.clinic_id, m) for m in (ep.opened_month, ep.closed_month) if m}
        return [
            build_cell(
                clinic,
                month,
                care=self.care.values(),
                measures=self.measures.values(),
                alerts=self.alerts.values(),
                episodes=episodes,
            )
            for clinic, month in sorted(keys)
        ]
