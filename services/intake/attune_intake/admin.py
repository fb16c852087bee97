"""Dead-letter administration (role admin only: dead letters may hold raw PHI)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from attune_intake.adapters.store import IntakeStore
from attune_shared.auth import Principal, require_roles
from attune_shared.events import DeadLetter
from attune_shared.kafka import OutRecord, publish_all
from attune_shared.logging import get_logger
from attune_shared.runtime import Service
from attune_shared.topics import Topics

router = APIRouter(prefix="/v1/admin/dead-letters", tags=["dead letters"])
log = get_logger("attune_intake.admin")


class ReplayRequest(BaseModel):
    """Which dead letters to re-submit: by id, or every unreplayed one with a code."""

    dlq_ids: list[str] = Field(default_factory=list, max_length=10_000)
    code: str | None = None
    limit: int = Field(default=1000, ge=1, le=10_000)


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    doc = dict(doc)
    doc.pop("_id", None)
    for key in ("received_at", "replayed_at"):
        if doc.get(key) is not None:
            doc[key] = doc[key].isoformat()
    return doc


@router.get("", summary="List dead letters, newest first")
async def list_dead_letters(
    request: Request,
    code: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    include_replayed: bool = False,
    caller: Principal = Depends(require_roles("admin")),
) -> dict[str, Any]:
    """Dead letters with their raw text and error (admin only)."""
    store: IntakeStore = request.app.state.service.extras["store"]
    docs = await store.list_dead_letters(code=code, limit=limit, include_replayed=include_replayed)
    counts = {
        d["_id"]: d["n"]
        async for d in await store.dead_letters.aggregate(
            [{"$group": {"_id": "$error.code", "n": {"$sum": 1}}}]
        )
    }
    log.info("dead_letters_listed", caller=caller.name, returned=len(docs))
    return {"dead_letters": [_public(d) for d in docs], "counts_by_code": counts}


@router.post("/replay", summary="Re-submit dead letters to ehr.events.v1 (after a fix)")
async def replay(
    request: Request, body: ReplayRequest, caller: Principal = Depends(require_roles("admin"))
) -> dict[str, Any]:
    """Publish the raw records again with their original keys; intake validates them afresh."""
    service: Service = request.app.state.service
    store: IntakeStore = service.extras["store"]
    if body.dlq_ids:
        docs = [d async for d in store.dead_letters.find({"_id": {"$in": body.dlq_ids}})]
    else:
        docs = await store.list_dead_letters(code=body.code, limit=body.limit)
    letters = [
        DeadLetter.model_validate({k: v for k, v in d.items() if k not in ("_id", "replayed_at")})
        for d in docs
    ]
    topic = service.settings.topic(Topics.EHR_EVENTS)
    await publish_all(
        service.broker,
        [OutRecord(topic, d.origin.key.encode() if d.origin.key else None, d.raw_bytes()) for d in letters],
    )
    await store.mark_replayed(dlq_ids=[d.dlq_id for d in letters])
    log.info("dead_letters_replayed", caller=caller.name, replayed=len(letters))
    return {"replayed": len(letters), "dlq_ids": [d.dlq_id for d in letters]}
