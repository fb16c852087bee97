"""MongoDB helpers for the services' store adapters: idempotent inserts and writes by `_id`.

Written for MongoDB; the local stand-in's limits are compensated in attune_shared.standin alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from pymongo import AsyncMongoClient, DeleteOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, CollectionInvalid, OperationFailure

from attune_shared.settings import ServiceSettings
from attune_shared.standin import BulkCounts, bulk_write, find_in, replace_newer

DUPLICATE_KEY = 11000
NAMESPACE_EXISTS = 48
__all__ = [
    "DUPLICATE_KEY",
    "BulkCounts",
    "ConcurrentUpdate",
    "bulk_write",
    "delete_by_ids",
    "find_by_ids",
    "find_in",
    "insert_clashing",
    "insert_new",
    "keep_dead_letters",
    "make_client",
    "replace_by_ids",
    "replace_newer",
    "replace_versioned",
    "update_by_ids",
]


class ConcurrentUpdate(RuntimeError):
    """Another writer changed a document between our read and our write (an optimistic check failed):
    re-read and retry. The batch subscriber retries a batch that raises it, like a transient error."""


def make_client(settings: ServiceSettings) -> AsyncMongoClient[dict[str, Any]]:
    """An async client; create it inside the running event loop (it belongs to one loop)."""
    return AsyncMongoClient(
        settings.mongodb_uri.get_secret_value(),
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=5000,
        socketTimeoutMS=settings.mongodb_socket_timeout_ms,
        appname=f"attune-{settings.service_name}",
        tz_aware=True,
    )


async def ensure_collections(*collections: AsyncCollection[dict[str, Any]]) -> None:
    """Create whichever of these collections does not exist yet (at start-up, with the indexes).

    A service creates every collection it writes before it consumes, never implicitly on a first
    write in the middle of the stream: creating a collection is a catalog change, the one write a
    crash of the store can leave half done on the local stand-in (FerretDB 1.24 keeps a table its
    catalog lacks, and every later create fails: docs/reliability.md, scenario 8b), and on MongoDB
    an implicit create under load takes a database lock.
    """
    by_db: dict[str, list[AsyncCollection[dict[str, Any]]]] = {}
    for coll in collections:
        by_db.setdefault(coll.database.name, []).append(coll)
    for group in by_db.values():
        existing = set(await group[0].database.list_collection_names())
        for coll in group:
            if coll.name not in existing:
                try:
                    await coll.database.create_collection(coll.name)
                except CollectionInvalid:  # seen by PyMongo's own check: created meanwhile
                    pass
                except OperationFailure as exc:  # created meanwhile by another instance
                    if exc.code != NAMESPACE_EXISTS:
                        raise
                existing.add(coll.name)


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


async def insert_clashing(
    collection: AsyncCollection[dict[str, Any]], docs: Sequence[dict[str, Any]]
) -> list[int]:
    """Insert documents; return the positions of those whose `_id` was already taken (not inserted).

    Inserting first and reading back only the clashes costs one command when most ids are new,
    where reading every id first costs a lookup each. Any other write error is raised.
    """
    if not docs:
        return []
    try:
        await collection.insert_many(list(docs), ordered=False)
        return []
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return sorted(int(e["index"]) for e in errors)


class Letter(Protocol):
    """A dead letter as the stores keep it: a pydantic model with its id and time of receipt."""

    @property
    def dlq_id(self) -> str: ...

    @property
    def received_at(self) -> datetime: ...

    def model_dump(self, *, mode: str) -> dict[str, Any]: ...


async def keep_dead_letters(collection: AsyncCollection[dict[str, Any]], letters: Sequence[Letter]) -> None:
    """Keep dead letters for an operator (`attune dlq list|replay`); a re-consumed record keeps its first copy."""
    docs = [
        {"_id": d.dlq_id, **d.model_dump(mode="json"), "received_at": d.received_at, "replayed_at": None}
        for d in letters
    ]
    await insert_new(collection, docs)


# ------------------------------------------------------------------ by _id
#
# Idiomatic MongoDB; what the local stand-in cannot do (`$in`, big bulks) is compensated inside
# attune_shared.standin, the one place that knows which store it talks to.


async def find_by_ids(
    collection: AsyncCollection[dict[str, Any]],
    ids: Iterable[Any],
    projection: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The stored documents among these `_id`s (absent ones are simply missing): `{_id: {$in: ids}}`."""
    return await find_in(collection, "_id", ids, projection)


async def delete_by_ids(collection: AsyncCollection[dict[str, Any]], ids: Iterable[Any]) -> None:
    """Delete the documents with these `_id`s (absent ones are fine): one bulk of single-`_id` deletes."""
    wanted = list(dict.fromkeys(ids))
    if wanted:
        await bulk_write(collection, [DeleteOne({"_id": i}) for i in wanted])


async def update_by_ids(
    collection: AsyncCollection[dict[str, Any]], ids: Iterable[Any], update: Mapping[str, Any]
) -> None:
    """Apply one update to each of these `_id`s (absent ones stay absent): one bulk of single-`_id` updates."""
    wanted = list(dict.fromkeys(ids))
    if wanted:
        await bulk_write(collection, [UpdateOne({"_id": i}, dict(update)) for i in wanted])


async def replace_by_ids(collection: AsyncCollection[dict[str, Any]], docs: Sequence[dict[str, Any]]) -> None:
    """Upsert whole documents by their `_id`: one bulk of single-`_id` replacements."""
    if docs:
        await bulk_write(collection, [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs])


async def replace_versioned(
    collection: AsyncCollection[dict[str, Any]], items: Sequence[tuple[dict[str, Any], int]]
) -> int:
    """Replace each document whose stored `version` is still the expected one; returns how many were.

    `items` are (new document, the `version` it was read at); the check is in the filter
    (`{_id, version}`), atomic on MongoDB. Single writers per key come from Kafka's partition
    ownership; this check catches the rest (a zombie consumer, a sweep racing the consumer).
    """
    if not items:
        return 0
    ops = [ReplaceOne({"_id": doc["_id"], "version": version}, doc) for doc, version in items]
    return (await bulk_write(collection, ops)).matched
