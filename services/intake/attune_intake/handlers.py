"""intake's edges: the Kafka batch subscriber on ehr.events.v1 and POST /v1/ehr/events."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from fastapi import APIRouter, Depends, HTTPException, Request, status
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from pydantic import TypeAdapter

from attune_intake import metrics
from attune_intake.adapters.store import ConcurrentUpdate, IntakeStore, receipt_key
from attune_intake.pipeline import Inbound, IntakePipeline, reject, validate
from attune_intake.settings import IntakeSettings
from attune_shared.auth import Principal, require_roles
from attune_shared.events import AnyEhrEnvelope, DeadLetter, EhrEnvelope, EnvelopeRejected
from attune_shared.http import BodyLimit
from attune_shared.kafka import OutRecord, publish_all, raw_body, retry_transient
from attune_shared.metrics import BATCH_DURATION, BATCH_SIZE, MESSAGES_CONSUMED
from attune_shared.runtime import Service
from attune_shared.topics import Topics

GROUP = "attune-intake"


class ForgetOnRebalance(ConsumerRebalanceListener):
    """The store's remembered client states are only good while our partitions stay ours."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def _forget(self) -> None:
        store = self.service.extras.get("store")
        if isinstance(store, IntakeStore):
            store.forget()

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._forget()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._forget()


def register_consumer(service: Service) -> None:
    """Subscribe to ehr.events.v1 in batches; offsets are committed only after process() returns."""
    settings = service.settings
    topic = settings.topic(Topics.EHR_EVENTS)

    @service.broker.subscriber(
        topic,
        group_id=settings.group(GROUP),
        batch=True,
        max_records=settings.attune_batch_max_records,
        batch_timeout_ms=settings.attune_batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=raw_body,
        listener=ForgetOnRebalance(service),
        title="intake-ehr-events",
        description="Validates, de-duplicates and pseudonymises inbound EHR events.",
    )
    async def on_ehr_events(body: Any, message: KafkaMessage) -> None:
        raw: tuple[ConsumerRecord[Any, Any], ...] = message.raw_message
        batch = [
            Inbound(
                value=r.value,
                key=r.key,
                topic=r.topic,
                partition=r.partition,
                offset=r.offset,
                timestamp_ms=r.timestamp,
            )
            for r in raw
        ]
        MESSAGES_CONSUMED.labels(topic).inc(len(batch))
        metrics.RECEIVED.labels("kafka").inc(len(batch))
        BATCH_SIZE.labels(topic).observe(len(batch))
        started = time.monotonic()
        pipeline: IntakePipeline = service.extras["pipeline"]
        await retry_transient(
            "intake_batch",
            lambda: pipeline.process(batch),
            stopping=lambda: service.stopping,
            also=(ConcurrentUpdate,),
        )
        BATCH_DURATION.labels(topic).observe(time.monotonic() - started)


router = APIRouter(prefix="/v1/ehr", tags=["ingestion"])


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


@router.post(
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
async def post_events(request: Request, caller: Principal = Depends(require_roles("ehr"))) -> dict[str, Any]:
    """Accept EHR events; answers once every accepted event is durably on ehr.events.v1."""
    service: Service = request.app.state.service
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

    store: IntakeStore = service.extras["store"]
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
