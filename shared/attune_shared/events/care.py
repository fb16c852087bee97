"""The pseudonymised care stream intake publishes on `clinic.care.v1`: care events and responses."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Annotated, ClassVar, Final, Literal, TypeAlias

from pydantic import AwareDatetime, Field, field_validator

from attune_shared.events.common import (
    AppointmentRef,
    CancelledBy,
    ClosureReason,
    InternalEvent,
    Items,
    LanguageTag,
    MissedReason,
    Modality,
    Ref,
    Respondent,
    ResponseRef,
    ResponseStatus,
    validated_items,
)
from attune_shared.instruments import InstrumentName
from attune_shared.topics import Topics

# The client's age band at referral (clinical-rules.md, "Equity view"): intake computes it from
# `birth_year`, which never leaves intake.
AgeBand: TypeAlias = Literal["<18", "18-25", "26-40", "41-64", "65+"]


class CareEvent(InternalEvent):
    """An event on the care topic."""

    topic: ClassVar[str] = Topics.CARE


class EpisodeOpened(CareEvent):
    """Intake opened an episode of care."""

    event_type: Literal["episode.opened"] = "episode.opened"
    opened_on: date
    clinician_id: Ref | None = None


class ClientReferred(CareEvent):
    """`client.referred` without its PHI (mrn, birth year, referral source); the birth year only
    as the age band at `referred_on` (None: unknown)."""

    event_type: Literal["client.referred"] = "client.referred"
    referred_on: date
    clinician_id: Ref | None = None
    preferred_language: LanguageTag | None = None
    interpreter_needed: bool | None = None
    age_band: AgeBand | None = None


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

    _check_items = field_validator("items", mode="before")(validated_items)


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
