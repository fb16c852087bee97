"""The sweep's event clock (issue 15, "flat with size"): AlertsStore keeps, next to each episode's
clock, one clock per input partition, and the sweep reads only those. Run here over a small
in-memory stand-in for the few collection calls the clocks make (`$max` upserts by `_id`, finds by
`_id`, whole-collection finds); tests/integration/test_alerts_event_clock.py runs the same on the
real store and checks what is asked of it on the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from pymongo import UpdateOne

from attune_alerts.adapters.store import AlertsStore

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def episode(i: int) -> str:
    return f"ep_{i:026d}"


class Cursor:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs

    async def to_list(self) -> list[dict[str, Any]]:
        return self.docs

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        for d in self.docs:
            yield d


class Collection:
    """Documents by `_id`; the calls the clocks and the episodes' partitions make."""

    def __init__(self, db: Database, name: str) -> None:
        self.database = db
        self.name = name
        self.docs: dict[Any, dict[str, Any]] = {}

    def _match(self, query: Mapping[str, Any]) -> list[dict[str, Any]]:
        self.database.reads.append(self.name)
        if not query:
            return list(self.docs.values())
        (field, cond), *rest = query.items()
        assert field == "_id" and not rest, query
        ids = cond["$in"] if isinstance(cond, dict) else [cond]
        return [self.docs[i] for i in ids if i in self.docs]

    def find(self, query: Mapping[str, Any], projection: Any = None) -> Cursor:
        return Cursor([dict(d) for d in self._match(query)])

    async def find_one(self, query: Mapping[str, Any], projection: Any = None, sort: Any = None) -> Any:
        found = self._match(query)
        if sort is not None:
            ((field, direction),) = sort
            found.sort(key=lambda d: d[field], reverse=direction < 0)
        return dict(found[0]) if found else None

    async def update_one(self, query: Mapping[str, Any], update: Any, upsert: bool | None) -> None:
        assert upsert and set(update) == {"$max"}, update
        doc = self.docs.setdefault(query["_id"], {"_id": query["_id"]})
        for field, value in update["$max"].items():
            if field not in doc or value > doc[field]:
                doc[field] = value

    async def bulk_write(self, ops: list[Any], ordered: bool) -> Any:
        for op in ops:
            assert isinstance(op, UpdateOne)
            await self.update_one(op._filter, op._doc, upsert=op._upsert)
        return SimpleNamespace(matched_count=0, modified_count=0, upserted_count=0)

    async def create_index(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def insert_many(self, docs: list[dict[str, Any]], ordered: bool = True) -> None:
        self.docs.update((d["_id"], dict(d)) for d in docs)


class Client:
    class admin:
        @staticmethod
        async def command(name: str) -> dict[str, Any]:
            return {"version": "7.0.0"}  # MongoDB, as the store detects it


class Database:
    def __init__(self) -> None:
        self.collections: dict[str, Collection] = {}
        self.reads: list[str] = []

        self.client = Client()

    name = "attune_alerts"

    def __getitem__(self, name: str) -> Collection:
        return self.collections.setdefault(name, Collection(self, name))

    async def list_collection_names(self) -> list[str]:
        return sorted(self.collections)

    async def create_collection(self, name: str) -> Collection:
        return self[name]


def stored(db: Database, partitions: Mapping[int, int]) -> None:
    """Episodes as stored, each on its partition (only `_id` and `partition` are read here)."""
    db["episodes"].docs.update(
        {episode(i): {"_id": episode(i), "partition": p} for i, p in partitions.items()}
    )


async def test_the_newest_event_time_is_the_newest_episode_clock_and_never_moves_back() -> None:
    db = Database()
    owner, other = AlertsStore(db), AlertsStore(db)  # type: ignore[arg-type]
    stored(db, {i: i % 3 for i in range(60)})
    assert await owner.newest_event_time() is None
    await owner.advance_clocks(newest={episode(i): at(i) for i in range(30)})
    await other.advance_clocks(newest={episode(i): at(i / 10) for i in range(30, 60)})
    assert await other.newest_event_time() == at(29)
    assert set(db["partition_clocks"].docs) == {"0", "1", "2"}
    # A stale batch (a lagging partition, a zombie after a rebalance) never moves a clock back.
    await other.advance_clocks(newest={episode(29): at(3), episode(28): at(2)})
    assert await owner.newest_event_time() == at(29)
    assert db["partition_clocks"].docs["2"]["newest"] == at(29)
    await other.advance_clocks(newest={episode(31): at(40)})
    assert await owner.newest_event_time() == at(40)
    assert db["partition_clocks"].docs["1"]["newest"] == at(40)


async def test_the_sweeps_clock_reads_no_episode_clock() -> None:
    db = Database()
    store = AlertsStore(db)  # type: ignore[arg-type]
    stored(db, {i: i % 4 for i in range(100)})
    await store.advance_clocks(newest={episode(i): at(i) for i in range(100)})
    db.reads.clear()
    assert await store.newest_event_time() == at(99)
    assert db.reads == ["partition_clocks"]


async def test_partitions_come_from_the_episodes_this_batch_saved_or_else_from_the_store() -> None:
    db = Database()
    store = AlertsStore(db)  # type: ignore[arg-type]
    # Episodes 1 and 2 as this batch loaded or saved them; episode 3 only in the store.
    store.known_episodes.update({episode(i): {"_id": episode(i), "partition": 7} for i in (1, 2)})
    db["episodes"].docs[episode(3)] = {"_id": episode(3), "partition": 5}
    await store.advance_clocks(newest={episode(1): at(1), episode(2): at(2), episode(3): at(9)})
    assert {k: d["newest"] for k, d in db["partition_clocks"].docs.items()} == {"7": at(2), "5": at(9)}


async def test_a_batch_run_again_after_stopping_between_the_writes_still_moves_the_partition_clock() -> None:
    """The episodes' clocks were written, then the process stopped before the partition's: the batch
    runs again, reads those clocks as stored (nothing to move there), and moves the partition's."""
    db = Database()
    stored(db, {i: 0 for i in range(6)})
    first = AlertsStore(db)  # type: ignore[arg-type]
    await first.advance_clocks(newest={episode(i): at(i) for i in range(6)})
    await db["clinic_clocks"].update_one({"_id": episode(4)}, {"$max": {"newest": at(20)}}, upsert=True)
    again = AlertsStore(db)  # type: ignore[arg-type]
    clocks = await again.event_clocks(keys=[episode(4)])
    await again.advance_clocks(newest=clocks)
    assert await again.newest_event_time() == at(20)


async def test_the_newest_episode_clock_reaches_the_partition_clocks_at_every_start() -> None:
    """Also after an instance of an earlier release, which wrote episode clocks only (a rolling
    upgrade), so the sweep's clock never stays behind the episodes'."""
    db = Database()
    await db["clinic_clocks"].insert_many([{"_id": episode(i), "newest": at(i)} for i in range(5)])
    store = AlertsStore(db)  # type: ignore[arg-type]
    await store.ensure_indexes()
    assert await store.newest_event_time() == at(4)
    await db["clinic_clocks"].update_one({"_id": episode(0)}, {"$max": {"newest": at(50)}}, upsert=True)
    assert await store.newest_event_time() == at(4)  # read at start only
    restarted = AlertsStore(db)  # type: ignore[arg-type]
    await restarted.ensure_indexes()
    assert await restarted.newest_event_time() == at(50)
