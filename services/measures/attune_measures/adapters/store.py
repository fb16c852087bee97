"""measures' own MongoDB data: every response (its current version and what was published), dead letters.

`responses` holds one document per `(source, response_id)` (`_id` = "source|response_id"): the version
kept (items, status, times), its group `series_key` (episode + instrument, indexed: one group is one
series), and the last published revision, fingerprint and scores. Times are kept as the ISO text they
arrived in, so a stored version re-serialises exactly as it did when it was first published. A batch
reads its groups with one find on `series_key` (`$in`), the read API an episode's groups the same way.

`series` keeps, per outcome group (ORS, PHQ-9, GAD-7), the primary scores in session order that the
pipeline settled (`scores`), which a trajectory fit reads without reading the responses.

`response_keys` holds the `_id` of every response ever stored, claimed before the response is
written. A batch inserts the keys of the responses its groups did not hold: a key that goes in was
never stored, so it needs no lookup (a backfill's responses are nearly all new, and one insert of a
batch's keys costs less than a lookup each on MongoDB and far less on the local stand-in, which
answers `$in` one value at a time); only a key that clashes (an amendment that moved a response to
another group, a replay, or a claim whose write a crash lost) is looked up.

A caseload starts from one find on `clinician_id` (indexed). `audit` records every read of the API
(who, what, when, outcome), refusals included.

Each response also keeps what the pipeline last computed for it (`computed`: versions.Tracked.computed),
so an unchanged member of a group read back is not recomputed at every batch. That memo names the
scoring rules' versions it was computed under: after a release that changes a rule it is not trusted,
and every member is recomputed (and revised where its content changed) at its group's next touch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from attune_measures.dead_letters import MeasuresDeadLetter
from attune_measures.domain.revisions import Computed
from attune_measures.domain.thresholds import RULE_VERSIONS, ScoringThresholds
from attune_measures.domain.versions import ResponseVersion, Tracked, shared
from attune_measures.ports import Loaded, ResponseQueries, ResponseStore
from attune_shared.instruments import INSTRUMENTS
from attune_shared.mongo import (
    ConcurrentUpdate,
    bulk_write,
    ensure_collections,
    find_by_ids,
    find_in,
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
        "trajectory": tracked.trajectory,
        "computed": _computed_text(tracked),
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
        trajectory=doc.get("trajectory"),
        computed=_computed(doc.get("computed"), response, doc.get("fingerprint")),
    )


# What the pipeline last computed for a response (revisions.Computed: its basis, digest and primary
# score), kept with it so that a member read back is not recomputed while its basis is unchanged: the
# basis is (the response, the thresholds, one string of the rest), so it is stored as that string and
# the thresholds' values, the digest being the stored fingerprint. One text field: the local stand-in
# decodes documents field by field.


@lru_cache(maxsize=256)
def _thresholds_text(thresholds: ScoringThresholds) -> str:
    return json.dumps(asdict(thresholds), sort_keys=True, separators=(",", ":"))


@lru_cache(maxsize=256)
def _thresholds(text: str) -> ScoringThresholds:
    return ScoringThresholds(**json.loads(text))


# The scoring rules' versions (and this memo's own format) a stored memo was computed under.
_MEMO_FORMAT = 1
_RULES_TAG = json.dumps([_MEMO_FORMAT, sorted(RULE_VERSIONS.items())], separators=(",", ":"))


def _computed_text(tracked: Tracked) -> str | None:
    """The stored form of `tracked.computed`, when it was computed for this response and fingerprint."""
    c = tracked.computed
    if not isinstance(c, Computed) or c.digest != tracked.fingerprint or len(c.basis) != 3:
        return None
    response, thresholds, rest = c.basis
    if (
        response != tracked.response
        or not isinstance(thresholds, ScoringThresholds)
        or not isinstance(rest, str)
    ):
        return None
    return json.dumps([rest, _thresholds_text(thresholds), c.primary, _RULES_TAG], separators=(",", ":"))


def _computed(text: str | None, response: ResponseVersion, fingerprint: str | None) -> Computed | None:
    """The stored memo, or None (recompute) when there is none, it was computed under other rule
    versions, or it cannot be read (a memo never stops a batch: it only saves work)."""
    if text is None or fingerprint is None:
        return None
    try:
        rest, thresholds, primary, tag = json.loads(text)
        if tag != _RULES_TAG:
            return None
        return Computed((response, _thresholds(thresholds), rest), fingerprint, primary)
    except (ValueError, TypeError):
        return None


class MeasuresStore(ResponseStore, ResponseQueries):
    """Repository over measures' database (the ports of ports.py)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.responses = db["responses"]
        self.series = db["series"]
        self.keys = db["response_keys"]
        self.dead_letters = db["dead_letters"]
        self.audit_log = db["audit"]

    async def ensure_indexes(self) -> None:
        """A group's responses by session time, a clinician's by clinic; dead letters by time and code."""
        await ensure_collections(self.responses, self.series, self.keys, self.dead_letters, self.audit_log)
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

        The groups are read by `series_key`; the keys they did not hold are claimed in
        `response_keys` (see the module docstring), and only those that clash are looked up.
        """
        key_set, series_set = set(keys), set(series_keys)
        loaded = Loaded({}, {})
        if not key_set and not series_set:
            return loaded
        docs = await find_in(self.responses, "series_key", sorted(series_set))
        unknown = sorted(key_set - {d["_id"] for d in docs})
        clashing = await insert_clashing(self.keys, [{"_id": k} for k in unknown])
        docs += await find_by_ids(self.responses, [unknown[i] for i in clashing])
        for doc in docs:
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

        `series` sets the `scores` of those outcome groups (what a trajectory fit reads); `book` (every
        response the batch held) is not needed here.
        """
        if series:
            await bulk_write(
                self.series,
                [
                    UpdateOne({"_id": s}, {"$set": {"scores": list(v)}}, upsert=True)
                    for s, v in sorted(series.items())
                ],
            )
        new = [response_doc(t, 1) for t in changed if t.response.key not in versions]
        old = [t for t in changed if t.response.key in versions]
        if await insert_clashing(self.responses, new):
            raise ConcurrentUpdate("a response was stored concurrently")
        if old:
            items = [(response_doc(t, versions[t.response.key] + 1), versions[t.response.key]) for t in old]
            matched = await replace_versioned(self.responses, items)
            if matched != len(old):
                raise ConcurrentUpdate(f"{len(old) - matched} response(s) changed concurrently")

    async def keep_dead_letters(self, *, letters: Sequence[MeasuresDeadLetter]) -> None:
        """Keep dead letters for an operator (a re-consumed record keeps its first copy)."""
        await keep_dead_letters(self.dead_letters, letters)

    async def episode_responses(self, *, episode_ids: Iterable[str]) -> dict[str, list[Tracked]]:
        """Every response of these episodes, by episode (an episode without any is absent): the groups
        of each instrument, by `series_key`."""
        wanted = sorted(set(episode_ids))
        groups = [f"{e}:{i}" for e in wanted for i in INSTRUMENTS]
        out: dict[str, list[Tracked]] = {}
        for doc in await find_in(self.responses, "series_key", groups):
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
