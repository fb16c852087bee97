"""Kafka helpers: one broker factory (acks=all, idempotence), the batch subscriber every service
consumes with, concurrent publishing, retries, lag."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.errors import (
    AuthenticationFailedError,
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    InvalidProducerEpoch,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    UnknownProducerId,
    UnsupportedSaslMechanismError,
)
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError

from attune_shared.logging import get_logger
from attune_shared.metrics import (
    BATCH_DURATION,
    BATCH_SIZE,
    CONSUMER_LAG,
    MESSAGES_CONSUMED,
    MESSAGES_PUBLISHED,
    TRANSIENT_ERRORS,
)
from attune_shared.mongo import ConcurrentUpdate
from attune_shared.settings import ServiceSettings

T = TypeVar("T")
log = get_logger(__name__)

# Errors that retrying can fix: the broker or store is briefly away.
TRANSIENT = (KafkaError, PyMongoError, OSError, asyncio.TimeoutError)
# Errors that no retry can fix: wrong credentials or permissions, a bad URI. The service stops with a
# clear message instead of retrying for ever.
FATAL_KAFKA = (
    AuthenticationFailedError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
)
FATAL_MONGO_CODES = frozenset({13, 18})  # Unauthorized, AuthenticationFailed


class FatalError(RuntimeError):
    """An infrastructure error that retrying cannot fix; the service stops."""


def is_fatal(exc: BaseException) -> bool:
    """Whether an error is one that retrying cannot fix."""
    if isinstance(exc, (*FATAL_KAFKA, ConfigurationError)):
        return True
    return isinstance(exc, OperationFailure) and exc.code in FATAL_MONGO_CODES


# Large enough for a dead letter that keeps an oversized EHR record whole (see kafka_admin.TOPIC_CONFIGS).
MAX_REQUEST_BYTES = 9 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One record to publish: topic, key and value bytes."""

    topic: str
    key: bytes | None
    value: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Inbound:
    """One inbound record: consumed from Kafka, or (intake) sent over HTTP, with no partition or offset."""

    value: bytes | None
    topic: str
    key: bytes | None = None
    partition: int | None = None
    offset: int | None = None
    timestamp_ms: int | None = None


def _ssl_context(settings: ServiceSettings) -> ssl.SSLContext | None:
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    ctx = ssl.create_default_context(
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    )
    if settings.kafka_ssl_certfile:
        ctx.load_cert_chain(
            str(settings.kafka_ssl_certfile),
            str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
        )
    return ctx


def security_for(settings: ServiceSettings) -> BaseSecurity | None:
    """FastStream security from KAFKA_SECURITY_PROTOCOL / KAFKA_SASL_* / KAFKA_SSL_*."""
    ctx = _ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL"):
        user = settings.kafka_sasl_username or ""
        password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
        cls = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}[
            settings.kafka_sasl_mechanism or "PLAIN"
        ]
        return cls(username=user, password=password, ssl_context=ctx)
    if ctx is not None:
        return BaseSecurity(ssl_context=ctx)
    return None


def aiokafka_kwargs(settings: ServiceSettings) -> dict[str, Any]:
    """The same transport settings for plain aiokafka clients (admin, lag, tools)."""
    kw: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    ctx = _ssl_context(settings)
    if ctx is not None:
        kw["ssl_context"] = ctx
    if settings.kafka_sasl_mechanism:
        kw["sasl_mechanism"] = settings.kafka_sasl_mechanism
        kw["sasl_plain_username"] = settings.kafka_sasl_username
        kw["sasl_plain_password"] = (
            settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
        )
    return kw


async def raw_body(message: Any) -> Any:
    """A FastStream decoder that hands the handler raw bytes: handlers validate from bytes themselves."""
    return message.body


def make_broker(settings: ServiceSettings, **extra: Any) -> KafkaBroker:
    """A broker whose producer waits for all in-sync replicas and is idempotent: its own retries never
    duplicate a record. A batch retried after the producer was renewed (publish_all) can publish again
    what the old producer wrote: consumers de-duplicate by event id."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_request_size=MAX_REQUEST_BYTES,
        client_id=f"attune-{settings.service_name}",
        graceful_timeout=8.0,
        security=security_for(settings),
        allow_auto_create_topics=False,
        # FastStream logs every message at log_level: keep those at DEBUG, its errors still show.
        logger=logging.getLogger("attune.faststream"),
        log_level=logging.DEBUG,
        **extra,
    )


class Batch:
    """One batch of consumed records, as batch_subscriber hands it to a service's pipeline."""

    __slots__ = ("_consumer", "_raw", "_waiting", "records")

    def __init__(self, raw: Sequence[ConsumerRecord[Any, Any]], consumer: Any = None) -> None:
        self.records = [
            Inbound(
                value=r.value,
                key=r.key,
                topic=r.topic,
                partition=r.partition,
                offset=r.offset,
                timestamp_ms=r.timestamp,
            )
            for r in raw
        ]
        self._raw, self._consumer = raw, consumer
        self._waiting: bool | None = None

    def waiting(self) -> bool:
        """Whether more records wait on this batch's partitions (asked of the consumer once, then kept)."""
        if self._waiting is None:
            self._waiting = more_waiting(self._consumer, self._raw)
        return self._waiting


def more_waiting(consumer: Any, records: Sequence[ConsumerRecord[Any, Any]]) -> bool:
    """Whether more records wait on the partitions of this batch: the consumer's last known high
    watermark of any of them is past the batch's last offset (unknown counts as nothing waiting)."""
    last: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        last[tp] = max(last.get(tp, -1), r.offset)
    for tp, offset in last.items():
        try:
            mark = consumer.highwater(tp)
        except Exception:  # a partition revoked meanwhile, or a consumer that cannot tell
            continue
        if mark is not None and mark > offset + 1:
            return True
    return False


class Consuming(Protocol):
    """What batch_subscriber needs of a service (attune_shared.runtime.Service has it)."""

    @property
    def settings(self) -> ServiceSettings: ...

    @property
    def broker(self) -> KafkaBroker: ...

    @property
    def stopping(self) -> bool: ...


def batch_subscriber(
    service: Consuming,
    topics: Sequence[str],
    *,
    group: str,
    process: Callable[[Batch], Awaitable[object]],
    title: str,
    description: str,
    retry_also: tuple[type[Exception], ...] = (),
    hold: Callable[[], AbstractAsyncContextManager[Any]] = contextlib.nullcontext,
    on_batch: Callable[[Batch], None] | None = None,
    listener: ConsumerRebalanceListener | None = None,
    assignors: Sequence[type[AbstractPartitionAssignor]] | None = None,
) -> None:
    """Subscribe `process` to `topics` in batches, as the consumer group `group` (prefixed by settings.group).

    Offsets are committed only after `process` returns (AckPolicy.NACK_ON_ERROR). Invalid input is the
    pipeline's to dead-letter (and so acknowledge); infrastructure errors and ConcurrentUpdate (and
    `retry_also`) are retried with backoff until the service stops, never acknowledged. `hold()` is held
    around the batch and all its retries (a lock shared with a background task); `on_batch` is called
    once per batch before processing (a service's own counters); `title` and `description` name the
    subscriber in the AsyncAPI document. Each batch is counted and timed per topic.
    """
    settings = service.settings
    operation = f"{settings.service_name}_batch"
    options: dict[str, Any] = {}
    if listener is not None:
        options["listener"] = listener
    if assignors is not None:
        options["partition_assignment_strategy"] = tuple(assignors)

    @service.broker.subscriber(
        *topics,
        group_id=settings.group(group),
        batch=True,
        max_records=settings.attune_batch_max_records,
        batch_timeout_ms=settings.attune_batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=raw_body,
        title=title,
        description=description,
        **options,
    )
    async def on_records(body: Any, message: KafkaMessage) -> None:
        raw: tuple[ConsumerRecord[Any, Any], ...] = message.raw_message
        batch = Batch(raw, message.consumer)
        sizes = Counter(r.topic for r in raw)
        for topic, n in sizes.items():
            MESSAGES_CONSUMED.labels(topic).inc(n)
            BATCH_SIZE.labels(topic).observe(n)
        if on_batch is not None:
            on_batch(batch)
        started = time.monotonic()
        async with hold():
            await retry_transient(
                operation,
                lambda: process(batch),
                stopping=lambda: service.stopping,
                also=(ConcurrentUpdate, *retry_also),
            )
        for topic in sizes:
            BATCH_DURATION.labels(topic).observe(time.monotonic() - started)


# After these an idempotent producer never sends again: aiokafka's sender stops and fails every later
# send with the same error. A broker restart can leave the producer's sequence numbers out of step
# with the broker's (OutOfOrderSequenceNumber); only a new producer (a new producer id, sequences
# from 0) sends again.
PRODUCER_LOST = (OutOfOrderSequenceNumber, ProducerFenced, InvalidProducerEpoch, UnknownProducerId)


@dataclass
class _Gate:
    """Who publishes through one broker's producer, so that a renewal never overlaps a publish.

    Every `publish_all` holds a shared slot from its first send until each of its sends has
    completed; a renewal waits for no slot to be held and lets no new one start until the new
    producer is connected. So one batch never spans two producers (no record of a key overtakes
    another), the old producer has nothing pending when it stops (no late copy after the retry), and
    a loss seen by several publishers at once renews the producer once (`generation`)."""

    cond: asyncio.Condition = field(default_factory=asyncio.Condition)
    active: int = 0
    renewing: bool = False
    generation: int = 0
    unconnected: bool = False  # a renewal could not connect (yet): the next publish connects first


_GATES: weakref.WeakKeyDictionary[KafkaBroker, _Gate] = weakref.WeakKeyDictionary()


def _gate(broker: KafkaBroker) -> _Gate:
    gate = _GATES.get(broker)
    if gate is None:
        gate = _GATES[broker] = _Gate()
    return gate


async def renew_producer(broker: KafkaBroker) -> None:
    """Replace the broker's producer by a new one with the same settings (connected, or the error).

    Call it with no publish in flight (publish_all's gate sees to that): the old producer then has
    no batch pending, and its stop returns at once."""
    fast: Any = broker.config.producer
    if fast:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(fast.disconnect(), timeout=10)
    producer = AIOKafkaProducer(**broker._connection_kwargs)
    try:
        await fast.connect(producer, serializer=fast.serializer, codec=fast.codec)
    except BaseException:
        with contextlib.suppress(Exception):
            await producer.stop()  # a renewal that could not connect leaves no client behind
        raise


async def _renew(broker: KafkaBroker, gate: _Gate, generation: int) -> None:
    """Renew the producer once for the loss seen at `generation`, alone (no publish in flight)."""
    async with gate.cond:
        await gate.cond.wait_for(lambda: not gate.renewing)
        if gate.generation != generation and not gate.unconnected:
            return  # another publisher renewed it already
        gate.renewing = True
        await gate.cond.wait_for(lambda: gate.active == 0)
    try:
        gate.unconnected = True
        await renew_producer(broker)
        gate.unconnected = False
        gate.generation += 1
    finally:
        async with gate.cond:
            gate.renewing = False
            gate.cond.notify_all()


async def publish_all(broker: KafkaBroker, records: Iterable[OutRecord]) -> int:
    """Publish records concurrently and return once Kafka acknowledged every one of them.

    A producer that can never send again (PRODUCER_LOST) is replaced and the error raised: the batch
    is retried with the new producer (a consumer's batch until it succeeds; an HTTP request answers
    an error and the EHR sends again). A producer that a failed renewal left unconnected is connected
    first. A renewal waits for every publish in flight to finish and holds new ones back (_Gate)."""
    gate = _gate(broker)
    if gate.unconnected:
        await _renew(broker, gate, gate.generation)
    async with gate.cond:
        await gate.cond.wait_for(lambda: not gate.renewing)
        gate.active += 1
        generation = gate.generation
    try:
        return await _publish_all(broker, records)
    except PRODUCER_LOST as exc:
        lost: Exception = exc
    finally:
        async with gate.cond:
            gate.active -= 1
            gate.cond.notify_all()
    log.warning("producer_renewed", error=type(lost).__name__)
    await _renew(broker, gate, generation)
    raise lost


async def _publish_all(broker: KafkaBroker, records: Iterable[OutRecord]) -> int:
    futures = []
    counts: dict[str, int] = {}
    for rec in records:
        futures.append(await broker.publish(rec.value, rec.topic, key=rec.key, no_confirm=True))
        counts[rec.topic] = counts.get(rec.topic, 0) + 1
    if futures:
        # every send completes (acknowledged or failed) before the batch answers, so nothing of a failed
        # batch is still pending in the producer when it is retried or the producer renewed
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            raise failed
    for topic, n in counts.items():
        MESSAGES_PUBLISHED.labels(topic).inc(n)
    return len(futures)


async def retry_transient(
    operation: str,
    fn: Callable[[], Awaitable[T]],
    *,
    stopping: Callable[[], bool] = lambda: False,
    max_delay: float = 15.0,
    also: tuple[type[Exception], ...] = (),
) -> T:
    """Run fn until it succeeds, backing off with jitter on infrastructure errors.

    Invalid input is not retried here: the handler dead-letters it before calling this.
    When the service is stopping, the error is re-raised so the batch is not committed.
    """
    attempt = 0
    while True:
        try:
            return await fn()
        except (*TRANSIENT, *also) as exc:
            if is_fatal(exc):
                log.error("fatal_error", operation=operation, error=type(exc).__name__, detail=str(exc)[:300])
                raise FatalError(f"{operation}: {type(exc).__name__}: {exc}") from exc
            attempt += 1
            TRANSIENT_ERRORS.labels(operation).inc()
            if stopping():
                raise
            delay = min(max_delay, 0.2 * 2 ** min(attempt, 10)) * random.uniform(0.5, 1.0)
            log.warning(
                "transient_error",
                operation=operation,
                attempt=attempt,
                retry_in_s=round(delay, 2),
                error=type(exc).__name__,
                detail=str(exc)[:200],
            )
            await asyncio.sleep(delay)


async def group_lag(
    settings: ServiceSettings, group_id: str, topics: Iterable[str]
) -> dict[tuple[str, int], int]:
    """Records not yet committed by a consumer group, per (topic, partition)."""
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings), request_timeout_ms=5000)
    consumer = AIOKafkaConsumer(**aiokafka_kwargs(settings), enable_auto_commit=False)
    try:  # both are closed when a start fails too (the broker is away), or their connections linger
        await admin.start()
        await consumer.start()
        committed = await admin.list_consumer_group_offsets(group_id)
        parts = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        if not parts:
            await consumer._client.force_metadata_update()
            parts = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        ends = await consumer.end_offsets(parts)
        lag = {}
        for tp, end in ends.items():
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag[(tp.topic, tp.partition)] = max(0, end - done)
        return lag
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        with contextlib.suppress(Exception):
            await admin.close()


async def export_lag_forever(
    settings: ServiceSettings, group_id: str, topics: list[str], every_s: float = 5.0
) -> None:
    """Keep the consumer-lag gauge current; errors only skip a round."""
    while True:
        try:
            for (topic, partition), value in (await group_lag(settings, group_id, topics)).items():
                CONSUMER_LAG.labels(group_id, topic, str(partition)).set(value)
        except Exception as exc:  # lag is best-effort telemetry
            log.debug("lag_poll_failed", error=repr(exc))
        await asyncio.sleep(every_s)
