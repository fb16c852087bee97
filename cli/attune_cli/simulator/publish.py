"""publish(scenario): send the records as an EHR would, to Kafka or to intake's HTTP endpoint."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from attune_cli.simulator.model import OutboundRecord, Scenario
from attune_shared.topics import Topics

Progress = Callable[[int, int], None]  # (records done, records in all)
HTTP_BATCH = 500  # contract section 3: up to 500 envelopes per request
HTTP_MAX_BODY = 900 * 1024  # stay well under intake's 1 MiB body limit


class PublishError(RuntimeError):
    """The broker or intake refused the records."""


@dataclass(slots=True)
class PublishResult:
    """What publishing did. `skipped` lists poison that cannot travel over HTTP (it is not JSON)."""

    via: str
    sent: int = 0
    skipped: list[str] = field(default_factory=list)
    accepted: int | None = None  # HTTP only: intake's own counts
    duplicates: int | None = None
    rejected: int | None = None
    seconds: float = 0.0


class _Pacer:
    """Holds the send rate at `rate` records per second (None: as fast as the transport goes)."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.started = time.monotonic()

    async def wait(self, index: int) -> None:
        if self.rate is None:
            return
        ahead = self.started + index / self.rate - time.monotonic()
        if ahead > 0:
            await asyncio.sleep(ahead)


def _tick(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None and (done % 100 == 0 or done == total):
        progress(done, total)


async def publish(
    scenario: Scenario,
    via: Literal["kafka", "http", "fhir"] = "kafka",
    *,
    bootstrap: str = "127.0.0.1:9092",
    topic: str = Topics.EHR_EVENTS,
    http_url: str = "http://127.0.0.1:8081",
    token: str = "dev-ehr-sim",
    rate: float | None = None,
    progress: Progress | None = None,
    max_in_flight: int = 1000,
    transport: httpx.AsyncBaseTransport | None = None,
) -> PublishResult:
    """Publish every record in order; returns once the broker (or intake) acknowledged all of them.

    Kafka: keys as given, acks=all, idempotent producer, at most `max_in_flight` unacknowledged records.
    HTTP: POST /v1/ehr/events in batches of up to 500 with the bearer token; poison records that are not
    JSON at all (invalid_json) cannot be put in a JSON body, so they are skipped and listed in the result:
    send them over Kafka to see them dead-lettered. `transport` replaces httpx's network transport (tests).
    FHIR: POST /fhir/r4 with batch Bundles (attune_cli.simulator.fhir); poison records are not FHIR and are
    skipped. `accepted` counts 201 entries (an event published), `duplicates` 200 ones (recorded, or
    nothing new), `rejected` the OperationOutcomes.
    """
    started = time.monotonic()
    if via == "kafka":
        result = await _kafka(scenario.records, bootstrap, topic, _Pacer(rate), progress, max_in_flight)
    elif via == "http":
        pacer = _Pacer(rate)
        result = await _http(scenario.records, http_url, token, pacer, progress, rate, transport)
    elif via == "fhir":
        result = await _fhir(scenario.records, http_url, token, _Pacer(rate), progress, transport)
    else:
        raise ValueError(f"via must be 'kafka', 'http' or 'fhir', not {via!r}")
    result.seconds = round(time.monotonic() - started, 3)
    return result


async def _kafka(
    records: Sequence[OutboundRecord],
    bootstrap: str,
    topic: str,
    pacer: _Pacer,
    progress: Progress | None,
    max_in_flight: int,
) -> PublishResult:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=10,
        max_request_size=4 * 1024 * 1024,  # the inbound topic takes records up to 4 MiB
        client_id="attune-simulator",
    )
    total, done = len(records), 0
    in_flight: deque[asyncio.Future[Any]] = deque()
    try:
        await producer.start()
        for index, record in enumerate(records):
            await pacer.wait(index)
            in_flight.append(await producer.send(topic, record.value, key=record.key))
            if len(in_flight) >= max_in_flight:
                await in_flight.popleft()
                done += 1
                _tick(progress, done, total)
        while in_flight:
            await in_flight.popleft()
            done += 1
            _tick(progress, done, total)
    except KafkaError as exc:
        raise PublishError(f"Kafka at {bootstrap} refused the records: {exc}") from exc
    finally:
        await producer.stop()
    return PublishResult("kafka", sent=done)


async def _http(
    records: Sequence[OutboundRecord],
    http_url: str,
    token: str,
    pacer: _Pacer,
    progress: Progress | None,
    rate: float | None,
    transport: httpx.AsyncBaseTransport | None,
) -> PublishResult:
    result = PublishResult("http", accepted=0, duplicates=0, rejected=0)
    limit = HTTP_BATCH if rate is None else max(1, min(HTTP_BATCH, int(rate)))
    total, done = len(records), 0
    batch: list[bytes] = []
    size = 0
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    client = httpx.AsyncClient(base_url=http_url, headers=headers, timeout=60.0, transport=transport)
    async with client:

        async def flush() -> None:
            nonlocal batch, size, done
            if not batch:
                return
            body = b'{"events":[' + b",".join(batch) + b"]}"
            try:
                response = await client.post("/v1/ehr/events", content=body)
            except httpx.HTTPError as exc:
                raise PublishError(f"intake at {http_url} is unreachable: {exc}") from exc
            if response.status_code != 202:
                raise PublishError(f"intake answered {response.status_code}: {response.text[:300]}")
            answer = json.loads(response.content)
            result.accepted = (result.accepted or 0) + int(answer["accepted"])
            result.duplicates = (result.duplicates or 0) + int(answer["duplicates"])
            result.rejected = (result.rejected or 0) + len(answer["rejected"])
            result.sent += len(batch)
            done += len(batch)
            _tick(progress, done, total)
            batch, size = [], 0

        for index, record in enumerate(records):
            if not record.json_ok:
                result.skipped.append(record.expected_code or "not JSON")
                done += 1
                continue
            await pacer.wait(index)
            if len(batch) >= limit or size + len(record.value) > HTTP_MAX_BODY:
                await flush()
            batch.append(record.value)
            size += len(record.value) + 1
        await flush()
    if progress is not None:
        progress(total, total)
    return result


async def _fhir(
    records: Sequence[OutboundRecord],
    http_url: str,
    token: str,
    pacer: _Pacer,
    progress: Progress | None,
    transport: httpx.AsyncBaseTransport | None,
) -> PublishResult:
    from attune_cli.simulator.fhir import bundles

    result = PublishResult("fhir", accepted=0, duplicates=0, rejected=0)
    result.skipped = [r.expected_code or "poison" for r in records if r.kind == "poison"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    total, done = len(records), 0
    async with httpx.AsyncClient(
        base_url=http_url, headers=headers, timeout=60.0, transport=transport
    ) as client:
        for count, bundle in bundles(records):
            await pacer.wait(done)
            try:
                response = await client.post("/fhir/r4", content=json.dumps(bundle, separators=(",", ":")))
            except httpx.HTTPError as exc:
                raise PublishError(f"intake at {http_url} is unreachable: {exc}") from exc
            if response.status_code != 200:
                raise PublishError(f"intake answered {response.status_code}: {response.text[:300]}")
            for entry in json.loads(response.content)["entry"]:
                code = entry["response"]["status"][:3]
                if code == "201":
                    result.accepted = (result.accepted or 0) + 1
                elif code == "200":
                    result.duplicates = (result.duplicates or 0) + 1
                else:
                    result.rejected = (result.rejected or 0) + 1
            done += count
            result.sent += count - sum(1 for r in records[done - count : done] if r.kind == "poison")
            _tick(progress, done, total)
    if progress is not None:
        progress(total, total)
    return result
