"""measures' data for expected trajectories: closed episodes, and every fitted model version.

`episodes` holds one document per closed episode (`_id` = episode_id): clinic, closure date and reason,
written (upserted, so a replay changes nothing) from the `episode.closed` events measures forwards.

A fit reads the closed episodes' ORS, PHQ-9 and GAD-7 series from the `series` documents (`_id` =
"episode:instrument", see store.py), whose `scores` field the pipeline keeps as the group's primary
scores in session order. A group written before that field existed is read from its responses once
and scored here.

`trajectory_models` keeps every fitted version (`_id` = "instrument|version", never overwritten: a
second write of the same version is a duplicate and ignored); the current model of an instrument is
its newest by `fitted_at`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from attune_measures.adapters.store import tracked_from_doc
from attune_measures.domain.scoring import UnscorableResponse, score
from attune_measures.domain.trajectories import (
    TRAJECTORY_INSTRUMENTS,
    EpisodeClosure,
    EpisodeScores,
    TrajectoryModel,
)
from attune_measures.ports import TrajectoryStore
from attune_shared.mongo import bulk_write, ensure_collections, find_by_ids, find_in, insert_new


def model_id(instrument: str, version: str) -> str:
    """The `_id` of one model version."""
    return f"{instrument}|{version}"


class TrajectoryRepository(TrajectoryStore):
    """Closed episodes, their outcome series, and the fitted models (ports.TrajectoryStore)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.episodes = db["episodes"]
        self.series = db["series"]
        self.responses = db["responses"]
        self.models = db["trajectory_models"]

    async def ensure_indexes(self) -> None:
        """An instrument's models newest first."""
        await ensure_collections(self.episodes, self.series, self.responses, self.models)
        await self.models.create_index(
            [("instrument", ASCENDING), ("fitted_at", DESCENDING)], name="by_instrument_time"
        )

    async def close_episodes(self, *, closures: Sequence[EpisodeClosure]) -> None:
        """Record closed episodes (an upsert each: a replayed closure changes nothing)."""
        if not closures:
            return
        latest = {c.episode_id: c for c in closures}  # one write per episode, the last closure wins
        ops = [
            UpdateOne(
                {"_id": c.episode_id},
                {
                    "$set": {
                        "clinic_id": c.clinic_id,
                        "closed_on": c.closed_on.isoformat(),
                        "reason": c.reason,
                        "closed_at": c.occurred_at.astimezone(UTC),
                    }
                },
                upsert=True,
            )
            for c in latest.values()
        ]
        await bulk_write(self.episodes, ops)

    async def closed_count(self) -> int:
        """How many episodes are closed."""
        return await self.episodes.count_documents({})

    async def closed_series(self) -> list[EpisodeScores]:
        """Every closed episode's ORS, PHQ-9 and GAD-7 scores in session order (one per episode and
        instrument that has any)."""
        ids = [d["_id"] async for d in self.episodes.find({}, {"_id": 1})]
        keys = [f"{e}:{i}" for e in sorted(ids) for i in TRAJECTORY_INSTRUMENTS]
        out: list[EpisodeScores] = []
        legacy: list[str] = []
        for doc in await find_by_ids(self.series, keys, {"scores": 1}):
            instrument = str(doc["_id"]).rsplit(":", 1)[1]
            if doc.get("scores") is not None:
                if doc["scores"]:
                    out.append(EpisodeScores(instrument, tuple(float(s) for s in doc["scores"])))
            else:
                legacy.append(doc["_id"])
        if legacy:
            out += await self._scored(legacy)
        return out

    async def _scored(self, groups: list[str]) -> list[EpisodeScores]:
        """Groups stored before the pipeline kept their scores: their primary scores from the responses."""
        by_group: dict[str, list[Any]] = {}
        for doc in await find_in(self.responses, "series_key", groups):
            by_group.setdefault(doc["series_key"], []).append(tracked_from_doc(doc))
        out = []
        for key, tracked in sorted(by_group.items()):
            scores: list[float] = []
            for t in sorted(tracked, key=lambda t: t.response.order):
                try:
                    primary = score(t.response.instrument, t.response.items).primary
                except UnscorableResponse:
                    continue
                if primary is not None:
                    scores.append(primary)
            out.append(EpisodeScores(key.rsplit(":", 1)[1], tuple(scores)))
        return out

    async def save_model(self, *, model: TrajectoryModel) -> None:
        """Keep a fitted version (the same version again is ignored, never overwritten)."""
        doc = {
            "_id": model_id(model.instrument, model.version),
            **model.as_dict(),
            "fitted_at": model.fitted_at.astimezone(UTC),  # a BSON date, for sorting
        }
        await insert_new(self.models, [doc])

    async def current_models(self) -> dict[str, TrajectoryModel]:
        """The newest model of each instrument that has one."""
        out = {}
        for instrument in TRAJECTORY_INSTRUMENTS:
            async for doc in (
                self.models.find({"instrument": instrument}).sort("fitted_at", DESCENDING).limit(1)
            ):
                out[instrument] = _model(doc)
        return out

    async def models_by_version(self, *, keys: Iterable[tuple[str, str]]) -> list[TrajectoryModel]:
        """These `(instrument, version)` models (unknown ones are missing)."""
        ids = sorted({model_id(i, v) for i, v in keys})
        return [_model(d) for d in await find_by_ids(self.models, ids)] if ids else []

    async def model_history(self, *, instrument: str, limit: int = 20) -> list[TrajectoryModel]:
        """An instrument's models, newest first."""
        cursor = self.models.find({"instrument": instrument}).sort("fitted_at", DESCENDING).limit(limit)
        return [_model(d) async for d in cursor]


def _model(doc: dict[str, Any]) -> TrajectoryModel:
    at = doc["fitted_at"]
    if isinstance(at, datetime) and at.tzinfo is None:
        doc = {**doc, "fitted_at": at.replace(tzinfo=UTC)}
    return TrajectoryModel.from_dict(doc)
