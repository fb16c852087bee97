"""reporting's own MongoDB data: facts per cell, episode summaries, the read model, dirty marks, a lock.

Facts are kept in one small collection per cell and kind (`care.<clinic>.<month>`, likewise
`measures.` and `alerts.`), episode summaries and the read model per clinic, and everything else
in collections that stay small. The layout was chosen when the local store was FerretDB on SQLite,
which read a whole collection for any filter but a lone `_id`; on MongoDB, and on the PostgreSQL
stand-in with its GIN indexes, it is simply well partitioned (whether one collection per kind with
indexed `clinic`/`month` fields would cost less is open: issue 15, measured before any change).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from attune_reporting.adapters.codec import ClientIndex, from_doc, to_doc
from attune_reporting.domain.episodes import EpisodeSummary
from attune_reporting.domain.facts import AlertFact, CareFact, MeasureFact
from attune_reporting.ports import DataStore, Mark
from attune_shared.mongo import (
    ConcurrentUpdate,
    delete_by_ids,
    find_by_ids,
    insert_clashing,
    insert_new,
    replace_by_ids,
)

LOCK_ID = "materializer"
INDEX_ID = "index"
# Collections of the data database that are not per clinic; `retire` keeps only the pointer.
SHARED_COLLECTIONS = ("report_network", "dirty", "locks", "rejected")


class LockLost(RuntimeError):
    """Our materializer lease expired and someone else holds the lock: run again."""


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class ReportingStore(DataStore):
    """Repository over one reporting data database (the active one, or a rebuild's fresh one): the
    ports of ports.py."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.name = db.name
        self.dirty = db["dirty"]
        self.locks = db["locks"]
        self.network = db["report_network"]
        self.rejected = db["rejected"]

    # ------------------------------------------------------------------ facts

    def _cell(self, kind: str, clinic_id: str, month: str) -> AsyncCollection[dict[str, Any]]:
        return self.db[f"{kind}.{clinic_id}.{month}"]

    async def insert_care(self, *, clinic_id: str, month: str, facts: Sequence[CareFact]) -> tuple[int, int]:
        """Insert care facts; an id already stored is a duplicate, not an error. (inserted, duplicates)."""
        return await insert_new(self._cell("care", clinic_id, month), [to_doc(f) for f in facts])

    async def load_measures(
        self, *, clinic_id: str, month: str, ids: Iterable[str]
    ) -> dict[str, MeasureFact]:
        """Stored measure facts among these ids."""
        wanted = sorted(set(ids))
        coll = self._cell("measures", clinic_id, month)
        return {d["_id"]: from_doc(MeasureFact, d) for d in await find_by_ids(coll, wanted)}

    async def load_alerts(self, *, clinic_id: str, month: str, ids: Iterable[str]) -> dict[str, AlertFact]:
        """Stored alert facts among these ids."""
        wanted = sorted(set(ids))
        coll = self._cell("alerts", clinic_id, month)
        return {d["_id"]: from_doc(AlertFact, d) for d in await find_by_ids(coll, wanted)}

    async def claim_new(
        self, *, kind: str, clinic_id: str, month: str, facts: Sequence[MeasureFact | AlertFact]
    ) -> set[str]:
        """Insert facts whose id is new; return the ids already stored (those were not written)."""
        clashing = await insert_clashing(self._cell(kind, clinic_id, month), [to_doc(f) for f in facts])
        return {facts[i].fact_id for i in clashing}

    async def replace(
        self, *, kind: str, clinic_id: str, month: str, facts: Sequence[MeasureFact | AlertFact]
    ) -> None:
        """Write merged measure or alert facts over the stored ones (new ids go through claim_new).

        The merge was decided on what load_* returned. Every event of one client is on one
        partition of its topic, so one consumer at a time writes a given response or alert: the
        read-merge-write needs no guard in the filter (which FerretDB could not push down anyway).
        """
        await replace_by_ids(self._cell(kind, clinic_id, month), [to_doc(f) for f in facts])

    async def cell_facts(
        self, *, clinic_id: str, month: str
    ) -> tuple[list[CareFact], list[MeasureFact], list[AlertFact]]:
        """Every fact of one cell."""
        care = [from_doc(CareFact, d) async for d in self._cell("care", clinic_id, month).find({})]
        measures = [from_doc(MeasureFact, d) async for d in self._cell("measures", clinic_id, month).find({})]
        alerts = [from_doc(AlertFact, d) async for d in self._cell("alerts", clinic_id, month).find({})]
        return care, measures, alerts

    async def keep_rejected(self, *, docs: Sequence[dict[str, Any]]) -> None:
        """Keep input records that are not valid events, for an operator to inspect."""
        await insert_new(self.rejected, docs)

    # ------------------------------------------------------------------ dirty marks

    async def mark(self, *, marks: Sequence[Mark]) -> None:
        """Record dirty cells and episodes (after their facts are durable)."""
        docs = [
            {
                "_id": m.mark_id,
                "clinic_id": m.clinic_id,
                "months": sorted(m.months),
                # "episode_id|month": FerretDB 1.x stores no nested arrays.
                "episodes": [f"{ep}|{month}" for ep, month in sorted(m.episodes)],
                "at": datetime.now(UTC),
            }
            for m in marks
        ]
        await insert_new(self.dirty, docs)

    async def marks(self, *, limit: int = 500) -> list[Mark]:
        """Pending marks, oldest first."""
        docs = await self.dirty.find({}).limit(limit).to_list()
        return [
            Mark(
                mark_id=d["_id"],
                clinic_id=d["clinic_id"],
                months=frozenset(d.get("months", [])),
                episodes=frozenset(_split(e) for e in d.get("episodes", [])),
            )
            for d in docs
        ]

    async def clear(self, *, mark_ids: Sequence[str]) -> None:
        """Delete processed marks (a mark written meanwhile has another id and stays)."""
        if mark_ids:
            await delete_by_ids(self.dirty, mark_ids)

    async def pending(self) -> int:
        """How many marks wait for the materializer."""
        return await self.dirty.count_documents({})

    # ------------------------------------------------------------------ the materializer's lock

    async def try_lock(self, *, owner: str, lease_s: float) -> bool:
        """Take the materializer lock (insert wins, a duplicate key means taken); break an expired one.

        A lock already held by `owner` is taken over at once: an owner runs one materializer at a
        time, so it is what a run of its own left when the store went away before the unlock.
        """
        now = datetime.now(UTC)
        try:
            await self.locks.insert_one(
                {"_id": LOCK_ID, "owner": owner, "until": now + timedelta(seconds=lease_s)}
            )
            return True
        except DuplicateKeyError:
            held = await self.locks.find_one({"_id": LOCK_ID})
            if held is not None and held.get("owner") == owner:
                try:
                    await self.renew_lock(owner=owner, lease_s=lease_s)
                    return True
                except LockLost:  # broken by another replica in between
                    return False
            if held is not None and _aware(held["until"]) < now:
                await self.locks.delete_one({"_id": LOCK_ID, "owner": held["owner"]})
            return False

    async def renew_lock(self, *, owner: str, lease_s: float) -> None:
        """Extend our lease; raises LockLost if it is no longer ours."""
        result = await self.locks.update_one(
            {"_id": LOCK_ID, "owner": owner},
            {"$set": {"until": datetime.now(UTC) + timedelta(seconds=lease_s)}},
        )
        if result.matched_count != 1:
            raise LockLost("the materializer lease expired and was taken over")

    async def unlock(self, *, owner: str) -> None:
        """Release the lock if we hold it."""
        await self.locks.delete_one({"_id": LOCK_ID, "owner": owner})

    # ------------------------------------------------------------------ episodes and clients

    async def episodes(self, *, clinic_id: str) -> dict[str, EpisodeSummary]:
        """Every episode summary of a clinic."""
        coll = self.db[f"episodes.{clinic_id}"]
        return {d["_id"]: from_doc(EpisodeSummary, d) async for d in coll.find({})}

    async def save_episodes(
        self, *, clinic_id: str, changed: Sequence[EpisodeSummary], removed: Sequence[str]
    ) -> None:
        """Write recomputed summaries (only the materializer, under its lock, writes these)."""
        coll = self.db[f"episodes.{clinic_id}"]
        await replace_by_ids(coll, [to_doc(s) for s in changed])
        if removed:
            await delete_by_ids(coll, removed)

    async def client_index(self, *, clinic_id: str) -> ClientIndex:
        """The clinic's client index (empty for a new clinic)."""
        doc = await self.db[f"clients.{clinic_id}"].find_one({"_id": INDEX_ID})
        return ClientIndex.decode(doc["refs"]) if doc else ClientIndex()

    async def save_client_index(self, *, clinic_id: str, index: ClientIndex, stored: int) -> None:
        """Write an extended index, only if it still has the `stored` length we read (else ConcurrentUpdate)."""
        coll = self.db[f"clients.{clinic_id}"]
        doc = {"_id": INDEX_ID, "n": len(index), "refs": index.encode()}
        if stored == 0:
            try:
                await coll.insert_one(doc)
            except DuplicateKeyError:
                raise ConcurrentUpdate(f"client index of {clinic_id} created concurrently") from None
            return
        result = await coll.replace_one({"_id": INDEX_ID, "n": stored}, doc)
        if result.matched_count != 1:
            raise ConcurrentUpdate(f"client index of {clinic_id} changed concurrently")

    # ------------------------------------------------------------------ the read model

    async def write_cell(self, *, clinic_id: str, month: str, body: bytes, network_body: bytes) -> None:
        """Store a materialized cell: all parts for the clinic's report, the aggregate parts for the network."""
        now = datetime.now(UTC)
        await self.db[f"report.{clinic_id}"].replace_one(
            {"_id": month}, {"body": body, "materialized_at": now}, upsert=True
        )
        await self.network.replace_one(
            {"_id": f"{clinic_id}|{month}"},
            {"clinic_id": clinic_id, "month": month, "body": network_body, "materialized_at": now},
            upsert=True,
        )

    async def clinic_bodies(self, *, clinic_id: str) -> list[tuple[str, bytes]]:
        """(month, body) of every materialized month of a clinic."""
        return [(d["_id"], d["body"]) async for d in self.db[f"report.{clinic_id}"].find({})]

    async def network_bodies(self, *, first: str, last: str) -> list[tuple[str, str, bytes]]:
        """(clinic_id, month, body) of every clinic's months in [first, last]."""
        query = {"month": {"$gte": first, "$lte": last}}
        return [(d["clinic_id"], d["month"], d["body"]) async for d in self.network.find(query)]


def _split(entry: str) -> tuple[str, str]:
    episode_id, _, month = entry.rpartition("|")
    return episode_id, month
