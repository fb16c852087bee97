"""A producer that can never send again is replaced (found by the soak: after a broker restart intake's
idempotent producer failed every send with OutOfOrderSequenceNumber for 18 minutes, its lag growing,
until the run ended; aiokafka stops a producer's sender for good on that error)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, OutOfOrderSequenceNumber

from attune_shared import kafka
from attune_shared.kafka import OutRecord, publish_all


class _FastProducer:
    """FastStream's producer wrapper as publish_all sees it: truthy while connected."""

    def __init__(self) -> None:
        self.connected: Any = object()
        self.serializer, self.codec = None, None
        self.connects: list[Any] = []
        self.disconnects = 0
        self.fail_connect = False

    def __bool__(self) -> bool:
        return self.connected is not None

    async def disconnect(self) -> None:
        self.disconnects += 1
        self.connected = None

    async def connect(self, producer: Any, serializer: Any, codec: Any = None) -> None:
        if self.fail_connect:
            raise KafkaConnectionError("broker away")
        self.connects.append(producer)
        self.connected = producer


class _Config:
    def __init__(self) -> None:
        self.producer = _FastProducer()


class _Broker:
    """Fails every publish with `error` while its first producer is the current one."""

    def __init__(self, error: Exception) -> None:
        self.config = _Config()
        self._connection_kwargs = {"bootstrap_servers": "127.0.0.1:1", "enable_idempotence": True}
        self.first = self.config.producer.connected
        self.error = error
        self.sent: list[bytes] = []

    async def publish(self, value: bytes, topic: str, *, key: bytes | None, no_confirm: bool) -> Any:
        if self.config.producer.connected is self.first:
            raise self.error
        self.sent.append(value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


RECORDS = [OutRecord("clinic.care.v1", b"k", b"v1"), OutRecord("clinic.care.v1", b"k", b"v2")]


async def test_a_lost_producer_is_replaced_and_the_retry_publishes() -> None:
    broker = _Broker(OutOfOrderSequenceNumber())
    with pytest.raises(OutOfOrderSequenceNumber):  # the batch fails once, so it is retried ...
        await publish_all(broker, RECORDS)  # type: ignore[arg-type]
    fast = broker.config.producer
    assert fast.disconnects == 1 and len(fast.connects) == 1
    assert isinstance(fast.connects[0], AIOKafkaProducer)  # a new producer: a new producer id
    assert await publish_all(broker, RECORDS) == 2  # type: ignore[arg-type]  # ... and then goes through
    assert broker.sent == [b"v1", b"v2"]
    await fast.connects[0].stop()


async def test_a_renewal_that_could_not_connect_is_tried_again_first() -> None:
    broker = _Broker(OutOfOrderSequenceNumber())
    broker.config.producer.fail_connect = True
    with pytest.raises(KafkaConnectionError):  # transient: the batch is retried
        await publish_all(broker, RECORDS)  # type: ignore[arg-type]
    broker.config.producer.fail_connect = False
    assert await publish_all(broker, RECORDS) == 2  # type: ignore[arg-type]
    await broker.config.producer.connects[0].stop()


async def test_other_errors_keep_the_producer() -> None:
    broker = _Broker(KafkaConnectionError("broker away"))
    with pytest.raises(KafkaConnectionError):
        await publish_all(broker, RECORDS)  # type: ignore[arg-type]
    assert broker.config.producer.disconnects == 0 and broker.config.producer.connects == []


def test_the_errors_that_lose_a_producer_are_kafka_errors_so_batches_retry() -> None:
    assert all(issubclass(e, kafka.KafkaError) for e in kafka.PRODUCER_LOST)
