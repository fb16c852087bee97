"""Dead letters: the rejected inbound records kept on `clinic.ehr.dlq.v1` (contract.md section 4)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AwareDatetime, Field, JsonValue, StringConstraints, model_validator

from attune_shared.events.common import Frozen, Uuid
from attune_shared.ids import derived_id
from attune_shared.topics import Topics

DeadLetterCode = Literal[
    "invalid_json",
    "not_an_object",
    "schema_violation",
    "unknown_event_type",
    "unsupported_version",
    "too_large",
    "fhir_unusable",  # a FHIR resource POST /fhir/r4 cannot map onto an envelope (intake's fhir package)
]


class EnvelopeRejected(Exception):
    """An inbound record that must be dead-lettered with `code` (contract section 4)."""

    def __init__(
        self, code: DeadLetterCode, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code: DeadLetterCode = code
        self.message = message
        self.details: list[dict[str, Any]] = details or []


class DeadLetterOrigin(Frozen):
    """Where a rejected record came from; no partition and offset for HTTP submissions (topic "http")."""

    topic: Annotated[str, StringConstraints(min_length=1)]
    partition: Annotated[int, Field(ge=0)] | None = None
    offset: Annotated[int, Field(ge=0)] | None = None
    key: str | None = None

    @model_validator(mode="after")
    def _http_has_no_position(self) -> Self:
        if (self.partition is None) != (self.offset is None):
            raise ValueError("partition and offset are both set (Kafka) or both null (HTTP)")
        if self.partition is None and self.topic != "http":
            raise ValueError('a record without partition and offset must have topic "http"')
        return self


class DeadLetterError(Frozen):
    """Why a record was rejected."""

    code: DeadLetterCode
    message: str
    details: list[dict[str, JsonValue]] = []


def nul_escaped(text: str) -> str:
    """Text to keep in the store with any NUL written as the six characters `\\u0000`: the local store
    (PostgreSQL's jsonb) cannot hold U+0000, and a write that fails for ever would stall a partition."""
    return text.replace("\x00", "\\u0000")


def record_key(key: bytes | None) -> str | None:
    """A Kafka record's key as a dead letter's origin keeps it (undecodable bytes replaced, NUL escaped)."""
    return None if key is None else nul_escaped(key.decode("utf-8", "replace"))


def raw_text(raw: bytes) -> tuple[str, Literal["base64"] | None]:
    """A record's bytes as a dead letter keeps them: the text when they are UTF-8 without NUL
    characters, else base64 (`raw_encoding` says which). NUL is excluded because no text column can
    hold it in PostgreSQL (the local store), and an operator reads such bytes better as base64."""
    if b"\x00" not in raw:
        try:
            return raw.decode("utf-8"), None
        except UnicodeDecodeError:
            pass
    return base64.b64encode(raw).decode("ascii"), "base64"


class DeadLetter(Frozen):
    """A rejected inbound record, kept with its raw value so an operator can re-drive it."""

    topic: ClassVar[str] = Topics.EHR_DLQ

    dlq_id: Uuid
    received_at: AwareDatetime
    origin: DeadLetterOrigin
    raw: str
    raw_encoding: Literal["base64"] | None = None
    error: DeadLetterError
    # Who sent it over HTTP: {"name": the token's name, "role": its role}; null for a Kafka record.
    submitted_by: dict[str, str] | None = None

    @classmethod
    def from_rejection(
        cls,
        raw: bytes,
        origin: DeadLetterOrigin,
        code: DeadLetterCode,
        message: str,
        details: list[dict[str, Any]],
        received_at: datetime,
        *,
        dlq_id: str | None = None,
    ) -> DeadLetter:
        """Build a dead letter; raw bytes that are not UTF-8 text are kept as base64 (see raw_text)."""
        text, encoding = raw_text(raw)
        if dlq_id is None:
            # Derived, so re-consuming the same Kafka record dead-letters it under the same id.
            if origin.partition is not None:
                dlq_id = derived_id("dlq", origin.topic, str(origin.partition), str(origin.offset))
            else:
                dlq_id = derived_id(
                    "dlq", origin.topic, hashlib.sha256(raw).hexdigest(), received_at.isoformat()
                )
        return cls(
            dlq_id=dlq_id,
            received_at=received_at,
            origin=origin,
            raw=text,
            raw_encoding=encoding,
            error=DeadLetterError(code=code, message=message, details=details),
        )

    def raw_bytes(self) -> bytes:
        """The original record value, for a replay."""
        if self.raw_encoding == "base64":
            try:
                return base64.b64decode(self.raw, validate=True)
            except binascii.Error as exc:
                raise ValueError("raw is not valid base64") from exc
        return self.raw.encode("utf-8")
