"""The active data database: a pointer document in reporting's control database.

A rebuild folds every input again into a fresh database and then swaps the pointer; FerretDB cannot
rename collections across databases, and a pointer swap is one single-document write. The service
reads the pointer at the start of every batch and every report, so a swap takes effect at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient

from attune_reporting.adapters.store import ReportingStore
from attune_reporting.ports import Databases

POINTER_ID = "active"
POINTER_COLLECTION = "pointer"


class ActiveDatabase(Databases):
    """Resolves and swaps the data database; generation 0 is the control database itself."""

    def __init__(self, client: AsyncMongoClient[dict[str, Any]], control: str) -> None:
        self.client = client
        self.control = control
        self.pointer = client[control][POINTER_COLLECTION]
        self._stores: dict[str, ReportingStore] = {}

    async def current(self) -> tuple[str, int]:
        """(database name, generation) in use."""
        doc = await self.pointer.find_one({"_id": POINTER_ID})
        if doc is None:
            return self.control, 0
        return str(doc["database"]), int(doc["generation"])

    def store_for(self, name: str) -> ReportingStore:
        """A (cached) store over a data database."""
        if name not in self._stores:
            self._stores[name] = ReportingStore(self.client[name])
        return self._stores[name]

    async def store(self) -> ReportingStore:
        """The store over the active data database."""
        name, _ = await self.current()
        store = self.store_for(name)
        await store.ensure_indexes()
        return store

    async def switch(self, *, database: str, generation: int) -> None:
        """Make `database` the active one."""
        await self.pointer.replace_one(
            {"_id": POINTER_ID},
            {"database": database, "generation": generation, "switched_at": datetime.now(UTC)},
            upsert=True,
        )

    async def retire(self, name: str) -> None:
        """Delete a data database no longer in use (the control database keeps its pointer)."""
        self._stores.pop(name, None)
        if name != self.control:
            await self.client.drop_database(name)
            return
        db = self.client[name]
        for coll in await db.list_collection_names():
            if coll != POINTER_COLLECTION:
                await db.drop_collection(coll)
