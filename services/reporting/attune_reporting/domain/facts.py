"""Facts: one frozen value per input event, with the dimensions and values the figures need.

A fact's id is derived from its input (care: the event id; measure: source and response id;
alert: the alert id), so storing a fact twice is the same as storing it once. Measures and alerts
have a merge rule instead of plain insert: the higher revision wins, and the newer alert
transition wins (with a few monotone fields that only ever grow). Both rules are commutative, so
any interleaving of the same events gives the same facts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, Final, Literal

from attune_reporting.domain.months import month_of
from attune_shared.events import (
    AlertEvent,
    AppointmentScheduled,
    CareEvent,
    ClientReferred,
    ClinicianAssigned,
    EpisodeClosed,
    EpisodeOpened,
    MeasureScored,
    SessionAttended,
    SessionCancelled,
    SessionMissed,
)

CareKind = Literal["opened", "referred", "assigned", "scheduled", "attended", "missed", "cancelled", "closed"]
UNASSIGNED: Final = "unassigned"
RUPTURE_RULE: Final = "alliance.rupture"

_STATUS_RANK: Final = {"open": 0, "acknowledged": 1, "resolved": 2}
_TYPE_RANK: Final = {
    "alert.raised": 0,
    "alert.updated": 1,
    "alert.escalated": 2,
    "alert.acknowledged": 3,
    "alert.resolved": 4,
}


@dataclass(frozen=True, slots=True)
class CareFact:
    """One care event (clinic.care.v1), placed in the cell of its occurred_at month."""

    fact_id: str
    kind: CareKind
    clinic_id: str
    client_ref: str
    episode_id: str
    month: str
    occurred_at: datetime
    clinician_id: str | None = None
    modality: str | None = None
    appointment_id: str | None = None
    reason: str | None = None  # missed: no_show | late_cancel; closed: the closure reason
    cancelled_by: str | None = None
    scheduled_start: datetime | None = None
    day: date | None = None  # opened_on, referred_on or closed_on
    # referred: the client's attributes the equity view breaks figures down by (None: not sent)
    language: str | None = None  # primary subtag of preferred_language, lower case
    interpreter: bool | None = None
    age_band: str | None = None


@dataclass(frozen=True, slots=True)
class MeasureFact:
    """The current revision of one scored response, placed in the cell of its session month."""

    fact_id: str
    revision: int
    instrument: str
    respondent: str
    clinic_id: str
    client_ref: str
    episode_id: str
    clinician_id: str
    month: str
    session_at: datetime
    occurred_at: datetime
    appointment_id: str | None = None
    mean: float | None = None  # WAI-SR mean and subscale means
    task: float | None = None
    bond: float | None = None
    goal: float | None = None
    total: float | None = None  # SRS, ORS, PHQ-9, GAD-7 totals
    alliance_concern: bool | None = None  # SRS
    reliable_improvement: bool | None = None  # None when the measure has no change from intake
    reliable_deterioration: bool | None = None


@dataclass(frozen=True, slots=True)
class AlertFact:
    """The latest known state of one alert, placed in the cell of the month it was triggered in (else raised)."""

    fact_id: str
    alert_id: str
    clinic_id: str
    client_ref: str
    episode_id: str
    clinician_id: str
    month: str
    rule_id: str
    seq: str  # orders transitions: occurred_at (UTC), status, escalation level, event type
    severity: str
    status: str
    raised_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    resolution: str | None
    escalation_level: int
    sessions_to_repair: float | None
    first_seq: str  # monotone: the earliest transition seen, and the severity it carried
    first_severity: str
    unrepaired: bool  # monotone: any transition's evidence said "unrepaired": true


Fact = CareFact | MeasureFact | AlertFact


def care_fact(event: CareEvent) -> CareFact:
    """The fact of one care event."""
    common: dict[str, Any] = {
        "fact_id": f"c:{event.event_id}",
        "clinic_id": event.clinic_id,
        "client_ref": event.client_ref,
        "episode_id": event.episode_id,
        "month": month_of(event.occurred_at),
        "occurred_at": event.occurred_at,
    }
    if isinstance(event, SessionAttended):
        return CareFact(
            kind="attended",
            clinician_id=event.clinician_id,
            modality=event.modality,
            appointment_id=event.appointment_id,
            **common,
        )
    if isinstance(event, SessionMissed):
        return CareFact(
            kind="missed",
            clinician_id=event.clinician_id,
            modality=event.modality,
            appointment_id=event.appointment_id,
            reason=event.reason,
            **common,
        )
    if isinstance(event, SessionCancelled):
        return CareFact(
            kind="cancelled",
            clinician_id=event.clinician_id,
            appointment_id=event.appointment_id,
            cancelled_by=event.cancelled_by,
            **common,
        )
    if isinstance(event, AppointmentScheduled):
        return CareFact(
            kind="scheduled",
            clinician_id=event.clinician_id,
            modality=event.modality,
            appointment_id=event.appointment_id,
            scheduled_start=event.scheduled_start,
            **common,
        )
    if isinstance(event, EpisodeOpened):
        return CareFact(kind="opened", clinician_id=event.clinician_id, day=event.opened_on, **common)
    if isinstance(event, EpisodeClosed):
        return CareFact(kind="closed", reason=event.reason, day=event.closed_on, **common)
    if isinstance(event, ClinicianAssigned):
        return CareFact(kind="assigned", clinician_id=event.clinician_id, **common)
    if isinstance(event, ClientReferred):
        language = event.preferred_language
        return CareFact(
            kind="referred",
            clinician_id=event.clinician_id,
            day=event.referred_on,
            language=language.split("-", 1)[0].lower() if language else None,
            interpreter=event.interpreter_needed,
            age_band=event.age_band,
            **common,
        )
    raise TypeError(f"not a care event: {type(event).__name__}")


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def measure_key(source: str, response_id: str) -> str:
    """The fact id of a response: every revision of it shares this id."""
    return f"m:{source}|{response_id}"


def measure_fact(event: MeasureScored) -> MeasureFact:
    """The fact of one scored revision of a response."""
    scores = event.scores
    concern = scores.get("alliance_concern")
    change = event.change
    return MeasureFact(
        fact_id=measure_key(event.source, event.response_id),
        revision=event.revision,
        instrument=event.instrument,
        respondent=event.respondent,
        clinic_id=event.clinic_id,
        client_ref=event.client_ref,
        episode_id=event.episode_id,
        clinician_id=event.clinician_id,
        # Amended responses replace the original "in place" (clinical-rules.md), so the session and
        # therefore the month are the same for every revision of one response.
        month=month_of(event.session_at),
        session_at=event.session_at,
        occurred_at=event.occurred_at,
        appointment_id=event.appointment_id,
        mean=_num(scores.get("mean")),
        task=_num(scores.get("task")),
        bond=_num(scores.get("bond")),
        goal=_num(scores.get("goal")),
        total=_num(scores.get("total")),
        alliance_concern=concern if isinstance(concern, bool) else None,
        reliable_improvement=change.reliable_improvement if change else None,
        reliable_deterioration=change.reliable_deterioration if change else None,
    )


def newer_measure(stored: MeasureFact | None, incoming: MeasureFact) -> MeasureFact | None:
    """The fact to store: the incoming one if its revision is higher, else None (nothing to do)."""
    if stored is None or incoming.revision > stored.revision:
        return incoming
    return None


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def alert_fact(event: AlertEvent) -> AlertFact:
    """The alert state one alert event carries."""
    a = event.alert
    seq = (
        f"{_utc(event.occurred_at)}|{_STATUS_RANK.get(a.status, 0)}|"
        f"{a.escalation_level:04d}|{_TYPE_RANK.get(event.event_type, 0)}"
    )
    repair_sessions = None
    if a.resolution == "repaired":
        repair_sessions = _num(a.evidence.get("sessions_to_repair"))
        if repair_sessions is None:  # the alerts service's own name for it
            repair_sessions = _num(a.evidence.get("sessions_after_trough"))
    return AlertFact(
        fact_id=f"a:{a.alert_id}",
        alert_id=a.alert_id,
        clinic_id=a.clinic_id,
        client_ref=a.client_ref,
        episode_id=a.episode_id,
        clinician_id=a.clinician_id or UNASSIGNED,
        month=month_of(a.triggered_at or a.raised_at),
        rule_id=a.rule_id,
        seq=seq,
        severity=a.severity,
        status=a.status,
        raised_at=a.raised_at,
        acknowledged_at=a.acknowledged_at,
        resolved_at=a.resolved_at,
        resolution=a.resolution,
        escalation_level=a.escalation_level,
        sessions_to_repair=repair_sessions,
        first_seq=seq,
        first_severity=a.severity,
        unrepaired=a.evidence.get("unrepaired") is True,
    )


def merge_alert(stored: AlertFact | None, incoming: AlertFact) -> AlertFact | None:
    """The alert's state after `incoming`, or None when it changes nothing (a replay, an older event)."""
    if stored is None:
        return incoming
    base = incoming if incoming.seq > stored.seq else stored
    first = incoming if incoming.seq < stored.first_seq else stored
    merged = replace(
        base,
        first_seq=first.first_seq,
        first_severity=first.first_severity,
        unrepaired=stored.unrepaired or incoming.unrepaired,
    )
    return None if merged == stored else merged
