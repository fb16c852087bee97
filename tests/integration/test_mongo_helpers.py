"""The store helpers (attune_shared.mongo) and the stand-in seam (attune_shared.standin) on the real
store the project starts (FerretDB locally).

The seam's MongoDB path runs here too, on the stand-in (which answers `$in` and range filters
correctly, only slowly), so the code production runs is run by a test. One bulk command with 100
matching statements deadlocks the stand-in's connection pool; the bulk test would hang (and fail
on its timeout) without the seam's chunking.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
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


@pytest.fixture(params=["mongodb", "standin"])
async def profile(request: pytest.FixtureRequest, mongo: Any) -> AsyncIterator[standin.StoreProfile]:
    """Each of the seam's two paths in turn: MongoDB's and the stand-in's."""
    chosen = standin.MONGODB if request.param == "mongodb" else standin.STANDIN
    await standin.detect(mongo)
    saved = standin._PROFILES[mongo]
    standin._PROFILES[mongo] = chosen
    try:
        yield chosen
    finally:
        standin._PROFILES[mongo] = saved


async def test_the_seam_answers_the_same_on_both_paths(
    fresh_db: AsyncDatabase[dict[str, Any]], profile: standin.StoreProfile
) -> None:
    coll = fresh_db["seam"]
    await coll.create_index("group")
    await coll.insert_many([{"_id": f"k{i}", "group": f"g{i % 4}", "sequence": i} for i in range(20)])
    found = await standin.find_in(coll, "group", ["g1", "g3", "g1", "none"], {"_id": 1})
    assert sorted(d["_id"] for d in found) == sorted(f"k{i}" for i in range(20) if i % 4 in (1, 3))
    assert await standin.find_in(coll, "_id", []) == []
    # Forward only: k5 (stored 5) moves to 9, k6 (stored 6) is not moved back to 2, a new one is inserted.
    docs = [{"_id": "k5", "sequence": 9}, {"_id": "k6", "sequence": 2}, {"_id": "new", "sequence": 1}]
    await standin.replace_newer(coll, docs, "sequence")
    stored = {d["_id"]: d["sequence"] for d in await m.find_by_ids(coll, ["k5", "k6", "new"])}
    assert stored == {"k5": 9, "k6": 6, "new": 1}
    # Under the stand-in's limit, so that MongoDB's one-command bulk does not wedge it.
    counts = await standin.bulk_write(
        coll, [UpdateOne({"_id": f"k{i}"}, {"$set": {"x": 1}}) for i in range(10)]
    )
    assert (counts.matched, counts.modified) == (10, 10)
    assert await standin.bulk_write(coll, []) == standin.BulkCounts()
    assert (
        await m.replace_versioned(coll, [({"_id": "k1", "version": 2}, 0), ({"_id": "k2", "version": 1}, 1)])
        == 0
    )


# ---------------------------------------------------------------- the store contract the design relies on


async def test_a_zombie_writer_cannot_overwrite_the_new_owners_state(
    fresh_db: AsyncDatabase[dict[str, Any]],
) -> None:
    """After a rebalance the new owner of a partition reads a client's state at version 3 and writes 4;
    the old owner (a zombie still finishing its batch) then writes from the version 3 it read too:
    its conditional replace matches nothing, so its batch is retried from the store, never applied."""
    coll = fresh_db["clients"]
    await coll.insert_one({"_id": "cr_1", "version": 3, "owner": "before"})
    assert await m.replace_versioned(coll, [({"_id": "cr_1", "version": 4, "owner": "new"}, 3)]) == 1
    assert await m.replace_versioned(coll, [({"_id": "cr_1", "version": 4, "owner": "zombie"}, 3)]) == 0
    assert await coll.find_one({"_id": "cr_1"}) == {"_id": "cr_1", "version": 4, "owner": "new"}


async def test_once_only_work_is_claimed_by_exactly_one_of_many_racing_writers(
    fresh_db: AsyncDatabase[dict[str, Any]],
) -> None:
    """Claims by insert (receipts, alert change sequences, escalation and delivery claims) hold on the
    stand-in as on MongoDB: of 16 concurrent writers of one claim, one wins; the others see a clash."""
    coll = fresh_db["claims"]

    async def claim(writer: int) -> list[int]:
        return await m.insert_clashing(coll, [{"_id": "alert-1:00000002", "writer": writer}])

    results = await asyncio.gather(*(claim(w) for w in range(16)))
    assert sum(1 for taken in results if taken == []) == 1
    assert await coll.count_documents({}) == 1


async def test_a_replayed_batch_changes_nothing(fresh_db: AsyncDatabase[dict[str, Any]]) -> None:
    """Idempotent inserts: a batch consumed again (at least once delivery) inserts nothing twice."""
    coll = fresh_db["facts"]
    batch = [{"_id": f"ev_{i}", "v": i} for i in range(30)]
    assert await m.insert_new(coll, batch) == (30, 0)
    assert await m.insert_new(coll, [*batch, {"_id": "ev_new", "v": 1}]) == (1, 30)
    assert await coll.count_documents({}) == 31


async def test_ensure_collections_creates_only_the_missing_ones_and_tolerates_a_racing_creator(
    fresh_db: AsyncDatabase[dict[str, Any]],
) -> None:
    """Services create every collection they write at start-up (never implicitly mid-stream)."""
    await fresh_db["kept"].insert_one({"_id": "k"})
    wanted = [fresh_db["kept"], fresh_db["a"], fresh_db["b"]]
    await asyncio.gather(m.ensure_collections(*wanted), m.ensure_collections(*wanted))  # two instances
    assert sorted(await fresh_db.list_collection_names()) == ["a", "b", "kept"]
    assert await fresh_db["kept"].count_documents({}) == 1  # an existing collection is left as it was
    await m.ensure_collections(*wanted)  # idempotent
    assert sorted(await fresh_db.list_collection_names()) == ["a", "b", "kept"]
