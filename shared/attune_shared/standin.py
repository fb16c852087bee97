"""What the local stand-in store cannot do that MongoDB does: compensated here, and nowhere else.

Production runs MongoDB. Tests, the demo and the bench run a stand-in, FerretDB 1.24 (on PostgreSQL
by default, `deploy/infra.sh`; store-notes.md has the measurements). The services' store adapters
are written for MongoDB only: compound equality filters, conditional updates (`{_id, version}` in
the filter), upserts, unique indexes, `$in`. What the stand-in does differently is compensated by
the three functions below, each taking one path on MongoDB and another on the stand-in, chosen once
per client from the server's `buildInfo` (`detect`, which each service's start-up calls):

1. `$in` is not pushed down to SQL: the stand-in reads and decodes the whole collection for it.
   `find_in` asks one equality per value instead (pushed down and served by an index), at most
   POINT_CONCURRENCY at a time. On MongoDB it is the one `$in` query.
2. One bulk command with more than about 50 matching statements wedges the stand-in's connection
   pool (each statement holds a connection until the command ends). `bulk_write` sends at most
   BULK_CHUNK statements per command there; on MongoDB the whole bulk is one command.
3. A range in an update's filter (`{_id, sequence: {$lt: n}}`) is not pushed down. `replace_newer`
   reads the stored field by `_id` first and replaces by `_id` on the stand-in; on MongoDB the
   check is in the filter, atomically.

What no compensation can give: the stand-in applies an update as a read then a write in separate
transactions, so two concurrent writers of one document can both win. The services never rely on
that atomicity for correctness on their hot paths: each client's state has one writer at a time
(Kafka partition ownership), and the conditional filters catch the rest on MongoDB
(docs/reliability.md, "What the store guarantees"). No service module may branch on the store.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pymongo import DeleteOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError
from pymongo.results import BulkWriteResult

T = TypeVar("T")
# How many single-value queries `find_in` keeps in flight on the stand-in.
POINT_CONCURRENCY = 32
# Statements per bulk command on the stand-in (see 2. above): far below the pool's 50 connections
# per database (FerretDB's PostgreSQL default; deploy/infra.sh raises it to 400).
BULK_CHUNK = 25


@dataclass(frozen=True, slots=True)
class StoreProfile:
    """What the server behind a client can do, from its `buildInfo`."""

    name: str
    in_pushdown: bool
    max_bulk: int | None
    range_filter_pushdown: bool


MONGODB = StoreProfile("mongodb", in_pushdown=True, max_bulk=None, range_filter_pushdown=True)
STANDIN = StoreProfile("ferretdb", in_pushdown=False, max_bulk=BULK_CHUNK, range_filter_pushdown=False)
# Per client, for the client's lifetime (a client that is gone takes its entry with it).
_PROFILES: weakref.WeakKeyDictionary[Any, StoreProfile] = weakref.WeakKeyDictionary()


async def detect(client: Any) -> StoreProfile:
    """The profile of this client's server, asked once and remembered for the client's lifetime."""
    found = _PROFILES.get(client)
    if found is None:
        info = await client.admin.command("buildInfo")
        found = _PROFILES[client] = STANDIN if "ferretdbVersion" in info else MONGODB
    return found


async def _profile(collection: AsyncCollection[dict[str, Any]]) -> StoreProfile:
    return await detect(collection.database.client)


async def _bounded(call: Callable[[Any], Awaitable[T]], items: Iterable[Any]) -> list[T]:
    """call(item) for every item, at most POINT_CONCURRENCY at a time, results in order."""
    gate = asyncio.Semaphore(POINT_CONCURRENCY)

    async def run(item: Any) -> T:
        async with gate:
            return await call(item)

    return list(await asyncio.gather(*(run(i) for i in items)))


async def find_in(
    collection: AsyncCollection[dict[str, Any]],
    field: str,
    values: Iterable[Any],
    projection: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The documents whose `field` is one of these values: `{field: {"$in": values}}` (see 1.)."""
    wanted = list(dict.fromkeys(values))
    if not wanted:
        return []
    if (await _profile(collection)).in_pushdown:
        return await collection.find({field: {"$in": wanted}}, projection).to_list()

    async def one(value: Any) -> list[dict[str, Any]]:
        if field == "_id":
            doc = await collection.find_one({"_id": value}, projection)
            return [] if doc is None else [doc]
        return await collection.find({field: value}, projection).to_list()

    return [d for found in await _bounded(one, wanted) for d in found]


@dataclass(frozen=True, slots=True)
class BulkCounts:
    """What a bulk write did, summed over its commands."""

    matched: int = 0
    modified: int = 0
    upserted: int = 0


async def bulk_write(
    collection: AsyncCollection[dict[str, Any]], ops: Sequence[DeleteOne | ReplaceOne[Any] | UpdateOne]
) -> BulkCounts:
    """An unordered bulk write: one command on MongoDB, commands of BULK_CHUNK on the stand-in (2.)."""
    if not ops:
        return BulkCounts()
    size = (await _profile(collection)).max_bulk or len(ops)
    matched = modified = upserted = 0
    for start in range(0, len(ops), size):
        result: BulkWriteResult = await collection.bulk_write(list(ops[start : start + size]), ordered=False)
        matched += result.matched_count
        modified += result.modified_count
        upserted += result.upserted_count
    return BulkCounts(matched, modified, upserted)


async def replace_newer(
    collection: AsyncCollection[dict[str, Any]], docs: Sequence[dict[str, Any]], field: str
) -> None:
    """Upsert each document unless the stored one's `field` is already as high (forward only, 3.)."""
    newest: dict[Any, dict[str, Any]] = {}
    for doc in docs:  # the highest of each _id only, so two of one _id never race each other
        if doc["_id"] not in newest or newest[doc["_id"]][field] < doc[field]:
            newest[doc["_id"]] = doc
    if not newest:
        return
    if (await _profile(collection)).range_filter_pushdown:

        async def one(doc: dict[str, Any]) -> None:
            try:
                await collection.replace_one(
                    {"_id": doc["_id"], field: {"$lt": doc[field]}}, doc, upsert=True
                )
            except DuplicateKeyError as exc:
                # The upsert's insert clashed on _id: the stored document is at this value or past it.
                if (exc.details or {}).get("keyPattern") not in (None, {"_id": 1}):
                    raise

        await asyncio.gather(*(one(d) for d in newest.values()))
        return
    stored = {d["_id"]: d.get(field) for d in await find_in(collection, "_id", list(newest), {field: 1})}
    # As MongoDB's filter does: a stored document without the field is left as it is.
    ahead = [
        d for i, d in newest.items() if i not in stored or (stored[i] is not None and stored[i] < d[field])
    ]
    if ahead:
        await bulk_write(collection, [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in ahead])
