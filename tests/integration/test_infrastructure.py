"""The broker and store behave as the services rely on (issue: foundation)."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from attune_shared.mongo import DUPLICATE_KEY, insert_new


async def _read(bootstrap: str, topic: str, group: str, want: int) -> tuple[AIOKafkaConsumer, list]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    got: list = []
    for _ in range(40):
        batch = await consumer.getmany(timeout_ms=500, max_records=want - len(got))
        for records in batch.values():
            got.extend(records)
        if len(got) >= want:
            break
    return consumer, got


async def test_manual_commit_survives_consumer_restart(infra_settings, kafka_admin, new_topic) -> None:
    bootstrap = infra_settings.kafka_bootstrap_servers
    topic = await new_topic(partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, f"v{i}".encode(), key=b"north-01:k")
    finally:
        await producer.stop()

    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer, first = await _read(bootstrap, topic, group, 10)
    assert [r.value for r in first] == [f"v{i}".encode() for i in range(10)]
    assert all(r.key == b"north-01:k" for r in first)
    # Only the first six have durable effects: commit exactly those, then "crash".
    await consumer.commit({TopicPartition(topic, 0): first[5].offset + 1})
    await consumer.stop()

    consumer, second = await _read(bootstrap, topic, group, 10)
    await consumer.stop()
    # Nothing committed is read again; nothing uncommitted is lost.
    assert [r.value for r in second] == [f"v{i}".encode() for i in range(6, 10)]


async def test_store_operations_the_services_use(fresh_db) -> None:
    coll = fresh_db["things"]
    await coll.create_index([("source", ASCENDING), ("event_id", ASCENDING)], unique=True, name="uniq")
    await coll.insert_one({"source": "s", "event_id": "1", "n": 1})
    found = await coll.find_one({"source": "s", "event_id": "1"})
    assert found is not None and found["n"] == 1

    with pytest.raises(DuplicateKeyError):
        await coll.insert_one({"source": "s", "event_id": "1", "n": 2})

    docs = [{"source": "s", "event_id": str(i), "n": i} for i in range(5)]
    with pytest.raises(BulkWriteError) as err:
        await coll.insert_many(docs, ordered=False)
    codes = {e["code"] for e in err.value.details["writeErrors"]}
    assert codes == {DUPLICATE_KEY}
    assert await coll.count_documents({}) == 5  # the four new ones went in despite the duplicate

    inserted, dupes = await insert_new(coll, [{"source": "s", "event_id": str(i)} for i in range(3, 8)])
    assert (inserted, dupes) == (3, 2)

    doc = await coll.find_one_and_update(
        {"_id": "counter"}, {"$inc": {"n": 1}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    assert doc["n"] == 1
    doc = await coll.find_one_and_update(
        {"_id": "counter"}, {"$inc": {"n": 1}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    assert doc["n"] == 2
