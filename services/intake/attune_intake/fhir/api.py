"""POST /fhir/r4 and GET /fhir/r4/metadata on intake (contract.md, "FHIR R4 ingestion")."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response

from attune_intake import metrics
from attune_intake.adapters.store import receipt_key
from attune_intake.deps import StoreDep
from attune_intake.domain.fhir.capability import capability_statement
from attune_intake.domain.fhir.config import FhirConfig
from attune_intake.domain.fhir.ingest import (
    BadRequest,
    Context,
    entries_of,
    ingest,
    keys_to_load,
    outcome,
    prepare,
)
from attune_intake.fhir.config import load_config
from attune_intake.fhir.store import FhirStore
from attune_shared.auth import Principal, require_roles
from attune_shared.http import BodyLimit
from attune_shared.kafka import OutRecord, publish_all
from attune_shared.logging import get_logger
from attune_shared.runtime import Service
from attune_shared.topics import Topics

FHIR_JSON = "application/fhir+json"
log = get_logger("attune_intake.fhir")


@contextlib.asynccontextmanager
async def _configured(app: FastAPI) -> AsyncIterator[None]:
    """Read ATTUNE_FHIR_CONFIG at start: a malformed file stops the service, like any bad setting."""
    app.state.fhir_config = load_config()
    yield


router = APIRouter(prefix="/fhir/r4", tags=["FHIR R4 ingestion"], lifespan=_configured)


def _fhir(doc: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(doc, separators=(",", ":")), status_code=status, media_type=FHIR_JSON)


def _config(request: Request) -> FhirConfig:
    config = getattr(request.app.state, "fhir_config", None)
    if not isinstance(config, FhirConfig):
        config = load_config()  # an app started without the router's lifespan (tests)
        request.app.state.fhir_config = config
    return config


@router.get(
    "/metadata",
    summary="The CapabilityStatement: exactly what POST /fhir/r4 accepts",
    response_class=Response,
    responses={200: {"content": {FHIR_JSON: {"schema": {"type": "object"}}}}},
)
async def metadata(request: Request, caller: Principal = Depends(require_roles("ehr", "admin"))) -> Response:
    """This endpoint's CapabilityStatement for the caller's source."""
    config = _config(request).for_source(caller.source or "")
    return _fhir(capability_statement(config, str(request.url_for("post_fhir"))))


@router.post(
    "",
    name="post_fhir",
    summary="Submit a FHIR R4 Bundle (batch, transaction, history) or one resource",
    description=(
        "Each entry maps onto one contract envelope on ehr.events.v1 (same validation, idempotency and "
        "dead letters as POST /v1/ehr/events). The answer is a batch-response Bundle with one entry per "
        "input entry: 201 (an event was published), 200 (recorded, unchanged, or no Attune event), or an "
        "OperationOutcome naming the element that made the resource unusable (also dead-lettered, code "
        "fhir_unusable)."
    ),
    response_class=Response,
    dependencies=[Depends(BodyLimit("attune_http_max_body_bytes"))],
    responses={
        200: {
            "description": "a batch-response Bundle",
            "content": {FHIR_JSON: {"schema": {"type": "object"}}},
        },
        400: {"description": "not JSON, not a FHIR resource, or a Bundle type not accepted"},
        413: {"description": "over ATTUNE_HTTP_MAX_BODY_BYTES or ATTUNE_HTTP_MAX_EVENTS entries"},
    },
    openapi_extra={"requestBody": {"required": True, "content": {FHIR_JSON: {"schema": {"type": "object"}}}}},
)
async def post_fhir(
    request: Request, store: StoreDep, caller: Principal = Depends(require_roles("ehr"))
) -> Response:
    """Map, validate, publish; answer once every published envelope is durably on ehr.events.v1."""
    service: Service[Any] = request.app.state.service
    settings = service.settings
    try:
        doc = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _fhir(outcome("error", "structure", "the body is not JSON"), 400)
    try:
        _, entries = entries_of(doc)
    except BadRequest as exc:
        return _fhir(outcome("error", "structure", exc.message, exc.expression), 400)
    limit = int(getattr(settings, "attune_http_max_events", 500))
    if len(entries) > limit:
        return _fhir(outcome("error", "too-costly", f"at most {limit} entries per request"), 413)
    metrics.RECEIVED.labels("fhir").inc(len(entries))

    source = caller.source or ""
    ctx = Context(source=source, clinics=caller.clinics, config=_config(request).for_source(source))
    prepare(ctx, entries)
    fhir_store = FhirStore(service.database)
    ctx.known = await fhir_store.load(source=source, keys=keys_to_load(ctx, entries))
    # An Encounter known from an earlier bundle links a QuestionnaireResponse to its Appointment.
    linked = {f"Appointment/{f['appointment_id']}" for f in ctx.known.values() if f.get("appointment_id")}
    ctx.known |= await fhir_store.load(source=source, keys=linked - ctx.known.keys())

    result = ingest(doc, ctx, settings.pseudonym_key, datetime.now(UTC))
    events_topic, dlq_topic = settings.topic(Topics.EHR_EVENTS), settings.topic(Topics.EHR_DLQ)
    letters = [
        d.model_copy(update={"submitted_by": {"name": caller.name, "role": caller.role}}) for d in result.dead
    ]
    out = [OutRecord(events_topic, env.kafka_key.encode(), raw) for env, raw in result.envelopes]
    out += [OutRecord(dlq_topic, None, d.model_dump_json().encode()) for d in letters]
    seen = await store.seen(keys=(receipt_key(env.source, env.event_id) for env, _ in result.envelopes))
    await publish_all(service.broker, out)
    if letters:
        await store.keep_dead_letters(letters=letters)
    if result.remember:
        await fhir_store.save(source=source, facts=result.remember)
    for d in letters:
        metrics.DEAD_LETTERED.labels(d.error.code).inc()
    for e in result.entries:
        if e.envelope is not None and receipt_key(e.envelope.source, e.envelope.event_id) in seen:
            e.response = {**e.response, "status": "200 OK"}  # sent before: intake de-duplicates it
    log.info(
        "fhir_received",
        entries=len(result.entries),
        published=len(result.envelopes),
        dead_lettered=len(letters),
        duplicates=len(seen),
    )
    return _fhir(result.bundle())
