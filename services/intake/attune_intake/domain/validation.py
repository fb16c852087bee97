"""Intake's validation of an inbound EHR record: the envelope, or the dead-letter code and reason. Pure.

The shapes are the contract's (attune_shared.events.ehr); which dead-letter code a failure earns, and
how its reason is worded without quoting PHI, is intake's policy and lives here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from attune_shared.events import (
    EHR_EVENT_TYPES,
    MAX_RECORD_BYTES,
    EhrEnvelope,
    EnvelopeRejected,
    nul_escaped,
    validate_envelope,
)

MAX_ERROR_DETAILS: Final = 50  # a dead letter lists at most this many validation errors


# Values of these fields are PHI, and unknown fields may be too (a stray "name"): error messages end up
# in logs, so they quote neither. The raw record itself is kept in the DLQ, which only admins can read.
_UNQUOTABLE: Final = frozenset({"mrn", "birth_year", "referral_source"})

_JSON_KINDS: Final[Mapping[type, str]] = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _loc_text(loc: list[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "envelope"


def _clean(error: ErrorDetails) -> dict[str, Any]:
    """Pydantic's error as the contract's {"loc", "msg"}, with the union's tag dropped from the location."""
    loc = list(error["loc"])
    msg = error["msg"]
    if error["type"] == "union_tag_not_found":
        loc, msg = ["event_type"], "Field required"
    elif error["type"] == "union_tag_invalid":
        loc = ["event_type"]
    elif loc and loc[0] in EHR_EVENT_TYPES:
        loc = loc[1:]  # the discriminated union prefixes the tag: ("session.missed", "payload", ...)
    if error["type"] == "item_invalid" and error.get("ctx", {}).get("item_index") is not None:
        loc.append(error["ctx"]["item_index"])
    # A key of the sent JSON can hold a NUL (`"a\u0000b"`), and so can a location naming it.
    loc = [nul_escaped(part) if isinstance(part, str) else part for part in loc]
    return {"loc": loc, "msg": nul_escaped(msg)}


def _message(error: ErrorDetails, detail: dict[str, Any]) -> str:
    """The one-line summary: the first offending location, its complaint and, when safe, the value sent."""
    if error["type"] == "item_invalid":
        return str(detail["msg"])  # already names payload.items[i] and the value
    loc = detail["loc"]
    text = f"{_loc_text(loc)}: {detail['msg']}"
    value = error.get("input")
    scalar = value is None or isinstance(value, str | int | float | bool)
    phi = any(part in _UNQUOTABLE for part in loc)
    if scalar and not phi and error["type"] not in ("missing", "extra_forbidden"):
        shown = json.dumps(value)
        text += f" (got {shown[:80] + '...' if len(shown) > 80 else shown})"
    return text


def _classify(raw: bytes, errors: list[ErrorDetails]) -> EnvelopeRejected:
    """Turn a failed validation into the dead-letter code the contract asks for."""
    if errors and errors[0]["type"] == "json_invalid":
        return EnvelopeRejected("invalid_json", errors[0]["msg"], [{"loc": [], "msg": errors[0]["msg"]}])
    try:
        data = json.loads(raw.decode("utf-8"))  # decode first: json.loads would also accept UTF-16/32
    except (ValueError, RecursionError) as exc:
        msg = f"Invalid JSON: {exc}"
        return EnvelopeRejected("invalid_json", msg, [{"loc": [], "msg": msg}])
    if not isinstance(data, dict):
        msg = f"the record is a JSON {_JSON_KINDS.get(type(data), 'value')}, not an object"
        return EnvelopeRejected("not_an_object", msg, [{"loc": [], "msg": msg}])
    version = data.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version != 1:
        msg = f"schema_version {version} is not supported (only 1)"
        return EnvelopeRejected("unsupported_version", msg, [{"loc": ["schema_version"], "msg": msg}])
    event_type = data.get("event_type")
    if isinstance(event_type, str) and event_type not in EHR_EVENT_TYPES:
        msg = f"event_type {json.dumps(event_type)[:80]} is not a known event type"
        return EnvelopeRejected("unknown_event_type", msg, [{"loc": ["event_type"], "msg": msg}])
    # A record of thousands of unknown fields would make a dead letter many times its own size.
    details = [_clean(e) for e in errors[:MAX_ERROR_DETAILS]]
    message = _message(errors[0], details[0])
    if len(errors) > MAX_ERROR_DETAILS:
        message += f" (and {len(errors) - 1} more errors; the first {MAX_ERROR_DETAILS} are in details)"
    return EnvelopeRejected("schema_violation", message, details)


def parse_envelope(raw: bytes) -> EhrEnvelope:
    """Validate one inbound record, or raise EnvelopeRejected with the dead-letter code for it."""
    if len(raw) > MAX_RECORD_BYTES:
        raise EnvelopeRejected(
            "too_large", f"the record is {len(raw)} bytes, over the {MAX_RECORD_BYTES} limit"
        )
    try:
        # The fast path validates straight from bytes; only failures pay for a second parse to classify.
        return validate_envelope(raw)
    except ValidationError as exc:
        raise _classify(raw, exc.errors(include_url=False)) from None
