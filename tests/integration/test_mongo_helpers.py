"""The `_id`-only store helpers on the real store the project starts (FerretDB locally).

They exist because FerretDB serves only a lone `_id` equality from an index, and because one of its
update commands with 100 matching statements deadlocks its SQLite connection pool; these tests
would hang (and fail on the socket timeout) without the chunking.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from attune_shared import mongo as m

ROOT = Path(__file__).resolve().parents[2]


async def test_bulk_helpers_over_many_documents_keep_the_store_answering(
    fresh_db: AsyncDatabase[dict[str, Any]],
) -> None:
    async def exercise() -> None:
        coll = fresh_db["many"]
        n = 4 * m.BULK_CHUNK + 7  # several commands, and well past FerretDB's 100-statement deadlock
        await coll.insert_many([{"_id": f"d{i}", "version": 1, "v": 0} for i in range(n)])

        await m.update_by_ids(coll, [f"d{i}" for i in range(n)], {"$set": {"v": 1}})
        counts = await m.bulk_write(coll, [UpdateOne({"_id": f"d{i}"}, {"$inc": {"v": 1}}) for i in range(n)])
        assert (counts.matched, counts.modified) == (n, n)
        assert {d["v"] for d in await m.find_by_ids(coll, [f"d{i}" for i in range(n)])} == {2}

        # Only documents still at the version they were read at are replaced.
        items = [({"_id": f"d{i}", "version": 2, "v": 3}, 1 if i % 3 else 9) for i in range(n)]
        replaced = await m.replace_versioned(coll, items)
        assert replaced == sum(1 for i in range(n) if i % 3)
        stored = {d["_id"]: d for d in await coll.find({}).to_list()}
        assert all(stored[f"d{i}"]["v"] == (3 if i % 3 else 2) for i in range(n))

        await m.replace_by_ids(coll, [{"_id": f"d{i}", "v": 4} for i in range(n)] + [{"_id": "new", "v": 4}])
        assert await coll.count_documents({"v": 4}) == n + 1

        await m.delete_by_ids(coll, [f"d{i}" for i in range(n)] + ["absent"])
        assert [d["_id"] for d in await coll.find({}).to_list()] == ["new"]

    await asyncio.wait_for(exercise(), timeout=60)  # a wedged store fails here instead of hanging


async def test_find_by_ids_returns_only_stored_documents_once(
    fresh_db: AsyncDatabase[dict[str, Any]],
) -> None:
    coll = fresh_db["some"]
    await coll.insert_many([{"_id": f"k{i}", "i": i} for i in range(50)])
    wanted = [f"k{i}" for i in range(0, 50, 2)] + ["k0", "missing-1", "missing-2"]
    docs = await m.find_by_ids(coll, wanted, {"i": 1})
    assert sorted(d["i"] for d in docs) == list(range(0, 50, 2))
    assert await m.find_by_ids(coll, []) == []


async def _plan_uses_the_index(data: Path, collection: str) -> tuple[bool, list[str]]:
    """Wait (up to 10 s; the indexer looks every 250 ms) for an `_id` lookup on the collection's
    table to use the indexer's index; returns whether it did and the last plan seen."""
    plan: list[str] = []
    table = "?"
    for _ in range(40):
        # closed at once: a connection left open across a dropped database would, when collected,
        # delete the log of the one created next under the same name
        with contextlib.closing(sqlite3.connect(f"file:{data}?mode=ro", uri=True)) as db:
            row = db.execute(
                "SELECT table_name FROM _ferretdb_collections WHERE name = ?", (collection,)
            ).fetchone()
            if row is not None:
                table = row[0]
                plan = [
                    str(r[-1])
                    for r in db.execute(
                        f'EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM "{table}" '
                        "WHERE _ferretdb_sjson->'$._id' = '\"a\"'"
                    )
                ]
        if any(f"USING INDEX {table}_attune_id" in p for p in plan):
            return True, plan
        await asyncio.sleep(0.25)
    return False, plan


def _data_file(db: AsyncDatabase[dict[str, Any]]) -> Path:
    run_dir = Path(os.environ.get("ATTUNE_RUN_DIR", ROOT / "var"))
    data = run_dir / "ferretdb-data" / f"{db.name}.sqlite"
    assert data.exists(), f"expected the embedded store's file at {data}"
    return data


async def test_the_embedded_store_indexes_what_its_id_lookups_query(
    fresh_db: AsyncDatabase[dict[str, Any]],
) -> None:
    """deploy/ferretdb/idindex.go adds an index on the exact expression FerretDB's _id pushdown uses."""
    coll = fresh_db["indexed"]
    await coll.insert_one({"_id": "a"})
    if not await m.point_lookups(coll):
        return  # a real MongoDB indexes _id itself
    used, plan = await _plan_uses_the_index(_data_file(fresh_db), "indexed")
    assert used, plan


async def test_the_indexer_follows_new_collections_and_a_recreated_database(
    fresh_db: AsyncDatabase[dict[str, Any]], mongo: Any
) -> None:
    """It looks at quiet files less often: a collection added later to a file it already indexed, and
    a database dropped and created again under the same name, still get the index (and the store
    keeps working: a connection held across the drop would break the new database's log)."""
    await fresh_db["first"].insert_one({"_id": "a"})
    if not await m.point_lookups(fresh_db["first"]):
        return
    assert (await _plan_uses_the_index(_data_file(fresh_db), "first"))[0]
    await asyncio.sleep(0.6)  # a pass or two with an unchanged schema
    await fresh_db["second"].insert_one({"_id": "a"})
    used, plan = await _plan_uses_the_index(_data_file(fresh_db), "second")
    assert used, plan

    await mongo.drop_database(fresh_db.name)
    await asyncio.sleep(0.6)  # the indexer sees the file gone (or replaced)
    await fresh_db["third"].insert_one({"_id": "a"})
    used, plan = await _plan_uses_the_index(_data_file(fresh_db), "third")
    assert used, plan
