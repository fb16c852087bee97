"""The inbound EHR records: payloads and envelopes of `clinic.ehr.events.v1` (contract.md section 2).

Intake validates records against these shapes and classifies what fails (attune_intake.domain.validation).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Annotated, ClassVar, Final, Literal, Self, TypeAlias, get_args

from pydantic import AfterValidator, AwareDatetime, Field, TypeAdapter, field_validator, model_validator

from attune_shared.events.common import (
    BirthYear,
    CancelledBy,
    ClosureReason,
    Code,
    EventId,
    Frozen,
    Items,
    LanguageTag,
    MissedReason,
    Modality,
    Ref,
    Respondent,
    ResponseStatus,
    SchemaVersion,
    validated_items,
)
from attune_shared.instruments import InstrumentName
from attune_shared.topics import Topics

# The instants an EHR's occurred_at may name, in UTC: 1900 up to the end of 2999. A clock years off
# is accepted; a sentinel such as 0001-01-01 or 9999-12-31 (the "min/max date" of many libraries), or
# an offset that pushes one past what a UTC timestamp can hold, is no time care happened, and the
# services' date arithmetic (21 days later, a month before) cannot be done on it: a schema_violation,
# where it used to stop measures' and alerts' partitions for ever (tests/faults/test_infra_faults.py).
# The same range holds for every time and date in a payload (scheduled_start, referred_on, closed_on):
# an appointment at a sentinel stopped intake's client-state write and measures' session time alike.
OCCURRED_FROM: Final = datetime(1900, 1, 1, tzinfo=UTC)
OCCURRED_UNTIL: Final = datetime(3000, 1, 1, tzinfo=UTC)
RANGE_TEXT: Final = "from 1900-01-01T00:00:00Z up to the end of 2999 (UTC)"


def _instant_in_range(at: datetime) -> datetime:
    # compared as instants (no conversion to UTC, which overflows at the edges of the calendar)
    if not OCCURRED_FROM <= at < OCCURRED_UNTIL:
        raise ValueError(f"must be an instant {RANGE_TEXT}")
    return at


def _day_in_range(day: date) -> date:
    if not OCCURRED_FROM.date() <= day < OCCURRED_UNTIL.date():
        raise ValueError("must be a date from 1900-01-01 up to 2999-12-31")
    return day


# An EHR's instant (RFC 3339 with an offset) or calendar date, within the range above.
EhrInstant = Annotated[AwareDatetime, AfterValidator(_instant_in_range)]
EhrDay = Annotated[date, AfterValidator(_day_in_range)]

MAX_RECORD_BYTES: Final = 64 * 1024  # contract section 2: "a record over 64 KiB" (exactly 64 KiB is accepted)

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

# ---------------------------------------------------------------- inbound payloads (contract section 2)


class ClientReferredPayload(Frozen):
    """Payload of `client.referred`."""

    mrn: Ref
    referred_on: EhrDay
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
    scheduled_start: EhrInstant
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

    _check_items = field_validator("items", mode="before")(validated_items)


class EpisodeClosedPayload(Frozen):
    """Payload of `episode.closed`."""

    mrn: Ref
    reason: ClosureReason
    closed_on: EhrDay


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
    occurred_at: EhrInstant
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


def validate_envelope(raw: bytes) -> EhrEnvelope:
    """Validate one record's JSON into the envelope its event_type names (raises pydantic's ValidationError).

    Intake's parse_envelope adds the size limit and turns a failure into a dead-letter code.
    """
    return _ENVELOPE_ADAPTER.validate_json(raw)
