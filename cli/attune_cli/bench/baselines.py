"""The two comparison points `attune bench` measures beside the real pipeline, on the same data.

- raw limit: a bare aiokafka consumer writing the raw JSON documents with insert_many; no
  validation, no logic. What the broker, the store and Python allow on this machine.
- naive baseline: the design a typical team writes first: a per-message FastStream subscriber that
  validates with the contract models, writes one document per message and commits per message.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from attune_intake.domain.validation import parse_envelope
from attune_shared.events import EnvelopeRejected
from attune_shared.mongo import make_client
from attune_shared.settings import ServiceSettings


@dataclass(frozen=True)
class Rate:
    """How many records in how long."""

    records: int
    seconds: float

    @property
    def per_second(self) -> float:
        """Records per second."""
        return self.records / self.seconds if self.seconds > 0 else 0.0


async def raw_limit(
    settings: ServiceSettings, topic: str, total: int, db_name: str, batch: int = 2000
) -> Rate:
    """Read `total` records and insert them raw, in batches; the ceiling for this machine."""
    client = make_client(settings)
    coll = client[db_name]["raw"]
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"bench-raw-{db_name}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    done = 0
    started = time.monotonic()
    try:
        while done < total:
            got = await consumer.getmany(timeout_ms=500, max_records=batch)
            docs = [{"v": r.value} for records in got.values() for r in records]
            if docs:
                await coll.insert_many(docs, ordered=False)
                await consumer.commit()
                done += len(docs)
        return Rate(done, time.monotonic() - started)
    finally:
        await consumer.stop()
        await client.drop_database(db_name)
        await client.close()


async def naive_baseline(
    settings: ServiceSettings, topic: str, total: int, db_name: str, limit_seconds: float = 60
) -> Rate:
    """Per-message validate, insert_one, commit; stops after `limit_seconds` (it is slow) and reports the rate."""
    client = make_client(settings)
    coll = client[db_name]["events"]
    broker = KafkaBroker(settings.kafka_bootstrap_servers, logger=None)
    done = {"n": 0}
    finished = asyncio.Event()

    async def _raw(msg: Any) -> Any:
        return msg.body

    @broker.subscriber(
        topic,
        group_id=f"bench-naive-{db_name}",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
        decoder=_raw,
    )
    async def handle(body: bytes) -> None:
        try:
            env = parse_envelope(body)
            await coll.insert_one({"_id": f"{env.source}|{env.event_id}", "doc": env.model_dump(mode="json")})
        except EnvelopeRejected:
            await coll.insert_one({"rejected": body})
        except Exception:
            pass  # a duplicate key in the naive design
        done["n"] += 1
        if done["n"] >= total:
            finished.set()

    started = time.monotonic()
    await broker.start()
    try:
        await asyncio.wait_for(finished.wait(), timeout=limit_seconds)
    except TimeoutError:
        pass
    finally:
        elapsed = time.monotonic() - started
        await broker.stop()
        await client.drop_database(db_name)
        await client.close()
    return Rate(done["n"], elapsed)
