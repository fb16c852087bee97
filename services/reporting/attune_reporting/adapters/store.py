"""reporting's own MongoDB data: facts per cell, episode summaries, the read model, dirty marks, a lock.

A fixed set of collections, whatever the number of clinics and months:

- `care_facts`, `measure_facts`, `alert_facts`: one document per fact and cell, `_id`
  `<clinic>|<month>|<fact id>` (a fact belongs to its cell: an amended response that moves month
  leaves its old cell's fact behind, as the cell's own history), read per cell through the
  `by_cell` index on (`clinic_id`, `month`);
- `episodes`: episode summaries, `_id` `<clinic>|<episode id>`, read per clinic (`by_clinic`);
- `client_index`: each clinic's client index, `_id` the clinic;
- `report_clinic` and `report_network`: the read model, one document per clinic and month
  (`_id` `<clinic>|<month>`), the clinic's report and the network's aggregate parts;
- `dirty`, `locks`, `rejected`: small.

Every read is an `_id` lookup or an equality on indexed fields, so the cost of a batch does not grow
with the data (issue 15). An earlier layout kept one collection per cell and kind
(`care.<clinic>.<month>`, ...): a collection was created for every new cell while the stream ran,
which the FerretDB stand-in cannot survive a crash in the middle of (docs/reliability.md, scenario
8b). A data database in that layout is not read by this code: the report endpoints answer 503 on it
until `attune reporting rebuild` has moved it to this one (`legacy`, set by `ensure_indexes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from attune_reporting.adapters.codec import ClientIndex, from_doc, to_doc
from attune_reporting.domain.episodes import EpisodeSummary
from attune_reporting.domain.facts import AlertFact, CareFact, MeasureFact
from attune_reporting.ports import DataStore, Mark
from attune_shared.mongo import (
    ConcurrentUpdate,
    delete_by_ids,
    ensure_collections,
    find_by_ids,
    find_in,
    insert_clashing,
    insert_new,
    replace_by_ids,
)

Fact = CareFact | MeasureFact | AlertFact
F = TypeVar("F", CareFact, MeasureFact, AlertFact, EpisodeSummary)

LOCK_ID = "materializer"
FACT_COLLECTIONS = {"care": "care_facts", "measures": "measure_facts", "alerts": "alert_facts"}
# The per-cell and per-clinic collections of the earlier layout were named `<kind>.<clinic>...`.
_LEGACY_PREFIXES = ("care.", "measures.", "alerts.", "episodes.", "clients.", "report.")


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
        self.facts = {kind: db[name] for kind, name in FACT_COLLECTIONS.items()}
        self.episode_docs = db["episodes"]
        self.client_indexes = db["client_index"]
        self.clinic_reports = db["report_clinic"]
        self._indexed = False
        # whether the database has collections of the earlier per-cell layout (known after ensure_indexes)
        self.legacy = False

    async def ensure_indexes(self) -> None:
        """Create the collections and the indexes the reads use (once per store; idempotent on the server)."""
        if self._indexed:
            return
        names = await self.db.list_collection_names()
        self.legacy = any(n.startswith(_LEGACY_PREFIXES) for n in names)
        await ensure_collections(
            *self.facts.values(),
            self.episode_docs,
            self.client_indexes,
            self.clinic_reports,
            self.network,
            self.dirty,
            self.locks,
            self.rejected,
        )
        for coll in self.facts.values():
            await coll.create_index([("clinic_id", 1), ("month", 1)], name="by_cell")
            await coll.create_index("episode_id", name="by_episode")
        await self.episode_docs.create_index("clinic_id", name="by_clinic")
        await self.clinic_reports.create_index("clinic_id", name="by_clinic")
        await self.network.create_index("month", name="by_month")
        self._indexed = True

    async def legacy_layout(self) -> bool:
        """Whether this database holds collections of the earlier per-cell layout (rebuild it)."""
        await self.ensure_indexes()
        return self.legacy

    # ------------------------------------------------------------------ facts

    @staticmethod
    def _prefix(clinic_id: str, month: str) -> str:
        return f"{clinic_id}|{month}|"

    def _docs(self, clinic_id: str, month: str, facts: Sequence[Fact]) -> list[dict[str, Any]]:
        prefix = self._prefix(clinic_id, month)
        docs = []
        for f in facts:
            doc = to_doc(f)
            # the cell's keys are the fact's own (pipeline._cells_of groups by them): set them anyway,
            # so the document is found where it was written
            doc.update(_id=prefix + doc["_id"], clinic_id=clinic_id, month=month)
            docs.append(doc)
        return docs

    @staticmethod
    def _fact(cls: type[F], prefix: str, doc: dict[str, Any]) -> F:
        return from_doc(cls, {**doc, "_id": doc["_id"].removeprefix(prefix)})

    async def insert_care(self, *, clinic_id: str, month: str, facts: Sequence[CareFact]) -> tuple[int, int]:
        """Insert care facts; an id already stored is a duplicate, not an error. (inserted, duplicates)."""
        return await insert_new(self.facts["care"], self._docs(clinic_id, month, facts))

    async def _load(
        self, kind: str, cls: type[F], clinic_id: str, month: str, ids: Iterable[str]
    ) -> dict[str, F]:
        prefix = self._prefix(clinic_id, month)
        wanted = [prefix + i for i in sorted(set(ids))]
        docs = await find_by_ids(self.facts[kind], wanted)
        return {d["_id"].removeprefix(prefix): self._fact(cls, prefix, d) for d in docs}

    async def load_measures(
        self, *, clinic_id: str, month: str, ids: Iterable[str]
    ) -> dict[str, MeasureFact]:
        """Stored measure facts among these ids."""
        return await self._load("measures", MeasureFact, clinic_id, month, ids)

    async def load_alerts(self, *, clinic_id: str, month: str, ids: Iterable[str]) -> dict[str, AlertFact]:
        """Stored alert facts among these ids."""
        return await self._load("alerts", AlertFact, clinic_id, month, ids)

    async def claim_new(
        self, *, kind: str, clinic_id: str, month: str, facts: Sequence[MeasureFact | AlertFact]
    ) -> set[str]:
        """Insert facts whose id is new; return the ids already stored (those were not written)."""
        clashing = await insert_clashing(self.facts[kind], self._docs(clinic_id, month, facts))
        return {facts[i].fact_id for i in clashing}

    async def replace(
        self, *, kind: str, clinic_id: str, month: str, facts: Sequence[MeasureFact | AlertFact]
    ) -> None:
        """Write merged measure or alert facts over the stored ones (new ids go through claim_new).

        The merge was decided on what load_* returned. Every event of one client is on one
        partition of its topic, so one consumer at a time writes a given response or alert: the
        read-merge-write needs no guard in the filter.
        """
        await replace_by_ids(self.facts[kind], self._docs(clinic_id, month, facts))

    async def cell_facts(
        self, *, clinic_id: str, month: str
    ) -> tuple[list[CareFact], list[MeasureFact], list[AlertFact]]:
        """Every fact of one cell (one indexed equality per kind)."""
        prefix = self._prefix(clinic_id, month)
        cell = {"clinic_id": clinic_id, "month": month}
        care = [self._fact(CareFact, prefix, d) async for d in self.facts["care"].find(cell)]
        measures = [self._fact(MeasureFact, prefix, d) async for d in self.facts["measures"].find(cell)]
        alerts = [self._fact(AlertFact, prefix, d) async for d in self.facts["alerts"].find(cell)]
        return care, measures, alerts

    async def episode_facts(
        self, *, clinic_id: str, episode_ids: Sequence[str]
    ) -> dict[str, tuple[list[CareFact], list[MeasureFact], list[AlertFact]]]:
        """Every fact of these episodes in the clinic's cells, by episode (`$in` on the indexed
        `episode_id`; facts of the same episode id in another clinic's cells are not this clinic's)."""
        out: dict[str, tuple[list[CareFact], list[MeasureFact], list[AlertFact]]] = {}

        async def of(kind: str, cls: type[F]) -> list[F]:
            docs = await find_in(self.facts[kind], "episode_id", episode_ids)
            return [
                self._fact(cls, self._prefix(clinic_id, d["month"]), d)
                for d in docs
                if d["clinic_id"] == clinic_id
            ]

        for care in await of("care", CareFact):
            out.setdefault(care.episode_id, ([], [], []))[0].append(care)
        for measure in await of("measures", MeasureFact):
            out.setdefault(measure.episode_id, ([], [], []))[1].append(measure)
        for alert in await of("alerts", AlertFact):
            out.setdefault(alert.episode_id, ([], [], []))[2].append(alert)
        return out

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
        prefix = f"{clinic_id}|"
        found = [
            self._fact(EpisodeSummary, prefix, d)
            async for d in self.episode_docs.find({"clinic_id": clinic_id})
        ]
        return {s.episode_id: s for s in found}

    async def save_episodes(
        self, *, clinic_id: str, changed: Sequence[EpisodeSummary], removed: Sequence[str]
    ) -> None:
        """Write recomputed summaries (only the materializer, under its lock, writes these)."""
        prefix = f"{clinic_id}|"
        docs = [to_doc(s) for s in changed]
        for doc in docs:
            doc.update(_id=prefix + doc["_id"], clinic_id=clinic_id)
        await replace_by_ids(self.episode_docs, docs)
        if removed:
            await delete_by_ids(self.episode_docs, [prefix + r for r in removed])

    async def client_index(self, *, clinic_id: str) -> ClientIndex:
        """The clinic's client index (empty for a new clinic)."""
        doc = await self.client_indexes.find_one({"_id": clinic_id})
        return ClientIndex.decode(doc["refs"]) if doc else ClientIndex()

    async def save_client_index(self, *, clinic_id: str, index: ClientIndex, stored: int) -> None:
        """Write an extended index, only if it still has the `stored` length we read (else ConcurrentUpdate)."""
        coll = self.client_indexes
        doc = {"_id": clinic_id, "n": len(index), "refs": index.encode()}
        if stored == 0:
            try:
                await coll.insert_one(doc)
            except DuplicateKeyError:
                raise ConcurrentUpdate(f"client index of {clinic_id} created concurrently") from None
            return
        result = await coll.replace_one({"_id": clinic_id, "n": stored}, doc)
        if result.matched_count != 1:
            raise ConcurrentUpdate(f"client index of {clinic_id} changed concurrently")

    # ------------------------------------------------------------------ the read model

    async def write_cell(self, *, clinic_id: str, month: str, body: bytes, network_body: bytes) -> None:
        """Store a materialized cell: all parts for the clinic's report, the aggregate parts for the network."""
        now = datetime.now(UTC)
        await self.clinic_reports.replace_one(
            {"_id": f"{clinic_id}|{month}"},
            {"clinic_id": clinic_id, "month": month, "body": body, "materialized_at": now},
            upsert=True,
        )
        await self.network.replace_one(
            {"_id": f"{clinic_id}|{month}"},
            {"clinic_id": clinic_id, "month": month, "body": network_body, "materialized_at": now},
            upsert=True,
        )

    async def clinic_bodies(self, *, clinic_id: str) -> list[tuple[str, bytes]]:
        """(month, body) of every materialized month of a clinic."""
        found = self.clinic_reports.find({"clinic_id": clinic_id})
        return [(d["month"], d["body"]) async for d in found]

    async def network_bodies(self, *, first: str, last: str) -> list[tuple[str, str, bytes]]:
        """(clinic_id, month, body) of every clinic's months in [first, last]."""
        query = {"month": {"$gte": first, "$lte": last}}
        return [(d["clinic_id"], d["month"], d["body"]) async for d in self.network.find(query)]


def _split(entry: str) -> tuple[str, str]:
    episode_id, _, month = entry.rpartition("|")
    return episode_id, month
