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
import contextlib
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
# Statements per bulk command on the stand-in (see 2. above): far below the pool's 50 (PostgreSQL)
# or 100 (SQLite) connections per database.
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
_PROFILES: dict[int, StoreProfile] = {}


async def detect(client: Any) -> StoreProfile:
    """The profile of this client's server, asked once and remembered for the client's lifetime."""
    key = id(client)
    if key not in _PROFILES:
        info = await client.admin.command("buildInfo")
        _PROFILES[key] = STANDIN if "ferretdbVersion" in info else MONGODB
    return _PROFILES[key]


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
    if not docs:
        return
    if (await _profile(collection)).range_filter_pushdown:

        async def one(doc: dict[str, Any]) -> None:
            # A duplicate key: the stored document is already at this value or past it.
            with contextlib.suppress(DuplicateKeyError):
                await collection.replace_one(
                    {"_id": doc["_id"], field: {"$lt": doc[field]}}, doc, upsert=True
                )

        await asyncio.gather(*(one(d) for d in docs))
        return
    stored = {
        d["_id"]: d[field] for d in await find_in(collection, "_id", [d["_id"] for d in docs], {field: 1})
    }
    ahead = [d for d in docs if d["_id"] not in stored or stored[d["_id"]] < d[field]]
    if ahead:
        await bulk_write(collection, [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in ahead])
