"""The store helpers (attune_shared.mongo) and the stand-in seam (attune_shared.standin) on the real
store the project starts (FerretDB locally).

The seam's MongoDB path runs here too, on the stand-in (which answers `$in` and range filters
correctly, only slowly), so the code production runs is run by a test. One bulk command with 100
matching statements deadlocks the stand-in's connection pool; the bulk test would hang (and fail
on its timeout) without the seam's chunking.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from attune_shared import mongo as m
from attune_shared import standin

ROOT = Path(__file__).resolve().parents[2]


async def test_bulk_helpers_over_many_documents_keep_the_store_answering(
    fresh_db: AsyncDatabase[dict[str, Any]],
) -> None:
    async def exercise() -> None:
        coll = fresh_db["many"]
        n = 4 * standin.BULK_CHUNK + 7  # several commands, and well past FerretDB's 100-statement deadlock
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
