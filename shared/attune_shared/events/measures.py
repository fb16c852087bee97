"""Scores measures publishes on `clinic.measures.v1` (with the care events it forwards, see dispatch)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar, Final, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from attune_shared.events.common import (
    AppointmentRef,
    Frozen,
    InternalEvent,
    Ref,
    Respondent,
    ResponseRef,
    ResponseStatus,
)
from attune_shared.instruments import InstrumentName
from attune_shared.topics import Topics


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


class ExpectedBand(Frozen):
    """The network's expected score at this session for a client with this intake score (the current
    trajectory model of the instrument when the measure was first scored; docs/trajectories.md)."""

    # The position in the episode's series of the instrument, 1 = the intake.
    session_index: Annotated[int, Field(ge=1)]
    median: float
    low: float
    high: float
    quantiles: tuple[float, float, float]  # of low, median, high
    model_version: Annotated[str, StringConstraints(min_length=1)]
    model_fitted_at: AwareDatetime
    model_episodes: Annotated[int, Field(ge=1)]


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
    # ORS, PHQ-9, GAD-7 at session index >= 2, when the instrument had a trajectory model.
    expected: ExpectedBand | None = None
    rule_versions: dict[str, Annotated[int, Field(ge=1)]]
    superseded: bool = False  # true on the re-publication of a revision an amendment replaced


MEASURE_EVENT_TYPES: Final[Mapping[str, type[MeasureScored]]] = {MeasureScored.event_type: MeasureScored}
