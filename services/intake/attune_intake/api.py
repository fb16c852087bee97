"""intake's HTTP API, three doors:

- `POST /v1/ehr/events`: the EHR's door in, beside Kafka (role ehr, for its own source and clinics).
- `GET /v1/clients/{client_ref}`: the one door back from a pseudonym to a person (contract section 6),
  audited on every call. It answers a lead (for the clinics on its token) or an admin with the client's
  MRN, clinic and episodes, so the lead can find the person in the EHR. The audit row (who, which
  client, when, why) is written before anything is answered: when it cannot be written, nothing is
  revealed. A client outside the caller's clinics is 404, like an unknown one, so pseudonyms of other
  clinics do not leak. Admins list the audit with `attune audit list` (`/v1/admin/reidentifications`).
- `/v1/admin/dead-letters`: dead-letter administration (role admin only: dead letters may hold raw PHI).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Self

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from attune_intake import metrics
from attune_intake.adapters.store import receipt_key
from attune_intake.deps import Deps, ReidentificationDep, StoreDep, SubmissionsDep
from attune_intake.fhir.api import router as fhir_router  # POST /fhir/r4, GET /fhir/r4/metadata
from attune_intake.pipeline import reject, validate
from attune_intake.settings import IntakeSettings
from attune_shared.auth import Principal, require_roles
from attune_shared.events import (
    AnyEhrEnvelope,
    DeadLetter,
    DeadLetterCode,
    EhrEnvelope,
    EnvelopeRejected,
)
from attune_shared.http import NO_CONTROL_PATTERN, BodyLimit, no_surrogates
from attune_shared.ids import CLIENT_REF_PATTERN
from attune_shared.kafka import Inbound, OutRecord, publish_all
from attune_shared.logging import get_logger
from attune_shared.runtime import Service
from attune_shared.topics import Topics

log = get_logger("attune_intake.api")
ehr_router = APIRouter(prefix="/v1/ehr", tags=["ingestion"])
dead_letters_router = APIRouter(prefix="/v1/admin/dead-letters", tags=["dead letters"])
clients_router = APIRouter(tags=["re-identification"])


# ------------------------------------------------------------------------- POST /v1/ehr/events


def _body_schema() -> dict[str, Any]:
    """The request body: one envelope or {"events": [...]}, with the envelope union's models in $defs
    (build_app moves them to the document's components, where the refs point)."""
    one = TypeAdapter(AnyEhrEnvelope).json_schema(ref_template="#/components/schemas/{model}")
    defs = one.pop("$defs", {})
    batch = {
        "type": "object",
        "properties": {"events": {"type": "array", "items": one, "minItems": 0, "maxItems": 500}},
        "required": ["events"],
        "additionalProperties": False,
    }
    return {"oneOf": [one, batch], "$defs": defs}


_PROBLEM = {"application/json": {"schema": {"type": "object", "properties": {"detail": {"type": "string"}}}}}
_RESULT = {
    "type": "object",
    "properties": {
        "accepted": {"type": "integer", "minimum": 0},
        "duplicates": {"type": "integer", "minimum": 0},
        "rejected": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer", "minimum": 0},
                    "event_id": {"type": ["string", "null"]},
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                },
                "required": ["index", "event_id", "code", "message"],
            },
        },
    },
    "required": ["accepted", "duplicates", "rejected"],
}


@ehr_router.post(
    "/events",
    status_code=status.HTTP_202_ACCEPTED,
    summary='Submit one envelope or {"events": [...]} (up to 500)',
    description=(
        "Every event is checked on its own: an invalid one is dead-lettered and listed in `rejected`, "
        "the valid ones of the same request are accepted. The token must cover the `source` and "
        "`clinic_id` of every event, valid or not (403 otherwise, and nothing is taken)."
    ),
    dependencies=[Depends(BodyLimit("attune_http_max_body_bytes"))],
    responses={
        202: {
            "description": "every accepted event is on ehr.events.v1, every rejected one dead-lettered",
            "content": {"application/json": {"schema": _RESULT}},
        },
        400: {"description": "the body is not JSON, or `events` is not an array", "content": _PROBLEM},
        401: {"description": "no valid token", "content": _PROBLEM},
        403: {"description": "the token does not cover an event's source or clinic", "content": _PROBLEM},
        413: {
            "description": "body over ATTUNE_HTTP_MAX_BODY_BYTES (1 MiB), or over 500 events",
            "content": _PROBLEM,
        },
    },
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _body_schema()}}}
    },
)
async def post_events(
    request: Request, store: SubmissionsDep, caller: Principal = Depends(require_roles("ehr"))
) -> dict[str, Any]:
    """Accept EHR events; answers once every accepted event is durably on ehr.events.v1."""
    service: Service[Deps] = request.app.state.service
    settings: IntakeSettings = service.settings  # type: ignore[assignment]
    body = await request.body()  # HttpGuard has already held it to ATTUNE_HTTP_MAX_BODY_BYTES (BodyLimit)
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "body is not JSON") from None
    except RecursionError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "body is JSON nested too deeply to read") from None
    if isinstance(doc, dict) and set(doc) == {"events"}:
        items = doc["events"]
        if not isinstance(items, list):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, '"events" must be an array')
        if len(items) > settings.attune_http_max_events:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"at most {settings.attune_http_max_events} events per request",
            )
    else:
        items = [doc]
    metrics.RECEIVED.labels("http").inc(len(items))

    # The token's scope applies to every event, valid or not: a rejected event is dead-lettered (kept,
    # re-drivable) in the name of the source and clinic it claims, so the claim must be the token's.
    forbidden = [i for i, item in enumerate(items) if not _covers(caller, item)]
    if forbidden:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"token {caller.name} does not cover the source or clinic of events {forbidden[:50]}",
        )

    checked: list[tuple[int, Inbound, EhrEnvelope | EnvelopeRejected]] = []
    for i, item in enumerate(items):
        env: EhrEnvelope | EnvelopeRejected
        try:
            value = json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode()
        except UnicodeEncodeError:
            # A string with a lone surrogate escape ("\ud800") is valid JSON text but not Unicode: this
            # event alone is rejected, kept with the escapes as sent.
            value = json.dumps(item, separators=(",", ":")).encode()
            env = EnvelopeRejected(
                "invalid_json",
                "a string holds a lone UTF-16 surrogate escape (\\ud800-\\udfff), which is not Unicode text",
                [{"loc": [], "msg": "lone surrogate in a string"}],
            )
            checked.append((i, Inbound(value=value, key=None, topic="http"), env))
            continue
        rec = Inbound(value=value, key=None, topic="http")
        try:
            env = validate(rec)
        except EnvelopeRejected as exc:
            env = exc
        checked.append((i, rec, env))

    valid = [(i, env) for i, _, env in checked if isinstance(env, EhrEnvelope)]
    seen = await store.seen(keys=(receipt_key(e.source, e.event_id) for _, e in valid))
    out = [
        OutRecord(settings.topic(Topics.EHR_EVENTS), env.kafka_key.encode(), rec.value or b"")
        for _, rec, env in checked
        if isinstance(env, EhrEnvelope)
    ]
    rejected = []
    now = datetime.now(UTC)
    dead = []
    for i, rec, env in checked:
        if isinstance(env, EnvelopeRejected):
            letter = _submitted(reject(rec, env, now), caller)
            dead.append(letter)
            event_id = items[i].get("event_id") if isinstance(items[i], dict) else None
            rejected.append(
                {
                    "index": i,
                    "event_id": event_id if isinstance(event_id, str) else None,
                    "code": env.code,
                    "message": env.message,
                }
            )
            out.append(OutRecord(settings.topic(Topics.EHR_DLQ), None, letter.model_dump_json().encode()))
            metrics.DEAD_LETTERED.labels(env.code).inc()
    await publish_all(service.broker, out)
    if dead:
        await store.keep_dead_letters(letters=dead)
    duplicates = sum(1 for _, e in valid if receipt_key(e.source, e.event_id) in seen)
    return {"accepted": len(valid) - duplicates, "duplicates": duplicates, "rejected": rejected}


def _covers(caller: Principal, item: Any) -> bool:
    """Whether the token covers the source and clinic an event claims (fields that are not strings
    claim nothing; the event is invalid and its dead letter names the token that sent it)."""
    if not isinstance(item, dict):
        return True
    source, clinic_id = item.get("source"), item.get("clinic_id")
    if isinstance(source, str) and source != caller.source:
        return False
    return not (isinstance(clinic_id, str) and not caller.covers_clinic(clinic_id))


def _submitted(letter: DeadLetter, caller: Principal) -> DeadLetter:
    """The dead letter with the principal that submitted it over HTTP."""
    return letter.model_copy(update={"submitted_by": {"name": caller.name, "role": caller.role}})


# ---------------------------------------------------- GET /v1/clients/{client_ref} (re-identification)


REASON_MIN, REASON_MAX = 5, 500


class EpisodeView(BaseModel):
    """One episode of care, as intake knows it."""

    episode_id: str
    opened_on: str
    status: str
    clinician_id: str | None = None
    closed_on: str | None = None
    close_reason: str | None = None


class ClientIdentity(BaseModel):
    """Who a client_ref is: PHI, answered only here and only after the call is audited."""

    client_ref: str
    clinic_id: str
    mrn: str | None
    episodes: list[EpisodeView]
    audit_id: str


class ReidentificationAudit(BaseModel):
    """One audited call of the re-identification door."""

    audit_id: str
    at: datetime
    who: str
    role: str
    client_ref: str
    clinic_id: str | None = None
    reason: str
    outcome: str


class ReidentificationAuditPage(BaseModel):
    """Audit rows, newest first."""

    items: list[ReidentificationAudit]


ClientRefPath = Annotated[str, Path(pattern=CLIENT_REF_PATTERN, description="the client's pseudonym")]
Reason = Annotated[
    str,
    Query(
        min_length=REASON_MIN,
        max_length=REASON_MAX,
        # At least REASON_MIN characters that are not white space: a blank reason says nothing.
        pattern=rf"\S(?:\s*\S){{{REASON_MIN - 1}}}",
        description="why the caller needs to know who this is, kept in the audit",
    ),
]


@clients_router.get(
    "/v1/clients/{client_ref}",
    response_model=ClientIdentity,
    summary="Who a client_ref is (MRN, clinic, episodes); every call audited",
    responses={
        401: {"description": "no valid bearer token"},
        403: {"description": "the token's role may not re-identify clients"},
        404: {"description": "no such client in the caller's clinics"},
        422: {"description": "a malformed client_ref or a missing or empty reason"},
        503: {"description": "the audit could not be written, so nothing is revealed"},
    },
)
async def reidentify(
    store: ReidentificationDep,
    client_ref: ClientRefPath,
    reason: Reason,
    caller: Principal = Depends(require_roles("lead", "admin")),
) -> ClientIdentity:
    """The client's MRN, clinic and episodes, for a lead of that clinic or an admin."""
    why = reason.strip()
    state = await store.client(client_ref=client_ref)
    visible = state is not None and caller.covers_clinic(state.clinic_id)
    entry: dict[str, Any] = {
        "_id": str(uuid.uuid4()),
        "at": datetime.now(UTC),
        "who": caller.name,
        "role": caller.role,
        "client_ref": client_ref,
        "clinic_id": state.clinic_id if visible and state is not None else None,
        "reason": why,
        "outcome": "ok" if visible else "not_found",
    }
    try:
        await store.audit_reidentification(entry=entry)
    except Exception:
        log.exception("reidentification_audit_failed", who=caller.name, client_ref=client_ref)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "the audit could not be written; nothing is revealed"
        ) from None
    metrics.REIDENTIFICATIONS.labels(entry["outcome"]).inc()
    log.info(
        "client_reidentified" if visible else "client_reidentification_refused",
        who=caller.name,
        role=caller.role,
        client_ref=client_ref,
        audit_id=entry["_id"],
    )
    if not visible or state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such client")
    return ClientIdentity(
        client_ref=state.client_ref,
        clinic_id=state.clinic_id,
        mrn=state.mrn,
        episodes=[
            EpisodeView(
                episode_id=e.episode_id,
                opened_on=e.opened_on.isoformat(),
                status=e.status,
                clinician_id=e.clinician_id,
                closed_on=e.closed_on.isoformat() if e.closed_on else None,
                close_reason=e.close_reason,
            )
            for e in state.episodes
        ],
        audit_id=entry["_id"],
    )


@clients_router.get(
    "/v1/admin/reidentifications",
    response_model=ReidentificationAuditPage,
    summary="The audit of the re-identification door, newest first (admin)",
    responses={
        401: {"description": "no valid bearer token"},
        403: {"description": "only the admin role reads this audit"},
    },
)
async def list_reidentifications(
    store: ReidentificationDep,
    client_ref: Annotated[str | None, Query(pattern=CLIENT_REF_PATTERN)] = None,
    who: Annotated[str | None, Query(min_length=1, max_length=200, pattern=NO_CONTROL_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    caller: Principal = Depends(require_roles("admin")),
) -> ReidentificationAuditPage:
    """Who looked up which client, when and why."""
    docs = await store.list_reidentifications(client_ref=client_ref, who=who, limit=limit)
    log.info("reidentifications_listed", caller=caller.name, returned=len(docs))
    return ReidentificationAuditPage(
        items=[
            ReidentificationAudit(
                audit_id=d["_id"],
                at=d["at"],
                who=d["who"],
                role=d["role"],
                client_ref=d["client_ref"],
                clinic_id=d.get("clinic_id"),
                reason=d["reason"],
                outcome=d["outcome"],
            )
            for d in docs
        ]
    )


# ------------------------------------------------------------------------- /v1/admin/dead-letters


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


@dead_letters_router.get("", summary="List dead letters, newest first")
async def list_dead_letters(
    store: StoreDep,
    code: DeadLetterCode | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    include_replayed: bool = False,
    caller: Principal = Depends(require_roles("admin")),
) -> dict[str, Any]:
    """Dead letters with their raw text and error (admin only)."""
    docs = await store.list_dead_letters(code=code, limit=limit, include_replayed=include_replayed)
    counts = {
        d["_id"]: d["n"]
        async for d in await store.dead_letters.aggregate(
            [{"$group": {"_id": "$error.code", "n": {"$sum": 1}}}]
        )
    }
    log.info("dead_letters_listed", caller=caller.name, returned=len(docs))
    return {"dead_letters": [_public(d) for d in docs], "counts_by_code": counts}


@dead_letters_router.post(
    "/replay",
    summary="Re-submit dead letters to ehr.events.v1 (after a fix); dry_run counts them first",
    response_model=ReplayResult,
)
async def replay(
    request: Request,
    store: StoreDep,
    body: ReplayRequest,
    caller: Principal = Depends(require_roles("admin")),
) -> ReplayResult:
    """Publish the raw records again with their original keys; intake validates them afresh."""
    service: Service[Deps] = request.app.state.service
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
    fhir = [d.dlq_id for d in letters if d.error.code == "fhir_unusable"]
    if fhir:
        # Their raw text is a FHIR resource, not an envelope: on ehr.events.v1 it would only be
        # dead-lettered again (schema_violation). The EHR re-sends the fixed resource as a new version.
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            f"{len(fhir)} of these dead letters are fhir_unusable (first: {fhir[0]}): a FHIR resource "
            "is not replayed onto ehr.events.v1; fix it in the EHR and let it send a new version "
            "to POST /fhir/r4",
        )
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


# Each router on its own (not included into one): build_app reads their routes for the HTTP guard's rules.
routers = (ehr_router, dead_letters_router, clients_router, fhir_router)
