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


class _YieldingBroker(_Broker):
    """Yields to the loop before each send, so that two publishers are in flight at once."""

    async def publish(self, value: bytes, topic: str, *, key: bytes | None, no_confirm: bool) -> Any:
        await asyncio.sleep(0)
        return await super().publish(value, topic, key=key, no_confirm=no_confirm)


async def test_a_loss_seen_by_two_publishers_at_once_renews_the_producer_once() -> None:
    broker = _YieldingBroker(OutOfOrderSequenceNumber())
    results = await asyncio.gather(
        publish_all(broker, RECORDS),  # type: ignore[arg-type]
        publish_all(broker, RECORDS),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    assert all(isinstance(r, OutOfOrderSequenceNumber) for r in results)
    fast = broker.config.producer
    assert fast.disconnects == 1 and len(fast.connects) == 1  # one new producer, not one per publisher
    await fast.connects[0].stop()


class _SlowBroker(_Broker):
    """The first publish waits on `release`; every later one fails while the first producer is current."""

    def __init__(self) -> None:
        super().__init__(OutOfOrderSequenceNumber())
        self.release: asyncio.Future[None] | None = None
        self.order: list[str] = []

    async def publish(self, value: bytes, topic: str, *, key: bytes | None, no_confirm: bool) -> Any:
        if self.release is None:
            self.release = asyncio.get_running_loop().create_future()
            self.order.append("slow send")
            return self.release
        return await super().publish(value, topic, key=key, no_confirm=no_confirm)


async def test_a_renewal_waits_for_publishes_in_flight_and_holds_new_ones_back() -> None:
    broker = _SlowBroker()
    fast = broker.config.producer
    slow = asyncio.create_task(publish_all(broker, RECORDS[:1]))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert broker.release is not None
    failing = asyncio.create_task(publish_all(broker, RECORDS))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert fast.disconnects == 0  # the slow batch is still in flight on the old producer
    broker.release.set_result(None)
    assert await slow == 1
    with pytest.raises(OutOfOrderSequenceNumber):
        await failing
    assert fast.disconnects == 1 and len(fast.connects) == 1
    assert await publish_all(broker, RECORDS) == 2  # type: ignore[arg-type]
    await fast.connects[0].stop()


async def test_a_failed_batch_answers_only_when_every_send_has_completed() -> None:
    loop = asyncio.get_running_loop()
    pending: asyncio.Future[None] = loop.create_future()

    class _Half(_Broker):
        async def publish(self, value: bytes, topic: str, *, key: bytes | None, no_confirm: bool) -> Any:
            if value == b"v1":
                failed: asyncio.Future[None] = loop.create_future()
                failed.set_exception(KafkaConnectionError("one partition away"))
                return failed
            return pending

    broker = _Half(KafkaConnectionError("unused"))
    task = asyncio.create_task(publish_all(broker, RECORDS))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert not task.done()  # v2 is still pending in the producer: the batch has not answered yet
    pending.set_result(None)
    with pytest.raises(KafkaConnectionError):
        await task
