"""What intake remembers of FHIR resources, so later bundles can reference them (intake's database:
the MRN sits here as it does in `clients`, and never leaves intake)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pymongo import ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from attune_shared.mongo import bulk_write, find_by_ids


class FhirStore:
    """`fhir_resources`: one document per (source, "Type/id") with the facts its mapping kept."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.resources = db["fhir_resources"]

    @staticmethod
    def _id(source: str, key: str) -> str:
        return f"{source}|{key}"

    async def load(self, *, source: str, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The facts known of these resources ("Type/id" -> facts); unknown ones are missing."""
        wanted = {self._id(source, k): k for k in keys}
        if not wanted:
            return {}
        docs = await find_by_ids(self.resources, list(wanted))
        return {wanted[d["_id"]]: d.get("facts", {}) for d in docs}

    async def save(self, *, source: str, facts: Mapping[str, dict[str, Any]]) -> None:
        """Remember these resources' facts (replacing what was known)."""
        now = datetime.now(UTC)
        ops = [
            ReplaceOne({"_id": self._id(source, k)}, {"facts": f, "updated_at": now}, upsert=True)
            for k, f in facts.items()
        ]
        await bulk_write(self.resources, ops)
