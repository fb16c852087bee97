"""Which event classes travel on each internal topic, and the parser of any internal record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Final, TypeAlias

from pydantic import BaseModel, Field, TypeAdapter

from attune_shared.events.alerts import ALERT_EVENT_CLASSES, AlertEvent
from attune_shared.events.care import (
    CARE_EVENT_TYPES,
    RESPONSE_EVENT_TYPES,
    AppointmentScheduled,
    ClientReferred,
    ClinicianAssigned,
    EpisodeClosed,
    EpisodeOpened,
    ResponseSubmitted,
    SessionAttended,
    SessionCancelled,
    SessionMissed,
)
from attune_shared.events.measures import MEASURE_EVENT_TYPES, MeasureScored
from attune_shared.topics import Topics

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
