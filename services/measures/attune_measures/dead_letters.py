"""measures' dead letters: records on the care topic it cannot read or score.

The shape mirrors intake's contract dead letter (contract.md section 4) so one tool can list both; only
the codes differ. Responses carry no PHI, so keeping the raw text is safe.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import JsonValue, ValidationError

from attune_measures.domain.scoring import UnscorableResponse
from attune_shared.events import (
    CareEvent,
    DeadLetterOrigin,
    Frozen,
    ResponseSubmitted,
    Uuid,
    parse_internal,
    raw_text,
)
from attune_shared.ids import derived_id

RejectionCode = Literal[
    "invalid_json", "not_an_object", "schema_violation", "unexpected_event_type", "unscorable"
]


class Rejected(ValueError):
    """A record measures cannot use; `code` is the dead-letter reason."""

    def __init__(
        self, code: RejectionCode, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.code: RejectionCode = code
        self.message = message
        self.details = details or []


class MeasuresDeadLetterError(Frozen):
    """Why a record was rejected."""

    code: RejectionCode
    message: str
    details: list[dict[str, JsonValue]] = []


class MeasuresDeadLetter(Frozen):
    """A rejected record on `clinic.measures.dlq.v1`, with its raw value."""

    dlq_id: Uuid
    received_at: datetime
    origin: DeadLetterOrigin
    raw: str
    raw_encoding: Literal["base64"] | None = None
    error: MeasuresDeadLetterError


def read_record(value: bytes | None) -> ResponseSubmitted | CareEvent:
    """Parse one record of the care topic (a response to score, or a care event to forward), or raise Rejected."""
    if value is None:
        raise Rejected("invalid_json", "record has no value (a tombstone)")
    try:
        event = parse_internal(value)
    except ValidationError as exc:
        raise _classify(value, exc) from None
    if not isinstance(event, ResponseSubmitted | CareEvent):
        msg = f"event_type {event.event_type!r} does not belong on the care topic"
        raise Rejected("unexpected_event_type", msg, [{"loc": ["event_type"], "msg": msg}])
    return event


def unscorable(exc: UnscorableResponse) -> Rejected:
    """The rejection for a response the scoring rules refuse."""
    loc: list[Any] = ["items", exc.item] if exc.item is not None else ["items"]
    return Rejected("unscorable", str(exc), [{"loc": loc, "msg": exc.reason}])


def _classify(value: bytes, exc: ValidationError) -> Rejected:
    try:
        data = json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        return Rejected("invalid_json", f"record is not JSON: {str(err)[:200]}")
    if not isinstance(data, dict):
        return Rejected("not_an_object", f"record is JSON but not an object ({type(data).__name__})")
    details: list[dict[str, Any]] = [
        {"loc": _loc(e["loc"]), "msg": e["msg"]} for e in exc.errors(include_url=False, include_input=False)
    ]
    event_type = data.get("event_type")
    if event_type != ResponseSubmitted.event_type:
        msg = f"event_type {json.dumps(event_type)[:80]} does not belong on the responses topic"
        return Rejected("unexpected_event_type", msg, details)
    first = details[0] if details else {"loc": [], "msg": str(exc)}
    where = ".".join(str(p) for p in first["loc"]) or "record"
    return Rejected("schema_violation", f"{where}: {first['msg']}"[:500], details)


def _loc(loc: tuple[int | str, ...]) -> list[int | str]:
    # Drop the union tag Pydantic puts first ("response.submitted"): the event_type is known here.
    parts = list(loc[1:]) if loc and loc[0] == ResponseSubmitted.event_type else list(loc)
    return [p if isinstance(p, int) else str(p) for p in parts]


def dead_letter(
    value: bytes | None, origin: DeadLetterOrigin, rejected: Rejected, received_at: datetime
) -> MeasuresDeadLetter:
    """The dead letter of a rejected record; its id is derived from the record's position (replay-safe)."""
    text, encoding = raw_text(value or b"")
    dlq_id = derived_id("measures.dlq", origin.topic, str(origin.partition), str(origin.offset))
    return MeasuresDeadLetter(
        dlq_id=dlq_id,
        received_at=received_at,
        origin=origin,
        raw=text,
        raw_encoding=encoding,
        error=MeasuresDeadLetterError(code=rejected.code, message=rejected.message, details=rejected.details),
    )
