"""reporting's batch pipeline: parse, fold into facts, mark dirty, materialize; safe to run again.

Effects are durable in an order that makes a crash anywhere safe to replay: facts first (ids
derived from the inputs: a replay stores nothing twice), then dirty marks (written for every
touched cell, duplicate or not, so a crash between the two still gets its cells recomputed), then
the materializer recomputes the dirty cells from the facts, and only then are offsets committed.
"""

from __future__ import annotations

import json
import time
from collections import Counter as Tally
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from attune_reporting import metrics
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
from attune_reporting.domain.ledger import Foldable
from attune_reporting.materializer import Materializer
from attune_reporting.ports import Databases, DataStore, FactStore, Mark, new_mark
from attune_shared.events import ALERT_EVENT_TYPES, CARE_EVENT_TYPES, AlertEvent, MeasureScored, nul_escaped
from attune_shared.kafka import Inbound
from attune_shared.logging import get_logger
from attune_shared.settings import ServiceSettings
from attune_shared.topics import Topics

log = get_logger("attune_reporting.pipeline")

INPUT_TOPICS = (Topics.CARE, Topics.MEASURES, Topics.ALERTS)


class Rejected(ValueError):
    """A record that is not a valid event of its topic."""


@dataclass
class FoldResult:
    """What one batch did."""

    changed: Tally[str] = field(default_factory=Tally)
    unchanged: Tally[str] = field(default_factory=Tally)
    rejected: int = 0
    ignored: int = 0
    marks: int = 0


def input_topics(settings: ServiceSettings) -> dict[str, str]:
    """Physical topic name -> contract topic name, for the three inputs."""
    return {settings.topic(t): t for t in INPUT_TOPICS}


def parse(rec: Inbound, contract_topic: str) -> Foldable | None:
    """The event in a record; None for an event type reporting does not fold; raises Rejected."""
    if rec.value is None:
        raise Rejected("record has no value (a tombstone)")
    try:
        data = json.loads(rec.value)
    except (ValueError, RecursionError) as exc:
        raise Rejected(f"not JSON: {exc}") from None
    event_type = data.get("event_type") if isinstance(data, dict) else None
    if not isinstance(event_type, str):
        raise Rejected("no event_type")
    try:
        if contract_topic == Topics.CARE:
            model = CARE_EVENT_TYPES.get(event_type)
            return model.model_validate_json(rec.value) if model else None
        if contract_topic == Topics.MEASURES:
            return (
                MeasureScored.model_validate_json(rec.value)
                if event_type == MeasureScored.event_type
                else None
            )
        return AlertEvent.model_validate_json(rec.value) if event_type in ALERT_EVENT_TYPES else None
    except ValidationError as exc:
        raise Rejected(str(exc).replace("\n", " ")[:500]) from None


def _cells_of(facts: Sequence[Any]) -> dict[tuple[str, str], list[Any]]:
    out: dict[tuple[str, str], list[Any]] = {}
    for f in facts:
        out.setdefault((f.clinic_id, f.month), []).append(f)
    return out


async def fold(store: FactStore, events: Sequence[Foldable]) -> FoldResult:
    """Store the facts of these events (idempotently), then mark their cells and episodes dirty."""
    result = FoldResult()
    care: list[CareFact] = []
    measures: list[MeasureFact] = []
    alerts: list[AlertFact] = []
    for ev in events:
        if isinstance(ev, MeasureScored):
            measures.append(measure_fact(ev))
        elif isinstance(ev, AlertEvent):
            alerts.append(alert_fact(ev))
        else:
            care.append(care_fact(ev))

    for (clinic_id, month), facts in _cells_of(care).items():
        inserted, duplicates = await store.insert_care(clinic_id=clinic_id, month=month, facts=facts)
        result.changed["care"] += inserted
        result.unchanged["care"] += duplicates
    # An amended response can name another episode: the one it left is summarized again too.
    left: list[Fact] = []
    for (clinic_id, month), facts in _cells_of(measures).items():
        left += await _merge(
            store, "measures", clinic_id, month, facts, store.load_measures, newer_measure, result
        )
    for (clinic_id, month), facts in _cells_of(alerts).items():
        left += await _merge(store, "alerts", clinic_id, month, facts, store.load_alerts, merge_alert, result)

    months: dict[str, set[str]] = {}
    episodes: dict[str, set[tuple[str, str]]] = {}
    everything: list[Fact] = [*care, *measures, *alerts, *left]
    for f in everything:
        months.setdefault(f.clinic_id, set()).add(f.month)
        # Alerts feed episode summaries too: whether the episode had a rupture, and the months its
        # facts are in (recomputed when a late referral changes the client's equity strata).
        episodes.setdefault(f.clinic_id, set()).add((f.episode_id, f.month))
    marks: list[Mark] = [new_mark(c, months[c], episodes.get(c, ())) for c in sorted(months)]
    await store.mark(marks=marks)
    result.marks = len(marks)
    for kind, n in result.changed.items():
        metrics.FACTS_CHANGED.labels(kind).inc(n)
    for kind, n in result.unchanged.items():
        metrics.FACTS_UNCHANGED.labels(kind).inc(n)
    return result


async def _merge(
    store: FactStore,
    kind: str,
    clinic_id: str,
    month: str,
    facts: Sequence[Any],
    load: Any,
    rule: Any,
    result: FoldResult,
) -> list[Any]:
    """Fold facts into a cell: ids new to the cell are inserted straight away (one command, no
    reads); only the ids already stored are read back, merged and replaced. Returns the stored
    versions replaced by one of another episode (the episode they leave must be summarized again;
    a crash between the replace and the marks loses that, as the stored version is gone)."""

    def fold_over(stored: Mapping[str, Any]) -> tuple[dict[str, Any], set[str], int]:
        current, touched, unchanged = dict(stored), set(), 0
        for f in facts:  # in arrival order: several revisions or transitions may share a batch
            merged = rule(current.get(f.fact_id), f)
            if merged is None:
                unchanged += 1
                continue
            current[f.fact_id] = merged
            touched.add(f.fact_id)
        return current, touched, unchanged

    alone, _, _ = fold_over({})
    candidates = [alone[i] for i in sorted(alone)]
    clashing = await store.claim_new(kind=kind, clinic_id=clinic_id, month=month, facts=candidates)
    stored = await load(clinic_id=clinic_id, month=month, ids=clashing) if clashing else {}
    current, touched, unchanged = fold_over(stored)
    result.unchanged[kind] += unchanged
    result.changed[kind] += len(facts) - unchanged
    replaced = [current[i] for i in sorted(touched) if i in clashing]
    await store.replace(kind=kind, clinic_id=clinic_id, month=month, facts=replaced)
    before = [stored.get(f.fact_id) for f in replaced]
    return [
        b for b, f in zip(before, replaced, strict=True) if b is not None and b.episode_id != f.episode_id
    ]


class ReportingPipeline:
    """Processes batches of records from the three input topics."""

    def __init__(self, settings: ServiceSettings, active: Databases, materializer: Materializer) -> None:
        self.settings = settings
        self.active = active
        self.materializer = materializer
        self.topics = input_topics(settings)

    def parse_all(self, records: Sequence[Inbound]) -> tuple[list[Foldable], list[dict[str, Any]], int]:
        """(events, rejected-record documents, ignored count)."""
        events: list[Foldable] = []
        rejected: list[dict[str, Any]] = []
        ignored = 0
        for rec in records:
            contract = self.topics.get(rec.topic, rec.topic)
            try:
                event = parse(rec, contract)
            except Rejected as exc:
                metrics.REJECTED.labels(contract).inc()
                rejected.append(_rejected_doc(rec, str(exc)))
                continue
            if event is None:
                ignored += 1
                metrics.IGNORED.labels(contract).inc()
            else:
                events.append(event)
        return events, rejected, ignored

    async def process(
        self,
        records: Sequence[Inbound],
        *,
        store: DataStore | None = None,
        materialize: bool = True,
        behind: bool = False,
    ) -> FoldResult:
        """Make every record's effect durable exactly once, then recompute the dirty cells.

        `store` defaults to the active data database; a rebuild passes its fresh one and
        materializes once at the end instead of after every batch. `behind`: more records are
        waiting on the batch's partitions (see _materialize_now).
        """
        started = time.monotonic()
        events, rejected, ignored = self.parse_all(records)
        store = store or await self.active.store()
        result = await fold(store, events)
        result.rejected, result.ignored = len(rejected), ignored
        if rejected:
            await store.keep_rejected(docs=rejected)
            log.warning("records_rejected", count=len(rejected), first=rejected[0]["error"][:200])
        if materialize and self._materialize_now(len(records), behind=behind):
            await self.materializer.run(store)
        log.info(
            "batch_done",
            records=len(records),
            changed=dict(result.changed),
            unchanged=dict(result.unchanged),
            rejected=result.rejected,
            ignored=ignored,
            database=store.name,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return result

    def _materialize_now(self, batch_size: int, *, behind: bool = False) -> bool:
        """After a batch that is not full and leaves nothing waiting on its partitions, once the pause
        in proportion to the last run is over (ATTUNE_REPORTING_BACKLOG_MATERIALIZE_SHARE); if it is
        not, the sweep runs it as soon as it is (Materializer.want), so a drained service is up to
        date within that pause. While behind (a full batch, or more records waiting: the end of a
        backlog arrives in small batches from slower upstream services), at most every few seconds
        too (ATTUNE_REPORTING_BACKLOG_MATERIALIZE_S).

        A steady trickle is what needs the pause when drained: every batch is small and leaves
        nothing waiting, and recomputing its cells after each one took most of the service's time,
        so its lag grew for as long as the trickle lasted (the soak of 2026-12-07 17:19: 5 to 1,073
        records over 30 minutes at 10 records/s).

        Skipping is safe: the batch's dirty marks are durable and the next run recomputes them: the
        next batch's, the sweep's (ATTUNE_REPORTING_SWEEP_INTERVAL_S, or sooner when wanted), or a
        restart's.
        """
        if batch_size < self.settings.attune_batch_max_records and not behind:
            if self.materializer.rested():
                return True
            self.materializer.want()
            return False
        every = float(getattr(self.settings, "attune_reporting_backlog_materialize_s", 0.0))
        if self.materializer.rested(every):
            return True
        self.materializer.skip()
        return False


def _rejected_doc(rec: Inbound, error: str) -> dict[str, Any]:
    doc_id = f"{rec.topic}|{rec.partition}|{rec.offset}" if rec.partition is not None else None
    doc: dict[str, Any] = {
        "topic": rec.topic,
        "partition": rec.partition,
        "offset": rec.offset,
        "error": error,
        "raw": nul_escaped((rec.value or b"")[:16_384].decode("utf-8", "replace")),  # internal topics: no PHI
        "received_at": datetime.now(UTC),
    }
    if doc_id:
        doc["_id"] = doc_id
    return doc
