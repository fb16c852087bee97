"""attune_shared.kafka.batch_subscriber, in memory (FastStream's TestKafkaBroker): records reach the
pipeline as Inbound, a ConcurrentUpdate is retried, the hold is held around the retries, and a router
included into another is refused by build_app (the HTTP guard would miss its routes)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from fastapi import APIRouter
from faststream.kafka import TestKafkaBroker

from attune_shared.kafka import Batch, Inbound, batch_subscriber, make_broker
from attune_shared.mongo import ConcurrentUpdate
from attune_shared.runtime import Service, build_app
from attune_shared.settings import ServiceSettings


@dataclass
class Seen:
    batches: list[list[Inbound]] = field(default_factory=list)
    clashes: int = 0
    locked: list[bool] = field(default_factory=list)


def _service() -> Service[None]:
    settings = ServiceSettings(attune_name_prefix="u_")
    return Service(settings=settings, broker=make_broker(settings), group_id="g", topics=["u_t"])


async def test_records_reach_the_pipeline_as_inbound_and_a_concurrent_update_is_retried() -> None:
    service, seen, lock = _service(), Seen(), asyncio.Lock()
    received: list[int] = []

    async def process(batch: Batch) -> None:
        seen.locked.append(lock.locked())
        if seen.clashes == 0:
            seen.clashes += 1
            raise ConcurrentUpdate("another writer")
        seen.batches.append(batch.records)

    batch_subscriber(
        service,
        ["u_t"],
        group="g",
        process=process,
        hold=lambda: lock,
        on_batch=lambda batch: received.append(len(batch.records)),
        title="t-in",
        description="test",
    )
    async with TestKafkaBroker(service.broker) as broker:
        await broker.publish(b'{"a":1}', "u_t", key=b"k")
    assert received == [1]  # once per batch, not per attempt
    assert seen.clashes == 1 and seen.locked == [True, True]  # the retry ran under the same hold
    [[record]] = seen.batches
    assert (record.value, record.key, record.topic) == (b'{"a":1}', b"k", "u_t")


def test_a_router_included_into_another_is_refused() -> None:
    outer, inner = APIRouter(), APIRouter()

    @inner.get("/v1/x")
    async def x() -> int:
        return 1

    outer.include_router(inner)
    with pytest.raises(TypeError, match="do not include routers"):
        build_app(_service(), title="t", description="d", routers=[outer])
