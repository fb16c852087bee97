"""MongoDB helpers that work on MongoDB and on FerretDB alike (see architecture.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from attune_shared.settings import ServiceSettings

DUPLICATE_KEY = 11000


def make_client(settings: ServiceSettings) -> AsyncMongoClient[dict[str, Any]]:
    """An async client; create it inside the running event loop (it belongs to one loop)."""
    return AsyncMongoClient(
        settings.mongodb_uri.get_secret_value(),
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=5000,
        appname=f"attune-{settings.service_name}",
        tz_aware=True,
    )


async def insert_new(
    collection: AsyncCollection[dict[str, Any]], docs: Sequence[dict[str, Any]]
) -> tuple[int, int]:
    """Insert documents whose _id (or unique key) is new; return (inserted, duplicates).

    A duplicate key is how idempotency shows itself, so it is counted, not raised. Any other write
    error is raised and the batch is retried.
    """
    if not docs:
        return 0, 0
    try:
        result = await collection.insert_many(list(docs), ordered=False)
        return len(result.inserted_ids), 0
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        other = [e for e in errors if e.get("code") != DUPLICATE_KEY]
        if other:
            raise
        dupes = len(errors)
        return len(docs) - dupes, dupes
