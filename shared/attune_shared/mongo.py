"""MongoDB helpers that work on MongoDB and on FerretDB alike (see architecture.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pymongo import AsyncMongoClient, DeleteOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError
from pymongo.results import BulkWriteResult

from attune_shared.settings import ServiceSettings

DUPLICATE_KEY = 11000
# How many single-document operations one batch helper keeps in flight on FerretDB.
POINT_CONCURRENCY = 32
# Statements per update/replace/delete command. FerretDB 1.24 on SQLite keeps each statement's
# query open until the command ends and its pool holds 100 connections per database, so one
# command with 100 matching statements waits for itself for ever (and wedges the database).
# Commands of at most BULK_CHUNK statements, sent one after another, stay far below that.
BULK_CHUNK = 25

T = TypeVar("T")
_POINT_LOOKUPS: dict[int, bool] = {}


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


# ------------------------------------------------------------------ lookups by _id
#
# On MongoDB, `{"_id": {"$in": ids}}` is one indexed query. FerretDB 1.x (the local store) pushes
# down to its storage only a filter holding a lone `_id` equality; anything else, `$in` included,
# reads and decodes the whole collection, so the cost of a batch lookup grows with the collection.
# So reads use `$in` on MongoDB and concurrent single-`_id` lookups on FerretDB (the store the
# project starts indexes those: deploy/ferretdb/idindex.go), and writes are bulks of single-`_id`
# operations, one round trip on both. They are for hot paths; admin queries may use `$in`.


async def point_lookups(collection: AsyncCollection[dict[str, Any]]) -> bool:
    """Whether this collection's server is FerretDB (so single-`_id` operations beat `$in`)."""
    client = collection.database.client
    key = id(client)
    if key not in _POINT_LOOKUPS:
        info = await client.admin.command("buildInfo")
        _POINT_LOOKUPS[key] = "ferretdbVersion" in info
    return _POINT_LOOKUPS[key]


async def _bounded(call: Callable[[Any], Awaitable[T]], items: Iterable[Any]) -> list[T]:
    """call(item) for every item, at most POINT_CONCURRENCY at a time, results in order."""
    gate = asyncio.Semaphore(POINT_CONCURRENCY)

    async def run(item: Any) -> T:
        async with gate:
            return await call(item)

    return list(await asyncio.gather(*(run(i) for i in items)))


async def find_by_ids(
    collection: AsyncCollection[dict[str, Any]],
    ids: Iterable[Any],
    projection: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The stored documents among these `_id`s (absent ones are simply missing)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    if not await point_lookups(collection):
        return await collection.find({"_id": {"$in": wanted}}, projection).to_list()

    async def one(i: Any) -> dict[str, Any] | None:
        return await collection.find_one({"_id": i}, projection)

    docs = await _bounded(one, wanted)
    return [d for d in docs if d is not None]


@dataclass(frozen=True, slots=True)
class BulkCounts:
    """What a chunked bulk write did, summed over its commands."""

    matched: int = 0
    modified: int = 0
    upserted: int = 0


async def bulk_write(
    collection: AsyncCollection[dict[str, Any]], ops: Sequence[DeleteOne | ReplaceOne[Any] | UpdateOne]
) -> BulkCounts:
    """An unordered bulk write sent as commands of at most BULK_CHUNK statements (see BULK_CHUNK)."""
    matched = modified = upserted = 0
    for start in range(0, len(ops), BULK_CHUNK):
        result: BulkWriteResult = await collection.bulk_write(
            list(ops[start : start + BULK_CHUNK]), ordered=False
        )
        matched += result.matched_count
        modified += result.modified_count
        upserted += result.upserted_count
    return BulkCounts(matched, modified, upserted)


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

    `items` are (new document, the `version` it was read at). On MongoDB the check is in the
    filter, so it is atomic. FerretDB cannot push a two-field filter down (each such replace would
    read the whole collection) and does not apply an update atomically anyway, so there the
    versions are read by `_id` first and the matching documents replaced by `_id`: the same check,
    with the window FerretDB has in any case. Single writers per key come from Kafka's partition
    ownership; this check catches the rest (a zombie consumer, a sweep racing the consumer).
    """
    if not items:
        return 0
    if not await point_lookups(collection):
        ops = [ReplaceOne({"_id": doc["_id"], "version": version}, doc) for doc, version in items]
        return (await bulk_write(collection, ops)).matched
    found = await find_by_ids(collection, [doc["_id"] for doc, _ in items], {"version": 1})
    stored = {d["_id"]: d.get("version") for d in found}
    fresh = [doc for doc, version in items if stored.get(doc["_id"]) == version]
    if fresh:
        await bulk_write(collection, [ReplaceOne({"_id": doc["_id"]}, doc) for doc in fresh])
    return len(fresh)
