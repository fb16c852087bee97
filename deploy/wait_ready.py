"""Poll the local Kafka broker and MongoDB-compatible store until each answers a real request."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient


async def kafka_ready(bootstrap: str) -> None:
    """Return once the broker answers a metadata request."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        await admin.list_topics()
    finally:
        await admin.close()


async def mongo_ready(uri: str) -> None:
    """Return once the store answers a ping."""
    client: AsyncMongoClient = AsyncMongoClient(uri, serverSelectionTimeoutMS=2000)
    try:
        await client.admin.command("ping")
    finally:
        await client.close()


async def wait(name: str, probe, target: str, deadline: float) -> None:
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            await probe(target)
            print(f"[infra] {name}: ready ({target})", flush=True)
            return
        except Exception as exc:  # any failure means not ready yet
            last = exc
            await asyncio.sleep(0.5)
    raise SystemExit(f"[infra] {name}: not ready after timeout ({target}): {last!r}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kafka")
    parser.add_argument("--mongo")
    parser.add_argument("--timeout", type=float, default=90)
    args = parser.parse_args()
    deadline = time.monotonic() + args.timeout
    jobs = []
    if args.kafka:
        jobs.append(wait("kafka", kafka_ready, args.kafka, deadline))
    if args.mongo:
        jobs.append(wait("ferretdb", mongo_ready, args.mongo, deadline))
    await asyncio.gather(*jobs)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
