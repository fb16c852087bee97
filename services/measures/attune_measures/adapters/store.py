"""measures' own MongoDB data: every response (its current version and what was published), dead letters.

`responses` holds one document per `(source, response_id)` (`_id` = "source|response_id"): the version
kept (items, status, times), its group `series_key` (episode + instrument, indexed: one group is one
series), and the last published revision, fingerprint and scores. Times are kept as the ISO text they
arrived in, so a stored version re-serialises exactly as it did when it was first published.

`series` lists, per `series_key`, the responses ever stored in that group (`members`), so a batch
reads its groups by `_id` alone (designed when the local store, FerretDB on SQLite, served only a lone
`_id` equality from an index; on MongoDB and on the PostgreSQL stand-in a find on `series_key` is
indexed too, and whether it would cost less is for a measurement to say). A member whose stored `series_key` has
since changed (an amendment moved it) is filtered out on reading; memberships are written before the
responses, so a crash in between leaves at most a member not stored yet, which reads as absent.

`response_keys` holds the `_id` of every response ever stored, claimed before the response is
written. A batch inserts the keys of the responses it does not hold already: a key that goes in was
never stored, so it needs no lookup (a backfill's responses are nearly all new, and one insert of a
batch's keys costs far less than a lookup each); only a key that clashes (an amendment, a replay,
or a claim whose write a crash lost) is looked up.

The read API (api.py) reads an episode the same way, by `_id` alone: its groups' `series` documents
(one per instrument), then their members. A caseload starts from one find on `clinician_id`
(indexed on MongoDB and on the PostgreSQL stand-in). `audit` records every
read of the API (who, what, when, outcome), refusals included.

Each series write also sets a fresh `stamp`. The store keeps, in memory, the groups this process
wrote last and their stamps: while a group's stored stamp is still the one written here, nobody else
has written it since and its members are taken from memory, so a batch reads one `series` document
per group instead of every member. Any other stamp (another replica, a crash, a restart) means the
group is read from the store again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from attune_measures.dead_letters import MeasuresDeadLetter
from attune_measures.domain.versions import ResponseVersion, Tracked, shared
from attune_measures.ports import Loaded, ResponseQueries, ResponseStore
from attune_shared.instruments import INSTRUMENTS
from attune_shared.mongo import (
    ConcurrentUpdate,
    bulk_write,
    find_by_ids,
    insert_clashing,
    keep_dead_letters,
    replace_versioned,
)


def response_doc(tracked: Tracked, version: int) -> dict[str, Any]:
    """The stored form of a tracked response (`version` is the document's new write counter)."""
    r = tracked.response
    return {
        "_id": r.key,
        "source": r.source,
        "response_id": r.response_id,
        "source_event_id": r.source_event_id,
        "clinic_id": r.clinic_id,
        "client_ref": r.client_ref,
        "episode_id": r.episode_id,
        "series_key": r.series_key,
        "instrument": r.instrument,
        "respondent": r.respondent,
        "clinician_id": r.clinician_id,
        "appointment_id": r.appointment_id,
        "status": r.status,
        "items": list(r.items),
        "occurred_at": r.occurred_at.isoformat(),
        "session_at": r.session_at.isoformat(),
        "session_ts": r.session_at.astimezone(UTC),  # a BSON date, for people and sorted queries
        "scores": dict(tracked.scores) if tracked.scores is not None else None,
        "revision": tracked.revision,
        "fingerprint": tracked.fingerprint,
        "version": version,
        "updated_at": datetime.now(UTC),
    }


def tracked_from_doc(doc: Mapping[str, Any]) -> Tracked:
    """A tracked response from its stored form (repeated strings shared: see versions.shared)."""
    response = ResponseVersion(
        source=shared(doc["source"]),
        response_id=doc["response_id"],
        source_event_id=doc["source_event_id"],
        clinic_id=shared(doc["clinic_id"]),
        client_ref=shared(doc["client_ref"]),
        episode_id=shared(doc["episode_id"]),
        instrument=shared(doc["instrument"]),
        respondent=shared(doc["respondent"]),
        clinician_id=shared(doc["clinician_id"]),
        appointment_id=doc.get("appointment_id"),
        status=shared(doc["status"]),
        items=tuple(doc["items"]),
        occurred_at=datetime.fromisoformat(doc["occurred_at"]),
        session_at=datetime.fromisoformat(doc["session_at"]),
    )
    scores = doc.get("scores")
    return Tracked(
        response,
        revision=doc["revision"],
        fingerprint=doc.get("fingerprint"),
        scores={shared(k): v for k, v in scores.items()} if scores is not None else None,
    )


@dataclass
class _Written:
    """Groups this process wrote last: stamp and members, and the members' stored versions.

    At most about `limit` responses are held. A full memory takes no new group but keeps updating
    the ones it holds: a backfill touches every group once per simulated week, so a memory that
    dropped everything when full (or dropped the least recently written) would never hold a group
    until its next turn once the groups outgrow it, and would read every member back each time;
    keeping the first groups serves about `limit` / total of the turns. Groups that keep growing
    past the limit give way from the most recently remembered end.
    """

    limit: int
    stamps: dict[str, str] = field(default_factory=dict)
    members: dict[str, frozenset[str]] = field(default_factory=dict)
    docs: dict[str, tuple[Tracked, int]] = field(default_factory=dict)

    def forget(self, series: Iterable[str]) -> None:
        for s in series:
            self.stamps.pop(s, None)
            for key in self.members.pop(s, frozenset()):
                self.docs.pop(key, None)

    def remember(self, series: str, stamp: str, members: Mapping[str, tuple[Tracked, int]]) -> None:
        held = series in self.members
        self.forget([series])
        if not held and len(self.docs) + len(members) > self.limit:
            return
        self.stamps[series] = stamp
        self.members[series] = frozenset(members)
        self.docs.update(members)
        while len(self.docs) > self.limit and len(self.members) > 1:
            self.forget([next(reversed(self.members))])


class MeasuresStore(ResponseStore, ResponseQueries):
    """Repository over measures' database (the ports of ports.py)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], *, remember: int = 35_000) -> None:
        self.db = db
        self.responses = db["responses"]
        self.series = db["series"]
        self.keys = db["response_keys"]
        self.written = _Written(limit=remember)
        self.dead_letters = db["dead_letters"]
        self.audit_log = db["audit"]

    async def ensure_indexes(self) -> None:
        """A group's responses by session time, a clinician's by clinic; dead letters by time and code."""
        await self.responses.create_index(
            [("series_key", ASCENDING), ("session_ts", ASCENDING)], name="by_series"
        )
        await self.responses.create_index([("client_ref", ASCENDING)], name="by_client")
        await self.responses.create_index(
            [("clinician_id", ASCENDING), ("clinic_id", ASCENDING)], name="by_clinician"
        )
        await self.audit_log.create_index([("at", DESCENDING)], name="by_time")
        await self.dead_letters.create_index([("received_at", DESCENDING)], name="by_time")
        await self.dead_letters.create_index([("error.code", 1), ("received_at", DESCENDING)], name="by_code")

    async def load(self, *, keys: Iterable[str] = (), series_keys: Iterable[str] = ()) -> Loaded:
        """These responses and every current member of these groups.

        The keys not held already are claimed in `response_keys` first (see the module docstring),
        so the responses looked up are the members of groups not remembered and the claimed keys
        that clashed.
        """
        key_set, series_set = set(keys), set(series_keys)
        loaded = Loaded({}, {})
        if not key_set and not series_set:
            return loaded
        groups = await find_by_ids(self.series, sorted(series_set))
        known = self.written
        members: set[str] = set()
        for g in groups:
            if g.get("stamp") is not None and known.stamps.get(g["_id"]) == g["stamp"]:
                for key in known.members[g["_id"]]:
                    loaded.book[key], loaded.versions[key] = known.docs[key]
            else:
                members.update(g.get("members", []))
        unknown = sorted(key_set - loaded.book.keys() - members)
        clashing = await insert_clashing(self.keys, [{"_id": k} for k in unknown])
        stored = {unknown[i] for i in clashing}
        for doc in await find_by_ids(self.responses, sorted(stored | members)):
            if doc["_id"] in key_set or doc["series_key"] in series_set:
                loaded.book[doc["_id"]] = tracked_from_doc(doc)
                loaded.versions[doc["_id"]] = int(doc.get("version", 0))
        return loaded

    async def save(
        self,
        *,
        changed: Sequence[Tracked],
        versions: Mapping[str, int],
        book: Mapping[str, Tracked] | None = None,
        series: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        """Write changed responses: new ones inserted, known ones replaced if nobody wrote them meanwhile.

        `book` is every response the batch held (all members of the groups it touched); with it the
        written groups are remembered (see the module docstring). `series` sets the `scores` of those
        outcome groups (what a trajectory fit reads), in the same write as their members.
        """
        series = series or {}
        groups: dict[str, list[str]] = {}
        for t in changed:
            groups.setdefault(t.response.series_key, []).append(t.response.key)
        stamps = {s: uuid.uuid4().hex for s in groups}
        self.written.forget(groups)
        ops = [
            UpdateOne(
                {"_id": s},
                {
                    "$addToSet": {"members": {"$each": sorted(k)}},
                    "$set": {"stamp": stamps[s], **({"scores": list(series[s])} if s in series else {})},
                },
                upsert=True,
            )
            for s, k in sorted(groups.items())
        ]
        # A group an amendment moved a member out of: only its scores change.
        ops += [
            UpdateOne({"_id": s}, {"$set": {"scores": list(v)}})
            for s, v in sorted(series.items())
            if s not in groups
        ]
        if ops:
            await bulk_write(self.series, ops)
        new = [response_doc(t, 1) for t in changed if t.response.key not in versions]
        old = [t for t in changed if t.response.key in versions]
        if await insert_clashing(self.responses, new):
            raise ConcurrentUpdate("a response was stored concurrently")
        if old:
            items = [(response_doc(t, versions[t.response.key] + 1), versions[t.response.key]) for t in old]
            matched = await replace_versioned(self.responses, items)
            if matched != len(old):
                raise ConcurrentUpdate(f"{len(old) - matched} response(s) changed concurrently")
        if book is not None:
            written = {t.response.key: t for t in changed}
            by_series: dict[str, dict[str, tuple[Tracked, int]]] = {s: {} for s in stamps}
            for k, t in book.items():
                if k in written or k in versions:
                    now = written.get(k, t)
                    members = by_series.get(now.response.series_key)
                    if members is not None:
                        members[k] = (now, versions.get(k, 0) + 1 if k in written else versions[k])
            for s, stamp in stamps.items():
                self.written.remember(s, stamp, by_series[s])

    async def keep_dead_letters(self, *, letters: Sequence[MeasuresDeadLetter]) -> None:
        """Keep dead letters for an operator (a re-consumed record keeps its first copy)."""
        await keep_dead_letters(self.dead_letters, letters)

    async def episode_responses(self, *, episode_ids: Iterable[str]) -> dict[str, list[Tracked]]:
        """Every response of these episodes, by episode (an episode without any is absent).

        Read by `_id` alone: the `series` document of each instrument, then its members; a member that
        an amendment moved to another group is kept only if it moved within these episodes.
        """
        wanted = set(episode_ids)
        groups = await find_by_ids(
            self.series, [f"{e}:{i}" for e in sorted(wanted) for i in INSTRUMENTS], {"members": 1}
        )
        members = sorted({m for g in groups for m in g.get("members", [])})
        out: dict[str, list[Tracked]] = {}
        for doc in await find_by_ids(self.responses, members):
            if doc["episode_id"] in wanted:
                out.setdefault(doc["episode_id"], []).append(tracked_from_doc(doc))
        return out

    async def clinician_episodes(
        self, *, clinician_id: str, clinics: Sequence[str] | None
    ) -> dict[str, datetime]:
        """The episodes with a response naming this clinician (in these clinics; None: all), each with
        the latest session time of those responses."""
        if clinics is not None and not clinics:
            return {}
        query: dict[str, Any] = {"clinician_id": clinician_id}
        if clinics is not None:
            query["clinic_id"] = clinics[0] if len(clinics) == 1 else {"$in": list(clinics)}
        out: dict[str, datetime] = {}
        async for doc in self.responses.find(query, {"_id": 0, "episode_id": 1, "session_at": 1}):
            at = datetime.fromisoformat(doc["session_at"])
            if doc["episode_id"] not in out or at > out[doc["episode_id"]]:
                out[doc["episode_id"]] = at
        return out

    async def audit(self, *, entry: Mapping[str, Any]) -> None:
        """Record one read of the API (or its refusal)."""
        await self.audit_log.insert_one(dict(entry))
