"""intake's own MongoDB data: receipts (de-duplication), clients and episodes, dead letters.

This database is the only place outside the DLQ topic where PHI may sit: each client's MRN (for the
one audited re-identification door, `GET /v1/clients/{client_ref}`), the audit of those calls, and
raw dead letters, kept for the admin role alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from attune_intake.domain.episodes import ClientState, Episode
from attune_intake.ports import ConsumerStore, ReidentificationStore, SubmissionStore
from attune_shared.events import DeadLetter
from attune_shared.mongo import (
    ConcurrentUpdate,
    ensure_collections,
    find_by_ids,
    insert_clashing,
    keep_dead_letters,
    replace_versioned,
)


def receipt_key(source: str, event_id: str) -> str:
    """The de-duplication key of an inbound event."""
    return f"{source}|{event_id}"


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _client_doc(state: ClientState) -> dict[str, Any]:
    return {
        "_id": state.client_ref,
        "clinic_id": state.clinic_id,
        "mrn": state.mrn,
        "version": state.version + 1,
        "episodes": [
            {
                "episode_id": e.episode_id,
                "opened_on": _day(e.opened_on),
                "status": e.status,
                "clinician_id": e.clinician_id,
                "closed_on": _day(e.closed_on),
                "close_reason": e.close_reason,
            }
            for e in state.episodes
        ],
        "appointments": [{"id": k, "start": v} for k, v in state.appointments.items()],
        "updated_at": datetime.now(UTC),
    }


def _client_state(doc: dict[str, Any]) -> ClientState:
    episodes = tuple(
        Episode(
            episode_id=e["episode_id"],
            opened_on=date.fromisoformat(e["opened_on"]),
            status=e["status"],
            clinician_id=e.get("clinician_id"),
            closed_on=date.fromisoformat(e["closed_on"]) if e.get("closed_on") else None,
            close_reason=e.get("close_reason"),
        )
        for e in doc.get("episodes", [])
    )
    appointments = {a["id"]: a["start"] for a in doc.get("appointments", [])}
    return ClientState(
        client_ref=doc["_id"],
        clinic_id=doc["clinic_id"],
        mrn=doc.get("mrn"),
        episodes=episodes,
        appointments=appointments,
        version=doc.get("version", 0),
    )


class IntakeStore(ConsumerStore, SubmissionStore, ReidentificationStore):
    """Repository over intake's database (the ports of ports.py)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], *, remember: int = 20_000) -> None:
        self.db = db
        self.receipts = db["receipts"]
        self.clients = db["clients"]
        self.dead_letters = db["dead_letters"]
        self.reidentifications = db["reidentifications"]
        # Client states as last read or written here. Each client's events are on one partition,
        # so while this process keeps its partitions nobody else writes those clients; the cache is
        # dropped at every rebalance (forget), and every write still checks the stored version.
        self.known: dict[str, ClientState] = {}
        self.remember = remember

    def forget(self) -> None:
        """Drop the remembered client states (the partitions this process owns are changing)."""
        self.known.clear()

    def _keep(self, states: Iterable[ClientState]) -> None:
        states = list(states)
        if len(self.known) + len(states) > self.remember:
            self.known.clear()
        self.known.update((s.client_ref, s) for s in states)

    async def ensure_indexes(self) -> None:
        """Indexes for listing dead letters by time and code."""
        await ensure_collections(
            self.receipts,
            self.clients,
            self.dead_letters,
            self.reidentifications,
            self.db["fhir_resources"],  # attune_intake.fhir.store's
        )
        await self.dead_letters.create_index([("received_at", DESCENDING)], name="by_time")
        await self.dead_letters.create_index([("error.code", 1), ("received_at", DESCENDING)], name="by_code")
        await self.reidentifications.create_index([("at", DESCENDING)], name="by_time")

    async def seen(self, *, keys: Iterable[str]) -> set[str]:
        """Which receipt keys are already recorded."""
        keys = list(set(keys))
        if not keys:
            return set()
        return {d["_id"] for d in await find_by_ids(self.receipts, keys, {"_id": 1})}

    async def load_clients(self, *, client_refs: Iterable[str]) -> dict[str, ClientState]:
        """Current state of these clients (absent ones are new)."""
        refs = set(client_refs)
        found = {r: self.known[r] for r in refs if r in self.known}
        missing = sorted(refs - found.keys())
        loaded = {d["_id"]: _client_state(d) for d in await find_by_ids(self.clients, missing)}
        self._keep(loaded.values())
        return found | loaded

    async def save_clients(self, *, states: Sequence[ClientState]) -> None:
        """Write changed clients with an optimistic version check (single writer per client)."""
        try:
            await self._save(states)
        except BaseException:
            for s in states:
                self.known.pop(s.client_ref, None)
            raise
        self._keep(replace(s, version=s.version + 1) for s in states)

    async def _save(self, states: Sequence[ClientState]) -> None:
        new = [_client_doc(s) for s in states if s.version == 0]
        old = [s for s in states if s.version > 0]
        if await insert_clashing(self.clients, new):
            raise ConcurrentUpdate("a new client was created concurrently")
        if old:
            matched = await replace_versioned(self.clients, [(_client_doc(s), s.version) for s in old])
            if matched != len(old):
                raise ConcurrentUpdate(f"{len(old) - matched} client(s) changed concurrently")

    async def claim(self, *, receipts: Sequence[dict[str, Any]]) -> set[int]:
        """Record receipts before their events are processed; returns the positions of duplicates.

        Each receipt names the record that claimed it (`origin`: topic, partition, offset). A key
        already claimed by another record is a duplicate sent by the EHR. A key claimed by this
        same record is a replay after a crash or a retried batch, whose effects may not all be
        durable yet, so it is processed again (its outputs have the same ids as before). The usual
        batch costs one insert and no read: receipts are only read back for keys that clash.
        """
        clashing = await insert_clashing(self.receipts, receipts)
        if not clashing:
            return set()
        keys = [receipts[i]["_id"] for i in clashing]
        held = {d["_id"]: d.get("origin") for d in await find_by_ids(self.receipts, keys, {"origin": 1})}
        # A second copy in the same batch clashes with the first one's fresh receipt: a duplicate.
        return {i for i in clashing if held.get(receipts[i]["_id"]) != receipts[i]["origin"]}

    async def keep_dead_letters(self, *, letters: Sequence[DeadLetter]) -> None:
        """Keep dead letters for `attune dlq list|replay` (a re-consumed record keeps its first copy)."""
        await keep_dead_letters(self.dead_letters, letters)

    async def list_dead_letters(
        self, *, code: str | None = None, limit: int = 100, include_replayed: bool = False
    ) -> list[dict[str, Any]]:
        """Newest first."""
        query: dict[str, Any] = {}
        if code:
            query["error.code"] = code
        if not include_replayed:
            query["replayed_at"] = None
        return [d async for d in self.dead_letters.find(query).sort("received_at", DESCENDING).limit(limit)]

    async def mark_replayed(self, *, dlq_ids: Sequence[str]) -> None:
        """Note that these dead letters were re-submitted."""
        await self.dead_letters.update_many(
            {"_id": {"$in": list(dlq_ids)}}, {"$set": {"replayed_at": datetime.now(UTC)}}
        )

    async def client(self, *, client_ref: str) -> ClientState | None:
        """One client's stored state, read from the store (never from this process's memory)."""
        doc = await self.clients.find_one({"_id": client_ref})
        return None if doc is None else _client_state(doc)

    async def audit_reidentification(self, *, entry: dict[str, Any]) -> None:
        """Record one call of the re-identification door (before any MRN is returned)."""
        await self.reidentifications.insert_one(entry)

    async def list_reidentifications(
        self, *, client_ref: str | None = None, who: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Audit rows of the re-identification door, newest first."""
        query = {k: v for k, v in {"client_ref": client_ref, "who": who}.items() if v is not None}
        cursor = self.reidentifications.find(query).sort("at", DESCENDING).limit(limit)
        return [d async for d in cursor]
