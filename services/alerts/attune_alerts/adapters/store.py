"""alerts' own MongoDB data (see README "Store design").

- `episodes`: one document per episode: the rules' EpisodeState (as JSON text: its keys contain dots,
  which FerretDB refuses as field names), the open alert of each rule, context, an optimistic version.
- `alert_events`: every alert change, once, `_id = "<alert_id>:<sequence>"` plus a unique `cause_key`.
  Inserting it is the claim of that sequence number: of two writers (consumer, API, escalation sweep,
  another replica) only one gets it, the other re-reads and retries. It holds the exact event body,
  so a replay re-publishes the same event, and it is the alert's history.
- `alerts`: the current state of each alert, projected from `alert_events` (written only forward:
  `sequence` must grow), for the API and the sweeps.
- `escalation_claims`, `delivery_claims`: claim-by-insert of one escalation level / one delivery
  attempt, so two replicas never both do it.
- `deliveries`: the webhook and e-mail outbox, `audit`: who read or changed what,
  `clinic_clocks`: the newest event time per episode (ATTUNE_ALERTS_CLOCK=event), and
  `partition_clocks`: the newest of them per input partition (the episodes' `partition`), which the
  sweep's event clock reads (a few documents) instead of sorting every episode's clock.

The store remembers the episodes and clocks it last read or wrote (bounded), so a backfill does not
read each episode back at every batch. A remembered episode is still written with its version
checked, so a change made elsewhere (the API on any replica) fails that check and the batch is
retried from the store; the consumer drops the memory at every rebalance (another replica may have
owned the partition meanwhile) and after any conflict. Clocks only move forward, so a remembered
clock is a lower bound of the stored one; it is exact while the partition stays ours.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import DESCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from attune_alerts.domain.lifecycle import EpisodeContext, StoredAlert, now_ms
from attune_alerts.domain.state_codec import state_from_dict, state_to_dict
from attune_alerts.ports import (
    AlertQueries,
    ChangeLog,
    ChangeRecord,
    ConsumerStore,
    Current,
    EpisodeRow,
    Outbox,
    SweepStore,
)
from attune_shared.events import Alert, AlertEvent
from attune_shared.mongo import (
    ConcurrentUpdate,
    bulk_write,
    ensure_collections,
    find_by_ids,
    find_in,
    insert_clashing,
    insert_new,
    replace_newer,
    replace_versioned,
    update_by_ids,
)

# The `partition_clocks` document of episodes stored without a partition (not consumed from Kafka).
NO_PARTITION = "-"
# The one raised at every start to the newest episode clock (a store older than `partition_clocks`,
# or episode clocks written by an earlier release during a rolling upgrade).
EARLIER = "earlier"

# ---------------------------------------------------------------- episodes


def _ms(t: datetime) -> datetime:
    """A time as the store keeps it (BSON dates hold milliseconds), so remembered equals re-read."""
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def _episode_doc(row: EpisodeRow) -> dict[str, Any]:
    state = row.state
    return {
        "_id": row.ctx.episode_id,
        "clinic_id": row.ctx.clinic_id,
        "client_ref": row.ctx.client_ref,
        "clinician_id": row.ctx.clinician_id,
        "partition": row.partition,
        "state_json": json.dumps(state_to_dict(state), separators=(",", ":")),
        "open_alerts": [{"rule_id": r, "alert_id": a} for r, a in sorted(row.open_alert_ids.items())],
        # Denormalised for the inactivity sweep's query.
        "episode_open": state.episode_open,
        "last_attended_at": state.last_attended_at,
        "dropout_open": state.alert("engagement.dropout-risk") is not None,
        "version": row.version + 1,
        "updated_at": now_ms(),
    }


def _episode_row(doc: Mapping[str, Any]) -> EpisodeRow:
    return EpisodeRow(
        ctx=EpisodeContext(doc["_id"], doc["clinic_id"], doc["client_ref"], doc.get("clinician_id")),
        state=state_from_dict(json.loads(doc["state_json"])),
        open_alert_ids={o["rule_id"]: o["alert_id"] for o in doc.get("open_alerts", [])},
        version=int(doc["version"]),
        partition=doc.get("partition"),
    )


# ---------------------------------------------------------------- alerts and their changes


def alert_doc(s: StoredAlert) -> dict[str, Any]:
    """The `alerts` document of an alert."""
    return {
        "_id": s.alert_id,
        **s.alert.model_dump(),
        "sequence": s.sequence,
        "origin_event_id": s.origin_event_id,
        "tracking": dict(s.tracking),
        "notes": [dict(n) for n in s.notes],
        "resolved_by": s.resolved_by,
        "updated_at": now_ms(),
    }


def stored_from_doc(doc: Mapping[str, Any]) -> StoredAlert:
    """Read back an `alerts` document."""
    alert = Alert.model_validate({k: doc.get(k) for k in Alert.model_fields})
    return StoredAlert(
        alert=alert,
        sequence=int(doc["sequence"]),
        origin_event_id=doc["origin_event_id"],
        tracking=dict(doc.get("tracking") or {}),
        notes=tuple(doc.get("notes") or ()),
        resolved_by=doc.get("resolved_by"),
    )


def _record_doc(r: ChangeRecord) -> dict[str, Any]:
    s = r.stored
    return {
        "_id": r.record_id,
        "alert_id": s.alert_id,
        "seq": s.sequence,
        "cause_key": r.cause_key,
        "origin_event_id": r.origin_event_id,
        "event_id": r.event_id,
        "event_type": r.event_type,
        "body": r.body,
        "extras": {
            "origin_event_id": s.origin_event_id,
            "tracking": dict(s.tracking),
            "notes": [dict(n) for n in s.notes],
            "resolved_by": s.resolved_by,
        },
        "recorded_at": r.recorded_at,
        "published_at": None,
    }


def _record(doc: Mapping[str, Any]) -> ChangeRecord:
    event = AlertEvent.model_validate_json(doc["body"])
    extras = doc["extras"]
    stored = StoredAlert(
        alert=event.alert,
        sequence=int(doc["seq"]),
        origin_event_id=extras["origin_event_id"],
        tracking=dict(extras.get("tracking") or {}),
        notes=tuple(extras.get("notes") or ()),
        resolved_by=extras.get("resolved_by"),
    )
    return ChangeRecord(
        stored=stored,
        event_type=doc["event_type"],
        event_id=doc["event_id"],
        body=doc["body"],
        cause_key=doc["cause_key"],
        origin_event_id=doc.get("origin_event_id"),
        recorded_at=doc["recorded_at"],
        published=doc.get("published_at") is not None,
    )


class AlertsStore(ConsumerStore, ChangeLog, SweepStore, Outbox, AlertQueries):
    """Repository over alerts' database (the ports of ports.py)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], *, remember: int = 20_000) -> None:
        self.db = db
        self.remember = remember
        self.known_episodes: dict[str, dict[str, Any]] = {}  # episode_id -> its document, as stored
        self.known_clocks: dict[str, datetime] = {}
        self.known_partition_clocks: dict[str, datetime] = {}
        self.known_marks: dict[str, int] = {}
        self.episodes = db["episodes"]
        self.alerts = db["alerts"]
        self.changes = db["alert_events"]
        self.escalation_claims = db["escalation_claims"]
        self.deliveries = db["deliveries"]
        self.delivery_claims = db["delivery_claims"]
        self.audit_log = db["audit"]
        self.clocks = db["clinic_clocks"]
        self.partition_clocks = db["partition_clocks"]
        self.input_marks_coll = db["input_marks"]

    async def ensure_indexes(self) -> None:
        """Every collection, uniqueness of change causes, and the indexes the API, sweeps and outbox query by."""
        await ensure_collections(
            self.episodes,
            self.alerts,
            self.changes,
            self.escalation_claims,
            self.deliveries,
            self.delivery_claims,
            self.audit_log,
            self.clocks,
            self.partition_clocks,
            self.input_marks_coll,
        )
        await self.changes.create_index("cause_key", unique=True, name="cause_unique")
        await self.changes.create_index([("alert_id", 1), ("seq", 1)], name="by_alert")
        await self.changes.create_index("origin_event_id", name="by_origin")
        await self.alerts.create_index([("raised_at", DESCENDING), ("_id", DESCENDING)], name="by_time")
        await self.alerts.create_index(
            [("clinic_id", 1), ("raised_at", DESCENDING), ("_id", DESCENDING)], name="by_clinic"
        )
        await self.alerts.create_index([("status", 1), ("raised_at", DESCENDING)], name="by_status")
        # The list filtered by clinician (a lead's caseload view), newest first.
        await self.alerts.create_index(
            [("clinician_id", 1), ("raised_at", DESCENDING), ("_id", DESCENDING)], name="by_clinician"
        )
        await self.episodes.create_index([("episode_open", 1), ("partition", 1)], name="by_open")
        await self.deliveries.create_index([("status", 1), ("next_attempt_at", 1)], name="due")
        await self.deliveries.create_index("event_id", name="by_event")
        await self.audit_log.create_index([("at", DESCENDING)], name="by_time")
        await self.audit_log.create_index("alert_id", name="by_alert")
        await self._seed_partition_clocks()

    async def _seed_partition_clocks(self) -> None:
        """The newest episode clock, into `partition_clocks` at every start (one sorted read of the
        episode clocks): a store written before `partition_clocks` existed, or by instances of an
        earlier release during a rolling upgrade, gets its clock there too."""
        top = await self.clocks.find_one({}, {"newest": 1}, sort=[("newest", DESCENDING)])
        if top is not None:
            await self.partition_clocks.update_one(
                {"_id": EARLIER}, {"$max": {"newest": top["newest"]}}, upsert=True
            )

    # ---------------------------------------------------------------- episodes

    def forget(self) -> None:
        """Drop the remembered episodes and clocks (at a rebalance, after a conflict)."""
        self.known_episodes.clear()
        self.known_clocks.clear()
        self.known_partition_clocks.clear()
        self.known_marks.clear()

    def _keep(self, memory: dict[str, Any], items: Mapping[str, Any]) -> None:
        if len(memory) + len(items) > self.remember:
            memory.clear()
        memory.update(items)

    async def load_episodes(self, *, episode_ids: Iterable[str]) -> dict[str, EpisodeRow]:
        """The stored episodes among these ids (absent ones are new); remembered ones are not read."""
        ids = list(dict.fromkeys(episode_ids))
        if not ids:
            return {}
        docs = {i: self.known_episodes[i] for i in ids if i in self.known_episodes}
        read = await find_by_ids(self.episodes, [i for i in ids if i not in docs])
        self._keep(self.known_episodes, {d["_id"]: d for d in read})
        docs.update((d["_id"], d) for d in read)
        return {i: _episode_row(d) for i, d in docs.items()}  # fresh rows: callers change them

    async def save_episodes(self, *, rows: Sequence[EpisodeRow]) -> None:
        """Write changed episodes with an optimistic version check; ConcurrentUpdate when one moved."""
        docs = [(_episode_doc(r), r) for r in rows]
        new = [d for d, r in docs if r.version == 0]
        old = [(d, r.version) for d, r in docs if r.version > 0]
        try:
            if await insert_clashing(self.episodes, new):
                raise ConcurrentUpdate("an episode was created concurrently")
            if old:
                matched = await replace_versioned(self.episodes, old)
                if matched != len(old):
                    raise ConcurrentUpdate(f"{len(old) - matched} episode(s) changed concurrently")
        except BaseException:
            self.forget()  # some may be written, some not: read them all again
            raise
        self._keep(self.known_episodes, {d["_id"]: d for d, _ in docs})
        for r in rows:
            r.version += 1
            r.dirty = False

    async def inactivity_candidates(
        self, *, partitions: Iterable[int], due: Callable[[str, datetime], bool] | None = None
    ) -> list[EpisodeRow]:
        """Open episodes on these partitions with an attended session and no open dropout alert; with
        `due` (clinic, last attended session), only those it holds due.

        With `due` the sweep reads two fields of every open episode and the whole state (the large
        part) only of the due ones: it runs every ATTUNE_ALERTS_SWEEP_SECONDS over every open episode
        of the network, and reading every state each time made its cost grow with the caseload."""
        query: dict[str, Any] = {
            "episode_open": True,
            "partition": {"$in": list(partitions)},
            "last_attended_at": {"$ne": None},
            "dropout_open": False,
        }
        if due is None:
            return [_episode_row(d) async for d in self.episodes.find(query)]
        ids = [
            d["_id"]
            async for d in self.episodes.find(query, {"_id": 1, "clinic_id": 1, "last_attended_at": 1})
            if due(d["clinic_id"], d["last_attended_at"])
        ]
        still = [  # as read now: a batch may have moved one on since
            d
            for d in await find_by_ids(self.episodes, ids)
            if d.get("episode_open") and not d.get("dropout_open") and d.get("last_attended_at") is not None
        ]
        return [_episode_row(d) for d in sorted(still, key=lambda d: d["_id"])]

    # ---------------------------------------------------------------- alert changes

    async def current(self, *, alert_ids: Iterable[str]) -> dict[str, Current]:
        """Each alert's newest state (from its projection, or a change record newer than it)."""
        ids = list(dict.fromkeys(alert_ids))
        if not ids:
            return {}
        docs = {d["_id"]: stored_from_doc(d) for d in await find_by_ids(self.alerts, ids)}
        newest: dict[str, int] = {}
        for d in await find_in(self.changes, "alert_id", ids, {"alert_id": 1, "seq": 1}):
            newest[d["alert_id"]] = max(newest.get(d["alert_id"], 0), int(d["seq"]))
        ahead = [
            f"{aid}:{seq:08d}" for aid, seq in newest.items() if aid not in docs or docs[aid].sequence < seq
        ]
        out = {aid: Current(s) for aid, s in docs.items()}
        if ahead:
            for d in await find_by_ids(self.changes, ahead):
                rec = _record(d)
                out[rec.stored.alert_id] = Current(rec.stored, rec)
        return out

    async def _recall(
        self, coll: Any, memory: dict[str, Any], ids: Iterable[str], field: str
    ) -> dict[str, Any]:
        """A field of documents by `_id`: remembered ones from memory, the others read and remembered."""
        wanted = list(dict.fromkeys(ids))
        out = {i: memory[i] for i in wanted if i in memory}
        read = {d["_id"]: d[field] for d in await find_by_ids(coll, [i for i in wanted if i not in out])}
        self._keep(memory, read)
        return out | read

    async def _raise(self, coll: Any, memory: dict[str, Any], values: Mapping[str, Any], field: str) -> None:
        """Raise a field to these values (`$max`, upserted); values known to be reached are not written."""
        moved = {k: v for k, v in values.items() if k not in memory or v > memory[k]}
        ops = [UpdateOne({"_id": k}, {"$max": {field: v}}, upsert=True) for k, v in moved.items()]
        if not ops:
            return
        try:
            await bulk_write(coll, ops)
        except BaseException:
            self.forget()
            raise
        self._keep(memory, moved)

    async def input_marks(self, *, keys: Iterable[str]) -> dict[str, int]:
        """Per input partition (`topic|partition`), the highest offset whose changes may be recorded."""
        return await self._recall(self.input_marks_coll, self.known_marks, keys, "through")

    async def advance_marks(self, *, through: Mapping[str, int]) -> None:
        """Raise the marks before any change of these offsets is claimed (never lowers them)."""
        await self._raise(self.input_marks_coll, self.known_marks, through, "through")

    async def records_for_origins(self, *, origin_event_ids: Iterable[str]) -> dict[str, ChangeRecord]:
        """Changes already recorded for these input events, by cause_key (a replay reuses them)."""
        ids = list(dict.fromkeys(origin_event_ids))
        if not ids:
            return {}
        return {d["cause_key"]: _record(d) for d in await find_in(self.changes, "origin_event_id", ids)}

    async def record_by_cause(self, *, cause_key: str) -> ChangeRecord | None:
        """The change recorded for this cause, if any."""
        doc = await self.changes.find_one({"cause_key": cause_key})
        return None if doc is None else _record(doc)

    async def claim_changes(self, *, records: Sequence[ChangeRecord]) -> None:
        """Insert new change records; ConcurrentUpdate when any sequence or cause is taken already."""
        if not records:
            return
        taken = await insert_clashing(self.changes, [_record_doc(r) for r in records])
        if taken:
            raise ConcurrentUpdate(f"{len(taken)} alert change(s) taken")

    async def try_claim_change(self, *, record: ChangeRecord) -> bool:
        """Insert one change record; False when its sequence (or cause) is taken."""
        try:
            await self.changes.insert_one(_record_doc(record))
            return True
        except DuplicateKeyError:
            return False

    async def mark_published(self, *, record_ids: Sequence[str]) -> None:
        """Note that these changes' events are on the alerts topic."""
        if record_ids:
            await update_by_ids(self.changes, record_ids, {"$set": {"published_at": now_ms()}})

    async def project(self, *, alerts: Iterable[StoredAlert]) -> None:
        """Write alerts' current state, forward only (a newer sequence already stored wins)."""
        newest: dict[str, StoredAlert] = {}
        for s in alerts:
            if s.alert_id not in newest or newest[s.alert_id].sequence < s.sequence:
                newest[s.alert_id] = s
        if not newest:
            return
        # Forward only: a stored alert at this sequence or past it is left as it is.
        await replace_newer(self.alerts, [alert_doc(s) for s in newest.values()], "sequence")

    async def get_alert(self, *, alert_id: str) -> StoredAlert | None:
        """One alert's projected state."""
        doc = await self.alerts.find_one({"_id": alert_id})
        return None if doc is None else stored_from_doc(doc)

    async def list_alerts(self, *, query: Mapping[str, Any], limit: int) -> list[StoredAlert]:
        """Alerts matching query, newest first (raised_at desc, alert_id desc)."""
        cursor = self.alerts.find(dict(query)).sort([("raised_at", -1), ("_id", -1)]).limit(limit)
        return [stored_from_doc(d) async for d in cursor]

    async def unacknowledged(self) -> list[StoredAlert]:
        """Open alerts nobody has acknowledged: the escalation sweep's work list."""
        return [stored_from_doc(d) async for d in self.alerts.find({"status": "open"})]

    async def count_unresolved(self) -> dict[str, int]:
        """Unresolved alerts per severity: a find on `status` (index by_status) of the open and the
        acknowledged, their severities counted here (the local stand-in reads the whole collection
        for an aggregation's `$in`, at every sweep)."""
        counts: dict[str, int] = {}
        unresolved = await find_in(self.alerts, "status", ["open", "acknowledged"], {"_id": 0, "severity": 1})
        for d in unresolved:
            counts[d["severity"]] = counts.get(d["severity"], 0) + 1
        return counts

    # ---------------------------------------------------------------- claims

    async def claim(self, *, collection: str, claim_id: str, **fields: Any) -> bool:
        """Insert `{_id: claim_id}` into a claims collection; False when someone holds it already."""
        try:
            await self.db[collection].insert_one({"_id": claim_id, "claimed_at": now_ms(), **fields})
            return True
        except DuplicateKeyError:
            return False

    async def get_claim(self, *, collection: str, claim_id: str) -> dict[str, Any] | None:
        """A claim document."""
        return await self.db[collection].find_one({"_id": claim_id})

    async def finish_claim(self, *, collection: str, claim_id: str, outcome: str) -> None:
        """Mark a claim done (only its holder writes it)."""
        await self.db[collection].update_one(
            {"_id": claim_id}, {"$set": {"done_at": now_ms(), "outcome": outcome}}
        )

    # ---------------------------------------------------------------- outbox

    async def add_deliveries(self, *, docs: Sequence[dict[str, Any]]) -> int:
        """Queue deliveries (a replay re-derives the same _id: no duplicate)."""
        inserted, _ = await insert_new(self.deliveries, docs)
        return inserted

    async def due_deliveries(
        self, *, now: datetime, limit: int, exclude: Iterable[str]
    ) -> list[dict[str, Any]]:
        """Pending deliveries whose next attempt is due, oldest first."""
        query: dict[str, Any] = {"status": "pending", "next_attempt_at": {"$lte": now}}
        skip = list(exclude)
        if skip:
            query["_id"] = {"$nin": skip}
        cursor = self.deliveries.find(query).sort("next_attempt_at", 1).limit(limit)
        return [d async for d in cursor]

    async def record_attempt(
        self, *, delivery_id: str, attempt: Mapping[str, Any], status: str, next_attempt_at: datetime | None
    ) -> None:
        """Append one attempt and move the delivery on (only the holder of that attempt's claim writes)."""
        changes: dict[str, Any] = {
            "attempt_count": attempt["n"],
            "status": status,
            "next_attempt_at": next_attempt_at,
            "updated_at": now_ms(),
        }
        if status == "delivered":
            changes["delivered_at"] = attempt["at"]
        elif status == "dead":
            changes["dead_at"] = attempt["at"]
        await self.deliveries.update_one(
            {"_id": delivery_id}, {"$push": {"attempts": dict(attempt)}, "$set": changes}
        )

    # ---------------------------------------------------------------- audit and clocks

    async def audit(self, *, entry: Mapping[str, Any]) -> None:
        """Record one API read or change."""
        await self.audit_log.insert_one(dict(entry))

    async def event_clocks(self, *, keys: Iterable[str]) -> dict[str, datetime]:
        """The newest event time seen per episode (remembered ones are not read)."""
        return await self._recall(self.clocks, self.known_clocks, keys, "newest")

    async def advance_clocks(self, *, newest: Mapping[str, datetime]) -> None:
        """Move episodes' clocks forward (never back), then their partitions' clocks to the newest of
        them; a clock known to be there already is not written.

        `$max` keeps every clock from moving back, so the newest partition clock is the newest
        episode clock. A partition's clock has one writer at a time, the partition's consumer, as its
        episodes' clocks have, so it holds on the stand-in too, where `$max` is a read then a write
        (a zombie after a rebalance writes only times of records the new owner processes again, and
        races the owner there as it does on the episodes' clocks: standin.py's caveat).

        A partition's clock is computed from every clock passed, moved or not: a batch run again
        after stopping between the two writes reads its episodes' clocks as stored and raises their
        partitions' clocks then (a partition's clock is remembered only once written, so a
        remembered one is a lower bound of the stored one)."""
        clocks = {c: _ms(t) for c, t in newest.items()}
        if not clocks:
            return
        await self._raise(self.clocks, self.known_clocks, clocks, "newest")
        partition_of = await self._partitions_of(clocks)
        per_partition: dict[str, datetime] = {}
        for episode, t in clocks.items():
            p = partition_of.get(episode)
            key = NO_PARTITION if p is None else str(p)
            per_partition[key] = max(per_partition.get(key, t), t)
        await self._raise(self.partition_clocks, self.known_partition_clocks, per_partition, "newest")

    async def _partitions_of(self, episode_ids: Iterable[str]) -> dict[str, int | None]:
        """Episodes' partitions: from the episodes this batch loaded or saved (remembered), else read."""
        out: dict[str, int | None] = {}
        unknown: list[str] = []
        for e in episode_ids:
            doc = self.known_episodes.get(e)
            if doc is None:
                unknown.append(e)
            else:
                out[e] = doc.get("partition")
        for d in await find_by_ids(self.episodes, unknown, {"partition": 1}):
            out[d["_id"]] = d.get("partition")
        return out

    async def newest_event_time(self) -> datetime | None:
        """The newest event time seen in any episode (the sweep's clock in event mode): the newest of
        the partitions' clocks, one small document per input partition whatever the number of episodes."""
        times = [d["newest"] async for d in self.partition_clocks.find({}, {"newest": 1})]
        return max(times, default=None)
