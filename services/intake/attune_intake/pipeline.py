"""intake's batch pipeline: validate, de-duplicate, pseudonymise, place in episodes, republish.

Effects are made durable in an order that makes a crash anywhere safe to replay. Each valid record
first claims its receipt (`source|event_id`, naming the record's topic, partition and offset): a key
claimed by another record is an EHR duplicate and is dropped, a key claimed by this same record is a
replay and is processed again. Then canonical events and dead letters are published (their ids are
derived from the input, so a replay republishes the same ids and consumers de-duplicate), then
client state and dead letters are written, and only then does the caller commit the offsets.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from faststream.kafka import KafkaBroker

from attune_intake import metrics
from attune_intake.adapters.store import receipt_key
from attune_intake.domain.canonical import Pseudonymiser, canonicalise
from attune_intake.domain.episodes import ClientState
from attune_intake.domain.validation import parse_envelope
from attune_intake.ports import ConsumerStore
from attune_shared.events import DeadLetter, DeadLetterOrigin, EhrEnvelope, EnvelopeRejected, record_key
from attune_shared.ids import client_ref, pseudonym
from attune_shared.kafka import Inbound, OutRecord, publish_all
from attune_shared.logging import get_logger
from attune_shared.settings import ServiceSettings
from attune_shared.topics import Topics

log = get_logger("attune_intake.pipeline")


@dataclass
class BatchResult:
    """What one batch did."""

    accepted: int = 0
    duplicates: int = 0
    dead: list[DeadLetter] = field(default_factory=list)
    by_type: Tally[str] = field(default_factory=Tally)


def reject(rec: Inbound, exc: EnvelopeRejected, now: datetime) -> DeadLetter:
    """The dead letter for a rejected record."""
    origin = DeadLetterOrigin(
        topic=rec.topic if rec.partition is not None else "http",
        partition=rec.partition,
        offset=rec.offset,
        key=record_key(rec.key),
    )
    return DeadLetter.from_rejection(rec.value or b"", origin, exc.code, exc.message, exc.details, now)


def validate(rec: Inbound, max_bytes: int = 64 * 1024) -> EhrEnvelope:
    """Parse one record or raise EnvelopeRejected."""
    if rec.value is None:
        raise EnvelopeRejected("invalid_json", "record has no value (a tombstone)", [])
    return parse_envelope(rec.value)


class IntakePipeline:
    """Processes batches of inbound records; safe to run again on the same batch."""

    def __init__(self, settings: ServiceSettings, broker: KafkaBroker, store: ConsumerStore) -> None:
        self.settings = settings
        self.broker = broker
        self.store = store
        self.key = settings.pseudonym_key
        self.ids = Pseudonymiser(self.key)
        self.out_care = settings.topic(Topics.CARE)
        self.out_dlq = settings.topic(Topics.EHR_DLQ)

    def pseudonym(self, env: EhrEnvelope) -> str:
        """client_ref of the envelope's client."""
        return client_ref(self.key, env.clinic_id, env.mrn)

    async def process(self, records: list[Inbound]) -> BatchResult:
        """Make every record's effect durable exactly once (see module docstring)."""
        started = time.monotonic()
        now = datetime.now(UTC)
        result = BatchResult()
        valid: list[EhrEnvelope] = []
        receipts: list[dict[str, Any]] = []
        for rec in records:
            try:
                env = validate(rec)
            except EnvelopeRejected as exc:
                result.dead.append(reject(rec, exc, now))
                continue
            valid.append(env)
            receipts.append(
                {
                    "_id": receipt_key(env.source, env.event_id),
                    "origin": f"{rec.topic}/{rec.partition}/{rec.offset}",
                    "event_type": env.event_type,
                    "received_at": now,
                }
            )

        duplicates = await self.store.claim(receipts=receipts)
        refs = {id(e): self.pseudonym(e) for e in valid}
        states = await self.store.load_clients(client_refs=refs.values())
        changed: dict[str, ClientState] = {}
        out: list[OutRecord] = []
        for position, env in enumerate(valid):
            if position in duplicates:
                result.duplicates += 1
                metrics.DUPLICATES.labels(env.event_type).inc()
                continue
            ref = refs[id(env)]
            state = (
                changed.get(ref)
                or states.get(ref)
                or ClientState(client_ref=ref, clinic_id=env.clinic_id, mrn=env.mrn)
            )
            if state.mrn is None:  # a client stored before intake kept the MRN for re-identification
                state = replace(state, mrn=env.mrn)
                changed[ref] = state
            canonical = canonicalise(env, state, self.ids)
            if canonical.state is not state:
                changed[ref] = canonical.state
            for ev in canonical.events:
                out.append(OutRecord(self.out_care, ev.client_ref.encode(), ev.model_dump_json().encode()))
                if ev.event_type == "episode.opened":
                    metrics.EPISODES_OPENED.inc()
            result.accepted += 1
            result.by_type[env.event_type] += 1

        for dead in result.dead:
            key_bytes = dead.origin.key.encode() if dead.origin.key else None
            out.append(OutRecord(self.out_dlq, key_bytes, dead.model_dump_json().encode()))

        await publish_all(self.broker, out)
        if changed:
            await self.store.save_clients(states=list(changed.values()))
        if result.dead:
            await self.store.keep_dead_letters(letters=result.dead)

        for event_type, n in result.by_type.items():
            metrics.ACCEPTED.labels(event_type).inc(n)
        for dead in result.dead:
            metrics.DEAD_LETTERED.labels(dead.error.code).inc()
            log.warning(
                "dead_lettered",
                dlq_id=dead.dlq_id,
                code=dead.error.code,
                message=dead.error.message,
                **_safe_ids(dead, self.ids),
            )
        now_ms = time.time() * 1000
        for rec in records:
            if rec.timestamp_ms:
                metrics.LATENCY.observe(max(0.0, (now_ms - rec.timestamp_ms) / 1000))
        log.info(
            "batch_done",
            records=len(records),
            accepted=result.accepted,
            duplicates=result.duplicates,
            dead_lettered=len(result.dead),
            published=len(out),
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return result


def _safe_ids(dead: DeadLetter, ids: Pseudonymiser) -> dict[str, Any]:
    """source, clinic_id and the event's pseudonym of a dead letter, when its raw text had them.

    Never the MRN and never the EHR's own event_id (contract section 6): an operator finds the
    dead letter itself by its dlq_id, through the admin-only dead-letter API.
    """
    import json

    try:
        doc = json.loads(dead.raw) if dead.raw_encoding is None else None
    except (ValueError, RecursionError):  # a record nested too deep for the parser is a dead letter too
        return {}
    if not isinstance(doc, dict):
        return {}
    safe = {k: str(doc[k])[:64] for k in ("source", "clinic_id") if isinstance(doc.get(k), str)}
    if len(safe) == 2 and isinstance(doc.get("event_id"), str):
        safe["event_ref"] = pseudonym(
            ids.key, "event", clinic_id=safe["clinic_id"], source=safe["source"], value=doc["event_id"]
        )
    return safe
