"""The right ceiling for a four-stage pipeline: a bare four-stage chain (issue 21).

Four stages, each its own process and consumer group, in sequence over fresh topics:

    inbound copy -> stage 1 -> topic 1 -> stage 2 -> topic 2 -> stage 3 -> topic 3 -> stage 4 -> topic 4

Each stage consumes a batch the way the services do (the same `max_records` and batch timeout),
writes the batch's raw documents (the JSON record as it came, or `{"v": bytes}` when it is not a JSON
object) with one `insert_many` into its own fresh database, produces one record per input (same key
and value) to the next topic with `acks=all` and the idempotent producer, waits for every
acknowledgement, and commits after. No validation, no state read, no logic. The scenario is published
to the chain's own inbound topic exactly as the pipeline's drain publishes it, and the time runs from
the first publish until stage 4 has committed every record: the same measurement as the pipeline's.

`python -m attune_cli.bench.chain --stage ...` runs one stage (the bench starts four); it prints one
JSON line when it is ready (subscribed, assigned) and one when it is done, with its own CPU seconds
and peak RSS since ready.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from attune_cli.bench.procs import LocalInfra, infra_cpu_between, infra_readings, with_store
from attune_cli.simulator.model import Scenario
from attune_cli.simulator.publish import publish
from attune_cli.stack import ROOT
from attune_shared.kafka import MAX_REQUEST_BYTES, aiokafka_kwargs
from attune_shared.mongo import make_client
from attune_shared.settings import ServiceSettings

STAGES = 4
PARTITIONS = 4  # as the pipeline's topics (attune_shared.kafka_admin.TOPICS)
TOPIC_CONFIG = {"max.message.bytes": str(4 * 1024 * 1024)}  # the inbound topic's: oversized records pass


@dataclass
class ChainRun:
    """One drain of the bare four-stage chain."""

    records: int
    seconds: float
    events_per_second: float
    drained: bool = True
    stage_records: list[int] = field(default_factory=list)  # records each stage committed
    # CPU microseconds per inbound record of each stage process (stage1..stage4), the broker and the
    # store, and each stage's peak RSS (MB)
    cpu_us_per_event: dict[str, float] = field(default_factory=dict)
    infra_cpu_us_per_event: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    error: str = ""  # why it did not finish: a stage that exited, or the time was up


def chain_names(prefix: str) -> tuple[list[str], list[str]]:
    """The chain's topics (inbound copy, then one per stage) and databases (one per stage)."""
    topics = [f"{prefix}chain.in", *(f"{prefix}chain.{i}" for i in range(1, STAGES + 1))]
    return topics, [f"{prefix}chain{i}" for i in range(1, STAGES + 1)]


def raw_document(value: bytes | None) -> dict[str, Any]:
    """The record as a document: its JSON object as it came, else the bytes under `v`."""
    if value is not None:
        try:
            doc = json.loads(value)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and "_id" not in doc:
            return doc
    return {"v": value}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_stage(
    settings: ServiceSettings,
    source: str,
    target: str,
    db_name: str,
    group: str,
    total: int,
    max_records: int,
    timeout_ms: int,
) -> None:
    """One stage: consume, insert_many, produce one per input, commit; prints ready and done lines."""
    client = make_client(settings)
    coll = client[db_name]["raw"]
    consumer = AIOKafkaConsumer(
        source,
        **aiokafka_kwargs(settings),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(
        **aiokafka_kwargs(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_request_size=MAX_REQUEST_BYTES,
    )
    await producer.start()
    await consumer.start()
    try:
        while not consumer.assignment():  # joined its group: nothing is published yet
            await consumer.getmany(timeout_ms=100)
        await client[db_name].command("ping")
        cpu0 = _cpu_seconds()
        print(json.dumps({"ready": True}), flush=True)
        done = 0
        while done < total:
            got = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
            records = [r for batch in got.values() for r in batch]
            if not records:
                continue
            await coll.insert_many([raw_document(r.value) for r in records], ordered=False)
            futures = [await producer.send(target, r.value, key=r.key) for r in records]
            await asyncio.gather(*futures)
            await consumer.commit()
            done += len(records)
        at = time.monotonic()  # CLOCK_MONOTONIC: the same clock in every process of this machine
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        line = {"done": done, "at": at, "cpu_s": _cpu_seconds() - cpu0, "peak_rss_mb": peak_mb}
        print(json.dumps(line), flush=True)
    finally:
        await consumer.stop()
        await producer.stop()
        await client.close()


async def _create_topics(settings: ServiceSettings, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings), request_timeout_ms=30000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, PARTITIONS, 1, topic_configs=TOPIC_CONFIG) for t in topics])
    finally:
        await admin.close()


async def drop_chain(settings: ServiceSettings, prefix: str) -> None:
    """Delete the chain's topics and drop its databases."""
    topics, dbs = chain_names(prefix)
    client = make_client(settings)
    try:
        for name in dbs:
            await client.drop_database(name)
    finally:
        await client.close()
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings), request_timeout_ms=30000)
    await admin.start()
    try:
        present = set(await admin.list_topics())
        if gone := [t for t in topics if t in present]:
            await admin.delete_topics(gone)
    finally:
        await admin.close()


async def _line(proc: asyncio.subprocess.Process, timeout: float) -> dict[str, Any]:
    """The next JSON line a stage prints (skipping anything else it prints)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        raw = await asyncio.wait_for(proc.stdout.readline(), timeout=left)
        if not raw:
            raise RuntimeError(f"chain stage exited with {await proc.wait()}")
        with contextlib.suppress(ValueError):
            parsed = json.loads(raw)
            if isinstance(parsed, dict):
                return parsed


async def four_stage_chain(
    settings: ServiceSettings,
    scenario: Scenario,
    prefix: str,
    *,
    max_records: int,
    timeout_ms: int,
    timeout: float,
    infra: LocalInfra,
) -> ChainRun:
    """Run the chain on the scenario's records (its topics and databases are left for drop_chain).
    The broker's and store's CPU is read just before the first publish and when stage 4 is done."""
    topics, dbs = chain_names(prefix)
    total = len(scenario.records)
    await _create_topics(settings, topics)
    procs: list[asyncio.subprocess.Process] = []
    started: float | None = None
    finished: float | None = None
    lines: list[dict[str, Any]] = []
    infra_cpu: dict[str, float] = {}
    error = ""
    try:
        for i in range(STAGES):
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "attune_cli.bench.chain",
                    "--source",
                    topics[i],
                    "--target",
                    topics[i + 1],
                    "--db",
                    dbs[i],
                    "--group",
                    f"{prefix}chain-stage{i + 1}",
                    "--total",
                    str(total),
                    "--max-records",
                    str(max_records),
                    "--timeout-ms",
                    str(timeout_ms),
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stdin=subprocess.DEVNULL,
                )
            )
        for proc in procs:
            await _line(proc, 120)  # ready
        infra_before = infra_readings(infra)
        started = time.monotonic()
        await publish(scenario, via="kafka", bootstrap=settings.kafka_bootstrap_servers, topic=topics[0])
        for proc in procs:
            lines.append(await _line(proc, max(1.0, started + timeout - time.monotonic())))
        finished = lines[-1]["at"]
        infra_cpu = infra_cpu_between(infra_before, infra_readings(infra))
    except TimeoutError:
        error = f"not done within {timeout:.0f}s"
    except RuntimeError as exc:  # a stage exited before it was done (its error is on stderr)
        error = str(exc)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                await proc.wait()
    drained = finished is not None and started is not None
    seconds = (finished - started) if drained and finished and started else 0.0
    run = ChainRun(
        records=total,
        seconds=round(seconds, 1),
        events_per_second=round(total / seconds, 1) if drained and seconds > 0 else 0.0,
        drained=drained,
        stage_records=[int(line["done"]) for line in lines],
        cpu_us_per_event={
            f"stage{i + 1}": round(1e6 * line["cpu_s"] / total, 1) for i, line in enumerate(lines)
        },
        infra_cpu_us_per_event={n: round(1e6 * s / total, 1) for n, s in with_store(infra_cpu).items()},
        peak_rss_mb={f"stage{i + 1}": round(line["peak_rss_mb"], 1) for i, line in enumerate(lines)},
        error=error,
    )
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description="one stage of attune bench's four-stage chain")
    for name in ("--source", "--target", "--db", "--group"):
        parser.add_argument(name, required=True)
    for name in ("--total", "--max-records", "--timeout-ms"):
        parser.add_argument(name, type=int, required=True)
    args = parser.parse_args()
    settings = ServiceSettings()
    asyncio.run(
        run_stage(
            settings,
            args.source,
            args.target,
            args.db,
            args.group,
            args.total,
            args.max_records,
            args.timeout_ms,
        )
    )


if __name__ == "__main__":
    main()
