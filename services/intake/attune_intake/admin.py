"""Dead-letter administration (role admin only: dead letters may hold raw PHI)."""

from __future__ import annotations

from typing import Annotated, Any, Self

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from attune_intake.adapters.store import IntakeStore
from attune_shared.auth import Principal, require_roles
from attune_shared.events import DeadLetter, DeadLetterCode
from attune_shared.http import no_surrogates
from attune_shared.kafka import OutRecord, publish_all
from attune_shared.logging import get_logger
from attune_shared.runtime import Service
from attune_shared.topics import Topics

router = APIRouter(prefix="/v1/admin/dead-letters", tags=["dead letters"])
log = get_logger("attune_intake.admin")


DlqId = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(no_surrogates)]


class ReplayRequest(BaseModel):
    """Which dead letters to re-submit: by id, or every unreplayed one with a code; one of the two is
    required (re-driving every dead letter at once is never what an operator meant)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["dlq_ids"], "properties": {"dlq_ids": {"minItems": 1}}},
                {"required": ["code"], "properties": {"code": {"type": "string"}}},
            ]
        },
    )
    dlq_ids: list[DlqId] = Field(default_factory=list, max_length=1000)
    code: DeadLetterCode | None = None
    limit: int = Field(default=1000, ge=1, le=10_000)
    dry_run: bool = Field(
        default=False, strict=True, description="count what would be re-driven, re-drive nothing"
    )

    @model_validator(mode="after")
    def _a_filter(self) -> Self:
        if not self.dlq_ids and self.code is None:
            raise ValueError("name the dead letters to re-drive: dlq_ids (one or more) or code")
        return self


class ReplayResult(BaseModel):
    """What a replay re-drove (or, with dry_run, would re-drive)."""

    dry_run: bool
    would_replay: int = Field(description="how many dead letters the filter selects")
    replayed: int = Field(description="how many were re-driven (0 for a dry run)")
    dlq_ids: list[str]


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
    code: DeadLetterCode | None = None,
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


@router.post(
    "/replay",
    summary="Re-submit dead letters to ehr.events.v1 (after a fix); dry_run counts them first",
    response_model=ReplayResult,
)
async def replay(
    request: Request, body: ReplayRequest, caller: Principal = Depends(require_roles("admin"))
) -> ReplayResult:
    """Publish the raw records again with their original keys; intake validates them afresh."""
    service: Service = request.app.state.service
    store: IntakeStore = service.extras["store"]
    if body.dlq_ids:
        query: dict[str, Any] = {"_id": {"$in": body.dlq_ids}}
        if body.code is not None:
            query["error.code"] = body.code
        docs = [d async for d in store.dead_letters.find(query)]
    else:
        docs = await store.list_dead_letters(code=body.code, limit=body.limit)
    letters = [
        DeadLetter.model_validate({k: v for k, v in d.items() if k not in ("_id", "replayed_at")})
        for d in docs
    ]
    ids = [d.dlq_id for d in letters]
    if body.dry_run:
        log.info("dead_letters_replay_dry_run", caller=caller.name, would_replay=len(letters))
        return ReplayResult(dry_run=True, would_replay=len(letters), replayed=0, dlq_ids=ids)
    topic = service.settings.topic(Topics.EHR_EVENTS)
    await publish_all(
        service.broker,
        [OutRecord(topic, d.origin.key.encode() if d.origin.key else None, d.raw_bytes()) for d in letters],
    )
    await store.mark_replayed(dlq_ids=[d.dlq_id for d in letters])
    log.info("dead_letters_replayed", caller=caller.name, replayed=len(letters))
    return ReplayResult(dry_run=False, would_replay=len(letters), replayed=len(letters), dlq_ids=ids)
