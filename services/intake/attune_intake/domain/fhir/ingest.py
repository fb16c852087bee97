"""A FHIR body -> envelopes to publish, dead letters, and the batch-response Bundle. Pure but for
the lookups the caller hands in (known facts), so it is unit-tested without Kafka or a store."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from attune_intake.domain.fhir.mapping import ACCEPTED, Mapped, map_resource
from attune_intake.domain.fhir.resolve import Context, Unusable, instant, obj
from attune_intake.domain.validation import parse_envelope
from attune_shared.events import DeadLetter, DeadLetterOrigin, EhrEnvelope, EnvelopeRejected

BUNDLE_TYPES = ("batch", "transaction", "history")
_RANK = {kind: i for i, kind in enumerate(ACCEPTED)}
_GOT = re.compile(r" \(got .*\)$")


class BadRequest(ValueError):
    """The body as a whole is unusable (not a resource, a bundle type not accepted): HTTP 400."""

    def __init__(self, expression: str, message: str) -> None:
        super().__init__(message)
        self.expression = expression
        self.message = message


@dataclass
class Entry:
    """One input entry and what became of it."""

    index: int
    resource: Any
    full_url: str | None = None
    response: dict[str, Any] = field(default_factory=dict)
    envelope: EhrEnvelope | None = None
    raw: bytes = b""
    mapped: Mapped | None = None


@dataclass
class Outcome:
    """What one request gives: envelopes to publish, dead letters, facts to remember, the answer."""

    entries: list[Entry]
    envelopes: list[tuple[EhrEnvelope, bytes]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    remember: dict[str, dict[str, Any]] = field(default_factory=dict)

    def bundle(self) -> dict[str, Any]:
        """The batch-response Bundle, one entry per input entry, in input order."""
        return {
            "resourceType": "Bundle",
            "type": "batch-response",
            "entry": [{"response": e.response} for e in sorted(self.entries, key=lambda e: e.index)],
        }


def outcome(severity: str, code: str, text: str, expression: str | None = None) -> dict[str, Any]:
    """An OperationOutcome with one issue."""
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": text}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def entries_of(doc: Any) -> tuple[str, list[Entry]]:
    """The bundle type ("single" for one resource) and its entries, or BadRequest."""
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str):
        raise BadRequest("Resource", "the body is not a FHIR resource (no resourceType)")
    if doc["resourceType"] != "Bundle":
        return "single", [Entry(0, doc)]
    kind = doc.get("type")
    if kind not in BUNDLE_TYPES:
        raise BadRequest(
            "Bundle.type", f"Bundle.type must be batch, transaction or history (got {kind!r:.40})"
        )
    raw = doc.get("entry", [])
    if not isinstance(raw, list):
        raise BadRequest("Bundle.entry", "Bundle.entry must be an array")
    out = []
    for i, item in enumerate(raw):
        item = item if isinstance(item, dict) else {}
        url = item.get("fullUrl") if isinstance(item.get("fullUrl"), str) else None
        entry = Entry(i, item.get("resource"), url)
        method = (item.get("request") or {}).get("method") if isinstance(item.get("request"), dict) else None
        if method == "DELETE":
            entry.response = _unusable_response(
                Unusable("Bundle.entry.request.method", "DELETE is not accepted", "not-supported")
            )
        out.append(entry)
    return kind, out


def _unusable_response(exc: Unusable) -> dict[str, Any]:
    phrase = {403: "Forbidden", 404: "Not Found", 422: "Unprocessable Entity"}.get(exc.status, "Bad Request")
    return {
        "status": f"{exc.status} {phrase}",
        "outcome": outcome("error", exc.code, exc.message, exc.expression),
    }


def schema_check(resource: Any) -> None:
    """Validate against FHIR R4 (fhir.resources' R4B models, identical for the accepted types)."""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise Unusable("Bundle.entry.resource", "the entry has no resource", "required")
    kind = resource["resourceType"]
    if kind not in ACCEPTED:
        raise Unusable(kind, f"{kind:.40} is not a resource Attune accepts", "not-supported")
    try:
        get_fhir_model_class(kind).model_validate(resource)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        path = kind + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        raise Unusable(path, f"not valid FHIR R4: {_GOT.sub('', err['msg'])}", "structure") from None


def references(value: Any) -> set[str]:
    """Every `reference` string inside a resource."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "reference" and isinstance(v, str):
                found.add(v)
            else:
                found |= references(v)
    elif isinstance(value, list):
        for v in value:
            found |= references(v)
    return found


def keys_to_load(ctx: Context, entries: list[Entry]) -> set[str]:
    """The "Type/id" keys a request may need from the store: its resources and their references."""
    wanted: set[str] = set()
    for e in entries:
        if isinstance(e.resource, dict):
            if isinstance(e.resource.get("id"), str):
                wanted.add(f"{e.resource.get('resourceType')}/{e.resource['id']}")
            for ref in references(e.resource):
                key = ctx.key({"reference": ref})
                if key:
                    wanted.add(key)
    return wanted


def prepare(ctx: Context, entries: list[Entry]) -> None:
    """Index the bundle's fullUrls so references between its entries resolve."""
    for e in entries:
        r = e.resource
        if e.full_url and isinstance(r, dict) and isinstance(r.get("id"), str):
            ctx.full_urls[e.full_url] = f"{r.get('resourceType')}/{r['id']}"


def _order(kind: str, entries: list[Entry]) -> list[Entry]:
    """The order entries are applied in. Patients always first (they publish nothing). A transaction's
    entries may refer to each other in any order: referenced types first (EpisodeOfCare, Appointment,
    Encounter, QuestionnaireResponse). A batch keeps its order (FHIR: its entries are independent); a
    history lists newest first, so it is applied oldest first."""
    seq = list(reversed(entries)) if kind == "history" else list(entries)

    def rank(e: Entry) -> int:
        kind_of = str(e.resource.get("resourceType")) if isinstance(e.resource, dict) else ""
        if kind_of == "Patient":
            return 0
        return _RANK.get(kind_of, 99) if kind == "transaction" else 1

    return sorted(seq, key=rank)


def _rejected_at(mapped: Mapped, exc: EnvelopeRejected) -> Unusable:
    loc = exc.details[0]["loc"] if exc.details else []
    expression = mapped.key.split("/", 1)[0]
    if (
        len(loc) >= 3
        and loc[:2] == ["payload", "items"]
        and isinstance(loc[2], int)
        and loc[2] < len(mapped.items)
    ):
        expression = mapped.items[loc[2]]
    elif len(loc) >= 2 and loc[0] == "payload":
        expression = mapped.where.get(str(loc[1]), expression)
    elif loc == ["occurred_at"]:
        expression += ".meta.lastUpdated"
    message = re.sub(r"^payload\.items\[\d+\]: ", "", _GOT.sub("", exc.message))
    return Unusable(expression, message)


def ingest(doc: Any, ctx: Context, key: bytes, now: datetime) -> Outcome:
    """Map every entry; the caller publishes `envelopes` and `dead`, then remembers `remember`."""
    kind, entries = entries_of(doc)
    prepare(ctx, entries)
    result = Outcome(entries)
    for e in _order(kind, entries):
        if e.response:
            continue
        if (
            isinstance(e.resource, dict)
            and e.resource.get("resourceType") == "Parameters"
            and kind == "history"
        ):
            e.response = {
                "status": "200 OK",
                "outcome": outcome("information", "informational", "subscription status read"),
            }
            continue
        try:
            schema_check(e.resource)
            if _stale(e.resource, ctx):
                e.response = {
                    "status": "200 OK",
                    "outcome": outcome("information", "informational", "an older version than intake has"),
                }
                continue
            mapped = map_resource(e.resource, ctx)
            e.mapped = mapped
            _publishable(e, mapped, ctx, key, result)
        except Unusable as exc:
            e.response = _unusable_response(exc)
            if exc.status != 403:
                result.dead.append(_dead_letter(e, exc, now))
    return result


def _stamp(resource: dict[str, Any]) -> tuple[int | None, datetime | None]:
    """The resource's version number (when meta.versionId is one) and meta.lastUpdated."""
    meta = obj(resource.get("meta"))
    vid = meta.get("versionId")
    return (int(vid) if isinstance(vid, str) and vid.isdigit() else None), instant(meta.get("lastUpdated"))


def _stale(resource: dict[str, Any], ctx: Context) -> bool:
    """Whether intake already has a newer version of this resource (a re-sent old version changes
    nothing: its event, if any, was published under the same id the first time)."""
    rid = resource.get("id")
    before = ctx.known.get(f"{resource.get('resourceType')}/{rid}") if isinstance(rid, str) else None
    if not before:
        return False
    number, updated = _stamp(resource)
    if number is not None and isinstance(before.get("version"), int):
        return number < before["version"]
    known = instant(before.get("updated"))
    return updated is not None and known is not None and updated < known


def _publishable(e: Entry, mapped: Mapped, ctx: Context, key: bytes, result: Outcome) -> None:
    before = ctx.known.get(mapped.key) or {}
    facts = dict(mapped.facts)
    number, updated = _stamp(e.resource)
    facts["version"], facts["updated"] = number, updated.isoformat() if updated else None
    if mapped.envelope is None:
        facts["last"] = before.get("last")
        _learn(ctx, result, mapped.key, facts)
        e.response = {"status": "200 OK", "outcome": outcome("information", "informational", mapped.note)}
        return
    fingerprint = mapped.fingerprint
    raw = json.dumps(mapped.envelope, separators=(",", ":"), ensure_ascii=False).encode()
    try:
        env = parse_envelope(raw)
    except EnvelopeRejected as exc:
        raise _rejected_at(mapped, exc) from None
    facts["last"] = fingerprint
    # The answer names no pseudonym: a client_ref beside the MRN the caller sent would be a second,
    # unaudited re-identification door (intake's GET /v1/clients/{client_ref} is the only one).
    if before.get("last") == fingerprint:
        e.response = {
            "status": "200 OK",
            "outcome": outcome("information", "informational", f"unchanged: no new {env.event_type}"),
        }
        _learn(ctx, result, mapped.key, facts)
        return
    _learn(ctx, result, mapped.key, facts)
    patient_key = facts.get("patient")
    if patient_key and ctx.known.get(patient_key, {}).get("clinic_id") is None:
        _learn(ctx, result, patient_key, {**ctx.known[patient_key], "clinic_id": env.clinic_id})
    e.envelope, e.raw = env, raw
    result.envelopes.append((env, raw))
    e.response = {
        "status": "201 Created",
        "outcome": outcome("information", "informational", f"{env.event_type} published"),
    }


def _learn(ctx: Context, result: Outcome, key: str, facts: dict[str, Any]) -> None:
    ctx.known[key] = facts
    result.remember[key] = facts


def _dead_letter(e: Entry, exc: Unusable, now: datetime) -> DeadLetter:
    raw = json.dumps(e.resource, separators=(",", ":"), ensure_ascii=False).encode()
    message = f"{exc.expression}: {exc.message}"
    return DeadLetter.from_rejection(
        raw,
        DeadLetterOrigin(topic="http"),
        "fhir_unusable",
        message,
        [{"loc": [exc.expression], "msg": exc.message}],
        now,
    )
