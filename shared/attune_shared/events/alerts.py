"""Alert events on `clinic.alerts.v1` (contract.md section 5)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar, Final, Literal, Self, get_args

from pydantic import AwareDatetime, Field, JsonValue, StringConstraints, model_validator

from attune_shared.events.common import ClientRef, Code, EpisodeRef, Frozen, Ref, Uuid
from attune_shared.topics import Topics

AlertEventType = Literal[
    "alert.raised", "alert.updated", "alert.acknowledged", "alert.escalated", "alert.resolved"
]
ALERT_EVENT_TYPES: Final[tuple[str, ...]] = get_args(AlertEventType)
Severity = Literal["urgent", "high", "normal"]
AlertStatus = Literal["open", "acknowledged", "resolved"]
Resolution = Literal["repaired", "re_engaged", "episode_ended", "addressed", "false_positive"]

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


ALERT_EVENT_CLASSES: Final[Mapping[str, type[AlertEvent]]] = dict.fromkeys(ALERT_EVENT_TYPES, AlertEvent)
