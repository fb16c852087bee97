"""Every message shape Attune reads or writes on Kafka, as frozen Pydantic models (contract.md 2-5)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar, Final, Literal, Self, TypeAlias, get_args

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from attune_shared.ids import (
    APPOINTMENT_REF_PATTERN,
    CLIENT_REF_PATTERN,
    EPISODE_REF_PATTERN,
    EVENT_REF_PATTERN,
    RESPONSE_REF_PATTERN,
    derived_id,
)
from attune_shared.instruments import InstrumentName, ItemError, check_items, is_integer_scale
from attune_shared.topics import Topics

MAX_ERROR_DETAILS: Final = 50  # a dead letter lists at most this many validation errors
MAX_RECORD_BYTES: Final = 64 * 1024  # contract section 2: "a record over 64 KiB" (exactly 64 KiB is accepted)

# ---------------------------------------------------------------- constrained scalars


def _printable(value: str) -> str:
    # "Printable" as str.isprintable(): no control, format or separator characters except the ASCII space.
    if not value.isprintable():
        raise ValueError("must contain printable characters only")
    return value


def _integer_one(value: object) -> object:
    # Literal[1] on its own accepts true and 1.0 (they compare equal to 1); the contract says integer.
    if type(value) is not int:
        raise PydanticCustomError("int_type", "Input should be the integer 1")
    return value


def _not_future_year(value: int) -> int:
    # The bound moves every new year, so it cannot be a static `le=`; UTC decides which year "now" is.
    this_year = datetime.now(UTC).year
    if value > this_year:
        raise ValueError(f"must not be after the current year {this_year}")
    return value


EventId = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_printable)]
Ref = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_printable)]
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
Uuid = Annotated[
    str, StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
ClientRef = Annotated[str, StringConstraints(pattern=CLIENT_REF_PATTERN)]
# Keyed pseudonyms of EHR identifiers (contract section 6): the only form they take beyond intake,
# so an EHR's own id (often built from the MRN) cannot even be validated onto an internal topic.
EventRef = Annotated[str, StringConstraints(pattern=EVENT_REF_PATTERN)]
AppointmentRef = Annotated[str, StringConstraints(pattern=APPOINTMENT_REF_PATTERN)]
ResponseRef = Annotated[str, StringConstraints(pattern=RESPONSE_REF_PATTERN)]
EpisodeRef = Annotated[str, StringConstraints(pattern=EPISODE_REF_PATTERN)]
SchemaVersion = Annotated[Literal[1], BeforeValidator(_integer_one)]
BirthYear = Annotated[int, Field(ge=1900), AfterValidator(_not_future_year)]
# BCP 47 (RFC 5646) syntax: language (2-3 letters, up to 3 extlangs), script, region, variants, extensions,
# private use; or a private-use-only tag. 4-8 letter primary subtags are left out: none is registered and
# they would let words like "english" through.
LanguageTag = Annotated[
    str,
    StringConstraints(
        max_length=64,
        pattern=(
            r"^(?:[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3}(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|[0-9]{3}))?"
            r"(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*"
            r"(?:-[Xx](?:-[A-Za-z0-9]{1,8})+)?|[Xx](?:-[A-Za-z0-9]{1,8})+)$"
        ),
    ),
]
Items = list[int | float | None]

Modality = Literal["in_person", "video", "phone"]
MissedReason = Literal["no_show", "late_cancel"]
CancelledBy = Literal["client", "clinician", "clinic"]
ResponseStatus = Literal["completed", "amended"]
Respondent = Literal["client", "clinician"]
ClosureReason = Literal["planned", "mutual", "unilateral", "transferred", "other"]
EhrEventType = Literal[
    "client.referred",
    "clinician.assigned",
    "appointment.scheduled",
    "session.attended",
    "session.missed",
    "session.cancelled",
    "questionnaire.completed",
    "episode.closed",
]
EHR_EVENT_TYPES: Final[tuple[str, ...]] = get_args(EhrEventType)
DeadLetterCode = Literal[
    "invalid_json",
    "not_an_object",
    "schema_violation",
    "unknown_event_type",
    "unsupported_version",
    "too_large",
]
AlertEventType = Literal[
    "alert.raised", "alert.updated", "alert.acknowledged", "alert.escalated", "alert.resolved"
]
ALERT_EVENT_TYPES: Final[tuple[str, ...]] = get_args(AlertEventType)
Severity = Literal["urgent", "high", "normal"]
AlertStatus = Literal["open", "acknowledged", "resolved"]
Resolution = Literal["repaired", "re_engaged", "episode_ended", "addressed", "false_positive"]


class Frozen(BaseModel):
    """Base of every message: immutable, unknown fields rejected, no type coercion."""

    # strict: JSON still parses RFC 3339 strings into datetimes, but "3" is not 3 and true is not 1.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def _validated_items(value: Any, info: ValidationInfo) -> Any:
    """Apply the instrument's item rules, raising at the offending item (intake's and measures' shapes)."""
    instrument = info.data.get("instrument")
    if instrument is None or not isinstance(value, list):
        return value  # the instrument's or the list's own error is the one to report
    try:
        check_items(instrument, value)
    except ItemError as exc:
        message = exc.message if exc.loc_index is not None else f"payload.items: {exc.message}"
        raise PydanticCustomError(
            "item_invalid", "{message}", {"message": message, "item_index": exc.loc_index}
        ) from None
    if is_integer_scale(instrument):
        # 3.0 is an integer in JSON's number model; store it as 3 so scores and round-trips stay ints.
        return [None if v is None else int(v) for v in value]
    return value


# ---------------------------------------------------------------- inbound payloads (contract section 2)


class ClientReferredPayload(Frozen):
    """Payload of `client.referred`."""

    mrn: Ref
    referred_on: date
    clinician_id: Ref | None = None
    birth_year: BirthYear | None = None
    preferred_language: LanguageTag | None = None
    interpreter_needed: bool | None = None
    referral_source: str | None = None


class ClinicianAssignedPayload(Frozen):
    """Payload of `clinician.assigned`."""

    mrn: Ref
    clinician_id: Ref


class AppointmentScheduledPayload(Frozen):
    """Payload of `appointment.scheduled`."""

    mrn: Ref
    appointment_id: Ref
    clinician_id: Ref
    scheduled_start: AwareDatetime
    modality: Modality


class SessionAttendedPayload(Frozen):
    """Payload of `session.attended`."""

    mrn: Ref
    appointment_id: Ref
    clinician_id: Ref
    modality: Modality
    duration_minutes: Annotated[int, Field(ge=1, le=600)] | None = None


class SessionMissedPayload(Frozen):
    """Payload of `session.missed`."""

    mrn: Ref
    appointment_id: Ref
    clinician_id: Ref
    modality: Modality
    reason: MissedReason


class SessionCancelledPayload(Frozen):
    """Payload of `session.cancelled`."""

    mrn: Ref
    appointment_id: Ref
    clinician_id: Ref
    cancelled_by: CancelledBy
    hours_notice: Annotated[float, Field(ge=0)] | None = None


class QuestionnaireCompletedPayload(Frozen):
    """Payload of `questionnaire.completed`; `items` follow the instrument's published order."""

    mrn: Ref
    response_id: Ref
    status: ResponseStatus
    instrument: InstrumentName  # declared before items: the items validator reads it
    respondent: Respondent
    clinician_id: Ref
    appointment_id: Ref | None = None
    items: Items

    _check_items = field_validator("items", mode="before")(_validated_items)


class EpisodeClosedPayload(Frozen):
    """Payload of `episode.closed`."""

    mrn: Ref
    reason: ClosureReason
    closed_on: date


EhrPayload: TypeAlias = (
    ClientReferredPayload
    | ClinicianAssignedPayload
    | AppointmentScheduledPayload
    | SessionAttendedPayload
    | SessionMissedPayload
    | SessionCancelledPayload
    | QuestionnaireCompletedPayload
    | EpisodeClosedPayload
)

PAYLOAD_TYPES: Final[Mapping[str, type[EhrPayload]]] = {
    "client.referred": ClientReferredPayload,
    "clinician.assigned": ClinicianAssignedPayload,
    "appointment.scheduled": AppointmentScheduledPayload,
    "session.attended": SessionAttendedPayload,
    "session.missed": SessionMissedPayload,
    "session.cancelled": SessionCancelledPayload,
    "questionnaire.completed": QuestionnaireCompletedPayload,
    "episode.closed": EpisodeClosedPayload,
}

# ---------------------------------------------------------------- inbound envelope


class EhrEnvelope(Frozen):
    """The inbound EHR envelope; parse_envelope returns the subclass that matches `event_type`."""

    topic: ClassVar[str] = Topics.EHR_EVENTS

    event_id: EventId
    event_type: EhrEventType
    schema_version: SchemaVersion
    source: Code
    clinic_id: Code
    occurred_at: AwareDatetime
    payload: EhrPayload

    @model_validator(mode="after")
    def _payload_matches_type(self) -> Self:
        # Guards direct construction of the base class; the per-type subclasses get this from their types.
        if type(self.payload) is not PAYLOAD_TYPES[self.event_type]:
            raise ValueError(f"payload is not a {self.event_type} payload")
        return self

    @property
    def mrn(self) -> str:
        """The payload's medical record number (PHI: never log it, never let it leave intake)."""
        return self.payload.mrn

    @property
    def kafka_key(self) -> str:
        """The contract's record key, `clinic_id:mrn`."""
        return f"{self.clinic_id}:{self.mrn}"


class ClientReferredEnvelope(EhrEnvelope):
    """Envelope of `client.referred`."""

    event_type: Literal["client.referred"] = "client.referred"
    payload: ClientReferredPayload


class ClinicianAssignedEnvelope(EhrEnvelope):
    """Envelope of `clinician.assigned`."""

    event_type: Literal["clinician.assigned"] = "clinician.assigned"
    payload: ClinicianAssignedPayload


class AppointmentScheduledEnvelope(EhrEnvelope):
    """Envelope of `appointment.scheduled`."""

    event_type: Literal["appointment.scheduled"] = "appointment.scheduled"
    payload: AppointmentScheduledPayload


class SessionAttendedEnvelope(EhrEnvelope):
    """Envelope of `session.attended`."""

    event_type: Literal["session.attended"] = "session.attended"
    payload: SessionAttendedPayload


class SessionMissedEnvelope(EhrEnvelope):
    """Envelope of `session.missed`."""

    event_type: Literal["session.missed"] = "session.missed"
    payload: SessionMissedPayload


class SessionCancelledEnvelope(EhrEnvelope):
    """Envelope of `session.cancelled`."""

    event_type: Literal["session.cancelled"] = "session.cancelled"
    payload: SessionCancelledPayload


class QuestionnaireCompletedEnvelope(EhrEnvelope):
    """Envelope of `questionnaire.completed`."""

    event_type: Literal["questionnaire.completed"] = "questionnaire.completed"
    payload: QuestionnaireCompletedPayload


class EpisodeClosedEnvelope(EhrEnvelope):
    """Envelope of `episode.closed`."""

    event_type: Literal["episode.closed"] = "episode.closed"
    payload: EpisodeClosedPayload


AnyEhrEnvelope: TypeAlias = Annotated[
    ClientReferredEnvelope
    | ClinicianAssignedEnvelope
    | AppointmentScheduledEnvelope
    | SessionAttendedEnvelope
    | SessionMissedEnvelope
    | SessionCancelledEnvelope
    | QuestionnaireCompletedEnvelope
    | EpisodeClosedEnvelope,
    Field(discriminator="event_type"),
]
_ENVELOPE_ADAPTER: TypeAdapter[AnyEhrEnvelope] = TypeAdapter(AnyEhrEnvelope)


class EnvelopeRejected(Exception):
    """An inbound record that must be dead-lettered with `code` (contract section 4)."""

    def __init__(
        self, code: DeadLetterCode, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code: DeadLetterCode = code
        self.message = message
        self.details: list[dict[str, Any]] = details or []


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
        return _ENVELOPE_ADAPTER.validate_json(raw)
    except ValidationError as exc:
        raise _classify(raw, exc.errors(include_url=False)) from None


# ---------------------------------------------------------------- dead letters (contract section 4)


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


# ---------------------------------------------------------------- internal, PHI-free events


class InternalEvent(Frozen):
    """Common fields of the pseudonymised events intake and measures publish (no mrn, no free text)."""

    topic: ClassVar[str]

    event_id: Uuid
    event_type: str  # each subclass narrows this to one Literal with a default
    schema_version: SchemaVersion = 1
    occurred_at: AwareDatetime
    source: Code
    source_event_id: EventRef  # the pseudonym of the EHR's event_id
    clinic_id: Code
    client_ref: ClientRef
    episode_id: EpisodeRef

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # Pydantic strips field defaults from the class; put event_type back so `SessionAttended.event_type`
        # names the type (a ClassVar could not share the field's name).
        default = cls.model_fields["event_type"].default
        if isinstance(default, str):
            setattr(cls, "event_type", default)  # noqa: B010 - a plain assignment would become a field

    @property
    def kafka_key(self) -> str:
        """Internal topics are keyed by client_ref, so one client's events stay in order."""
        return self.client_ref


class CareEvent(InternalEvent):
    """An event on the care topic."""

    topic: ClassVar[str] = Topics.CARE


class EpisodeOpened(CareEvent):
    """Intake opened an episode of care."""

    event_type: Literal["episode.opened"] = "episode.opened"
    opened_on: date
    clinician_id: Ref | None = None


class ClientReferred(CareEvent):
    """`client.referred` without its PHI (mrn, birth year, referral source)."""

    event_type: Literal["client.referred"] = "client.referred"
    referred_on: date
    clinician_id: Ref | None = None
    preferred_language: LanguageTag | None = None
    interpreter_needed: bool | None = None


class ClinicianAssigned(CareEvent):
    """A clinician was assigned to the episode."""

    event_type: Literal["clinician.assigned"] = "clinician.assigned"
    clinician_id: Ref


class AppointmentScheduled(CareEvent):
    """An appointment was scheduled."""

    event_type: Literal["appointment.scheduled"] = "appointment.scheduled"
    appointment_id: AppointmentRef
    clinician_id: Ref
    scheduled_start: AwareDatetime
    modality: Modality


class SessionAttended(CareEvent):
    """The client attended a session."""

    event_type: Literal["session.attended"] = "session.attended"
    appointment_id: AppointmentRef
    clinician_id: Ref
    modality: Modality
    duration_minutes: Annotated[int, Field(ge=1, le=600)] | None = None


class SessionMissed(CareEvent):
    """The client missed a session (no-show or late cancellation)."""

    event_type: Literal["session.missed"] = "session.missed"
    appointment_id: AppointmentRef
    clinician_id: Ref
    modality: Modality
    reason: MissedReason


class SessionCancelled(CareEvent):
    """A session was cancelled."""

    event_type: Literal["session.cancelled"] = "session.cancelled"
    appointment_id: AppointmentRef
    clinician_id: Ref
    cancelled_by: CancelledBy
    hours_notice: Annotated[float, Field(ge=0)] | None = None


class EpisodeClosed(CareEvent):
    """The episode of care was closed."""

    event_type: Literal["episode.closed"] = "episode.closed"
    reason: ClosureReason
    closed_on: date


class ResponseSubmitted(InternalEvent):
    """A questionnaire response, for measures to score; an amended one replaces its response_id.

    It travels on the care topic, between the client's care events, so that measures sees (and
    passes on to alerts) one client's responses and sessions in the order the EHR sent them.
    """

    topic: ClassVar[str] = Topics.CARE

    event_type: Literal["response.submitted"] = "response.submitted"
    response_id: ResponseRef
    status: ResponseStatus
    instrument: InstrumentName  # declared before items: the items validator reads it
    respondent: Respondent
    clinician_id: Ref
    appointment_id: AppointmentRef | None = None
    appointment_start: AwareDatetime | None = None  # filled when intake already knows the appointment
    items: Items

    _check_items = field_validator("items", mode="before")(_validated_items)


class ChangeFromIntake(Frozen):
    """Change of a score against the episode's first scored response of that instrument."""

    intake_response_id: ResponseRef
    intake_score: float
    change: float
    reliable_improvement: bool
    reliable_deterioration: bool
    threshold: float


class SeriesContext(Frozen):
    """Where a score sits in its alliance series, with the rupture statistics when there is enough history."""

    series_key: Annotated[str, StringConstraints(min_length=1)]
    score: float
    position: Annotated[int, Field(ge=1)]
    earlier_count: Annotated[int, Field(ge=0)]
    earlier_response_ids: list[ResponseRef]
    mu: float | None = None
    sd_within: float | None = None
    sd_eff: float | None = None
    drop: float | None = None


class MeasureScored(InternalEvent):
    """A scored response (one revision of it), with the context the alert rules need."""

    topic: ClassVar[str] = Topics.MEASURES

    event_type: Literal["measure.scored"] = "measure.scored"
    response_id: ResponseRef
    revision: Annotated[int, Field(ge=1)]
    status: ResponseStatus
    instrument: InstrumentName
    respondent: Respondent
    clinician_id: Ref
    appointment_id: AppointmentRef | None = None
    session_at: AwareDatetime  # orders the series: the appointment time, else the completion time
    scores: dict[str, float | int | bool | str | None]
    change: ChangeFromIntake | None = None
    series: SeriesContext | None = None
    rule_versions: dict[str, Annotated[int, Field(ge=1)]]
    superseded: bool = False  # true on the re-publication of a revision an amendment replaced


# ---------------------------------------------------------------- alerts (contract section 5)


class Alert(Frozen):
    """An alert's current state, as carried by every alert event."""

    alert_id: Uuid
    clinic_id: Code
    # Nullable: an episode can exist before a clinician is assigned.
    clinician_id: Ref | None = None
    client_ref: ClientRef
    episode_id: EpisodeRef
    rule_id: Code
    rule_version: Annotated[int, Field(ge=1)]
    severity: Severity
    status: AlertStatus
    title: Annotated[str, StringConstraints(min_length=1)]
    evidence: dict[str, JsonValue]
    suggested_action: str
    raised_at: AwareDatetime
    # When the care event or response behind the alert happened in the EHR (additive, optional):
    # reports count an alert in that month, so a backfill or a rebuild does not move it to today.
    triggered_at: AwareDatetime | None = None
    acknowledged_at: AwareDatetime | None = None
    acknowledged_by: str | None = None
    resolved_at: AwareDatetime | None = None
    resolution: Resolution | None = None
    escalation_level: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _resolution_iff_resolved(self) -> Self:
        resolved = self.status == "resolved"
        if resolved != (self.resolution is not None) or resolved != (self.resolved_at is not None):
            raise ValueError("resolution and resolved_at are set exactly when status is resolved")
        return self


class AlertEvent(Frozen):
    """A change in an alert's lifecycle, published on `clinic.alerts.v1` keyed by the alert's client_ref."""

    topic: ClassVar[str] = Topics.ALERTS
    event_types: ClassVar[tuple[str, ...]] = ALERT_EVENT_TYPES

    event_id: Uuid
    event_type: AlertEventType
    occurred_at: AwareDatetime
    alert: Alert

    @property
    def kafka_key(self) -> str:
        """The alert's client_ref."""
        return self.alert.client_ref


# ---------------------------------------------------------------- dispatch

CARE_EVENT_TYPES: Final[Mapping[str, type[CareEvent]]] = {
    cls.event_type: cls
    for cls in (
        EpisodeOpened,
        ClientReferred,
        ClinicianAssigned,
        AppointmentScheduled,
        SessionAttended,
        SessionMissed,
        SessionCancelled,
        EpisodeClosed,
    )
}
RESPONSE_EVENT_TYPES: Final[Mapping[str, type[ResponseSubmitted]]] = {
    ResponseSubmitted.event_type: ResponseSubmitted
}
MEASURE_EVENT_TYPES: Final[Mapping[str, type[MeasureScored]]] = {MeasureScored.event_type: MeasureScored}
ALERT_EVENT_CLASSES: Final[Mapping[str, type[AlertEvent]]] = dict.fromkeys(ALERT_EVENT_TYPES, AlertEvent)
# clinic.care.v1 carries intake's canonical stream (care events and responses, in EHR order per
# client); clinic.measures.v1 carries measures' scores with the care events forwarded between them,
# so alerts reads one ordered stream per client.
EVENT_TYPES_BY_TOPIC: Final[Mapping[str, Mapping[str, type[BaseModel]]]] = {
    Topics.CARE: {**CARE_EVENT_TYPES, **RESPONSE_EVENT_TYPES},
    Topics.MEASURES: {**MEASURE_EVENT_TYPES, **CARE_EVENT_TYPES},
    Topics.ALERTS: ALERT_EVENT_CLASSES,
}

AnyInternalEvent: TypeAlias = Annotated[
    EpisodeOpened
    | ClientReferred
    | ClinicianAssigned
    | AppointmentScheduled
    | SessionAttended
    | SessionMissed
    | SessionCancelled
    | EpisodeClosed
    | ResponseSubmitted
    | MeasureScored
    | AlertEvent,
    Field(discriminator="event_type"),
]
_INTERNAL_ADAPTER: TypeAdapter[AnyInternalEvent] = TypeAdapter(AnyInternalEvent)


def parse_internal(raw: bytes) -> AnyInternalEvent:
    """Validate an internal topic's record into the class its event_type names (raises ValidationError)."""
    return _INTERNAL_ADAPTER.validate_json(raw)


__all__ = [
    "ALERT_EVENT_CLASSES",
    "ALERT_EVENT_TYPES",
    "CARE_EVENT_TYPES",
    "EHR_EVENT_TYPES",
    "EVENT_TYPES_BY_TOPIC",
    "MAX_RECORD_BYTES",
    "MEASURE_EVENT_TYPES",
    "PAYLOAD_TYPES",
    "RESPONSE_EVENT_TYPES",
    "Alert",
    "AlertEvent",
    "AnyEhrEnvelope",
    "AnyInternalEvent",
    "AppointmentScheduled",
    "AppointmentScheduledEnvelope",
    "AppointmentScheduledPayload",
    "CareEvent",
    "ChangeFromIntake",
    "ClientReferred",
    "ClientReferredEnvelope",
    "ClientReferredPayload",
    "ClinicianAssigned",
    "ClinicianAssignedEnvelope",
    "ClinicianAssignedPayload",
    "DeadLetter",
    "DeadLetterCode",
    "DeadLetterError",
    "DeadLetterOrigin",
    "EhrEnvelope",
    "EhrEventType",
    "EhrPayload",
    "EnvelopeRejected",
    "EpisodeClosed",
    "EpisodeClosedEnvelope",
    "EpisodeClosedPayload",
    "EpisodeOpened",
    "Frozen",
    "InternalEvent",
    "MeasureScored",
    "QuestionnaireCompletedEnvelope",
    "QuestionnaireCompletedPayload",
    "ResponseSubmitted",
    "SeriesContext",
    "SessionAttended",
    "SessionAttendedEnvelope",
    "SessionAttendedPayload",
    "SessionCancelled",
    "SessionCancelledEnvelope",
    "SessionCancelledPayload",
    "SessionMissed",
    "SessionMissedEnvelope",
    "SessionMissedPayload",
    "Topics",
    "parse_envelope",
    "parse_internal",
]
