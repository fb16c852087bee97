"""Real infrastructure for integration tests: the broker and store `make test` started.

These fixtures fail (never skip) when the infrastructure is missing: a green run must mean the
claims were checked against the real broker and store.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from attune_shared.settings import ServiceSettings


@pytest.fixture(scope="session")
def infra_settings() -> ServiceSettings:
    return ServiceSettings()


@pytest.fixture(scope="session")
async def kafka_admin(infra_settings: ServiceSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=infra_settings.kafka_bootstrap_servers,
                                request_timeout_ms=5000)
    try:
        await admin.start()
        await admin.list_topics()
    except Exception as exc:
        pytest.fail(f"no Kafka broker at {infra_settings.kafka_bootstrap_servers} ({exc!r}): run `make up` "
                    "(or `make test`, which starts it)", pytrace=False)
    yield admin
    await admin.close()


@pytest.fixture(scope="session")
async def mongo(infra_settings: ServiceSettings) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra_settings.mongodb_uri.get_secret_value(), serverSelectionTimeoutMS=5000, tz_aware=True)
    try:
        await client.admin.command("ping")
    except Exception as exc:
        pytest.fail(f"no MongoDB-compatible store at the configured MONGODB_URI ({exc!r}): run `make up`",
                    pytrace=False)
    yield client
    await client.close()


@pytest.fixture
async def fresh_db(mongo: AsyncMongoClient[dict[str, Any]]) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield mongo[name]
    await mongo.drop_database(name)


@pytest.fixture
async def new_topic(kafka_admin: AIOKafkaAdminClient):
    """A factory for uniquely named topics, deleted after the test."""
    made: list[str] = []

    async def make(prefix: str = "test", partitions: int = 2) -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:10]}"
        await kafka_admin.create_topics([NewTopic(name, partitions, 1)])
        made.append(name)
        return name

    yield make
    if made:
        await kafka_admin.delete_topics(made)
