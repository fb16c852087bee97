"""Rebuild the read model: replay the three input topics from the beginning into a fresh database,
then swap it in by moving the pointer (adapters/pointer.py).

Steps, each reported through `progress`:
1. replay: every record up to the end offsets seen at the start, folded into `<db>_r<generation>`;
2. materialize: every cell and episode of the fresh database, from its facts;
3. swap: the pointer names the fresh database; a running service uses it from its next batch
   and its next report;
4. catch_up: after a grace period (for batches the service began on the old database), the records
   that arrived during steps 1-3 are folded again; facts are idempotent, so records the service
   folded itself after the swap change nothing;
5. retire: the old database is dropped.
The service's consumer group and its committed offsets are never touched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import AsyncMongoClient

from attune_reporting.adapters.pointer import ActiveDatabase
from attune_reporting.adapters.store import ReportingStore
from attune_reporting.materializer import Materializer, refresh_gauges
from attune_reporting.pipeline import INPUT_TOPICS, ReportingPipeline
from attune_reporting.settings import ReportingSettings
from attune_shared.kafka import Inbound, aiokafka_kwargs
from attune_shared.logging import get_logger
from attune_shared.mongo import make_client

log = get_logger("attune_reporting.rebuild")

Phase = Literal["replay", "materialize", "swap", "catch_up", "retire", "done"]
Offsets = dict[TopicPartition, int]


@dataclass(frozen=True, slots=True)
class RebuildProgress:
    """Where a rebuild is: its phase and how far it got (records for replay, clinics for materialize)."""

    phase: Phase
    done: int
    total: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RebuildResult:
    """What a rebuild did."""

    database: str
    previous: str
    generation: int
    records: int
    catch_up_records: int
    seconds: float


ProgressFn = Callable[[RebuildProgress], Any]


async def _offsets(consumer: AIOKafkaConsumer, topics: list[str]) -> tuple[Offsets, Offsets]:
    """(beginning, end) offsets of every partition of the topics."""
    # consumer.topics() fetches fresh metadata but does not keep it: read the partitions off that answer.
    cluster = await consumer._client.fetch_all_metadata()
    parts = [TopicPartition(t, p) for t in topics for p in sorted(cluster.partitions_for_topic(t) or ())]
    if not parts:
        raise RuntimeError(f"none of the topics {topics} exists")
    return await consumer.beginning_offsets(parts), await consumer.end_offsets(parts)


async def _replay(
    consumer: AIOKafkaConsumer,
    pipeline: ReportingPipeline,
    store: ReportingStore,
    start: Offsets,
    end: Offsets,
    batch_records: int,
    report: Callable[[int], None],
) -> int:
    """Fold every record in [start, end) of each partition into store; returns how many."""
    remaining = {tp: stop for tp, stop in end.items() if start.get(tp, 0) < stop}
    if not remaining:
        return 0
    consumer.assign(list(remaining))
    for tp in remaining:
        consumer.seek(tp, start.get(tp, 0))
    done = 0
    while remaining:
        fetched = await consumer.getmany(*remaining, timeout_ms=1000, max_records=batch_records)
        records = [
            Inbound(topic=tp.topic, value=r.value, partition=tp.partition, offset=r.offset)
            for tp, recs in fetched.items()
            for r in recs
            if r.offset < end[tp]
        ]
        for tp in list(remaining):
            if await consumer.position(tp) >= remaining[tp]:
                del remaining[tp]
        if records:
            await pipeline.process(records, store=store, materialize=False)
            done += len(records)
            report(done)
    return done


async def rebuild(
    settings: ReportingSettings,
    progress: ProgressFn | None = None,
    *,
    client: AsyncMongoClient[dict[str, Any]] | None = None,
) -> RebuildResult:
    """Replay every input into a fresh database, materialize it and swap it in (see module docstring)."""
    started = time.monotonic()

    def say(phase: Phase, done: int, total: int, detail: str = "") -> None:
        if progress is not None:
            progress(RebuildProgress(phase, done, total, detail))

    own_client = client is None
    mongo = client if client is not None else make_client(settings)
    active = ActiveDatabase(mongo, settings.database_name)
    materializer = Materializer(settings)
    pipeline = ReportingPipeline(settings, active, materializer)
    topics = [settings.topic(t) for t in INPUT_TOPICS]
    consumer = AIOKafkaConsumer(**aiokafka_kwargs(settings), enable_auto_commit=False, group_id=None)
    batch = settings.attune_reporting_rebuild_batch_records
    try:
        previous, generation = await active.current()
        target = f"{settings.database_name}_r{generation + 1}"
        await mongo.drop_database(target)  # what a failed earlier attempt left behind
        store = active.store_for(target)
        await store.ensure_indexes()
        await consumer.start()
        begin, end = await _offsets(consumer, topics)
        total = sum(max(0, end[tp] - begin.get(tp, 0)) for tp in end)
        log.info("rebuild_started", target=target, previous=previous, records=total)
        say("replay", 0, total, target)
        records = await _replay(
            consumer, pipeline, store, begin, end, batch, lambda n: say("replay", n, total)
        )
        say("materialize", 0, 1)
        await materializer.run(store, progress=lambda d, t: say("materialize", d, t))
        say("swap", 0, 1, f"{previous} -> {target}")
        await active.switch(database=target, generation=generation + 1)
        say("swap", 1, 1, f"{previous} -> {target}")
        await asyncio.sleep(settings.attune_reporting_rebuild_grace_s)
        _, later = await _offsets(consumer, topics)
        more = sum(max(0, later[tp] - end.get(tp, 0)) for tp in later)
        say("catch_up", 0, more)
        caught = await _replay(
            consumer, pipeline, store, end, later, batch, lambda n: say("catch_up", n, more)
        )
        await materializer.run(store)
        await refresh_gauges(store)
        say("retire", 0, 1, previous)
        if previous != target:
            await active.retire(previous)
        say("retire", 1, 1, previous)
        result = RebuildResult(target, previous, generation + 1, records, caught, time.monotonic() - started)
        say("done", 1, 1, target)
        log.info("rebuild_done", **{k: getattr(result, k) for k in result.__slots__})
        return result
    finally:
        await consumer.stop()
        if own_client:
            await mongo.close()
