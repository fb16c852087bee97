"""Kafka helpers: one broker factory (acks=all, idempotence), concurrent publishing, retries, lag."""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    AuthenticationFailedError,
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    UnsupportedSaslMechanismError,
)
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError

from attune_shared.logging import get_logger
from attune_shared.metrics import CONSUMER_LAG, MESSAGES_PUBLISHED, TRANSIENT_ERRORS
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
    """A broker whose producer waits for all in-sync replicas and never duplicates on retry."""
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


async def publish_all(broker: KafkaBroker, records: Iterable[OutRecord]) -> int:
    """Publish records concurrently and return once Kafka acknowledged every one of them."""
    futures = []
    counts: dict[str, int] = {}
    for rec in records:
        futures.append(await broker.publish(rec.value, rec.topic, key=rec.key, no_confirm=True))
        counts[rec.topic] = counts.get(rec.topic, 0) + 1
    if futures:
        await asyncio.gather(*futures)
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
    await admin.start()
    await consumer.start()
    try:
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
        await consumer.stop()
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
