"""Real infrastructure for integration tests: the broker and store `make test` started.

These fixtures fail (never skip) when the infrastructure is missing: a green run must mean the
claims were checked against the real broker and store.
"""

from __future__ import annotations

import json
import re
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
    admin = AIOKafkaAdminClient(
        bootstrap_servers=infra_settings.kafka_bootstrap_servers, request_timeout_ms=5000
    )
    try:
        await admin.start()
        await admin.list_topics()
    except Exception as exc:
        pytest.fail(
            f"no Kafka broker at {infra_settings.kafka_bootstrap_servers} ({exc!r}): run `make up` "
            "(or `make test`, which starts it)",
            pytrace=False,
        )
    yield admin
    await admin.close()


@pytest.fixture(scope="session")
async def mongo(infra_settings: ServiceSettings) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra_settings.mongodb_uri.get_secret_value(), serverSelectionTimeoutMS=5000, tz_aware=True
    )
    try:
        await client.admin.command("ping")
    except Exception as exc:
        pytest.fail(
            f"no MongoDB-compatible store at the configured MONGODB_URI ({exc!r}): run `make up`",
            pytrace=False,
        )
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


@pytest.fixture
async def namespace(infra_settings: ServiceSettings, mongo, tmp_path):
    """An isolated name prefix: its own topics, consumer groups and databases, cleaned up after."""
    from attune_shared.kafka_admin import ensure_topics

    prefix = f"t{uuid.uuid4().hex[:8]}_"
    settings = ServiceSettings(attune_name_prefix=prefix)
    await ensure_topics(settings)
    env = {
        "ATTUNE_NAME_PREFIX": prefix,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "MONGODB_URI": settings.mongodb_uri.get_secret_value(),
        "ATTUNE_BATCH_TIMEOUT_MS": "50",
    }
    yield Namespace(prefix=prefix, settings=settings, env=env, logs=tmp_path / "logs")
    for name in await mongo.list_database_names():
        if name.startswith(prefix):
            await mongo.drop_database(name)


class Namespace:
    """Names and environment of one isolated run."""

    def __init__(self, prefix: str, settings: ServiceSettings, env: dict[str, str], logs) -> None:
        self.prefix, self.settings, self.env, self.logs = prefix, settings, env, logs

    def topic(self, name: str) -> str:
        return self.settings.topic(name)

    def db(self, service: str) -> str:
        return f"{self.prefix}attune_{service}"


@pytest.fixture(scope="session")
async def store(mongo: AsyncMongoClient[dict[str, Any]]) -> str:
    """The store behind the server: 'postgresql' (FerretDB's backend, the local stand-in) or 'mongodb'."""
    info = await mongo.admin.command("buildInfo")
    if "ferretdbVersion" not in info:
        running = "mongodb"
    else:
        # FerretDB learns its backend's name when it first opens a database: open one
        probe = f"test_store_{uuid.uuid4().hex[:8]}"
        await mongo[probe]["probe"].insert_one({})
        await mongo.drop_database(probe)
        warnings = (await mongo.admin.command({"getLog": "startupWarnings"}))["log"]
        text = " ".join(json.loads(w)["msg"] for w in warnings)
        found = re.search(r"Powered by FerretDB \S+ and (PostgreSQL)", text)
        assert found, f"FerretDB did not name its backend: {text!r}"
        running = found.group(1).lower()
    return running
