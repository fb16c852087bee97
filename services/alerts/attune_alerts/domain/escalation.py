"""When an unacknowledged alert is due for its next escalation level."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from attune_alerts.domain.errors import UnknownSeverity
from attune_alerts.domain.thresholds import AlertThresholds


@dataclass(frozen=True, slots=True)
class EscalationView:
    """The parts of a stored alert the escalation sweep needs."""

    severity: str
    status: str
    raised_at: datetime
    escalation_level: int
    acknowledged: bool


def _period(severity: str, sla: AlertThresholds | Mapping[str, timedelta]) -> timedelta:
    if isinstance(sla, AlertThresholds):
        return sla.sla(severity)
    if severity not in sla:
        raise UnknownSeverity(f"no SLA for severity {severity!r}")
    return sla[severity]


def escalation_due(
    alert: EscalationView, now: datetime, sla: AlertThresholds | Mapping[str, timedelta] | None = None
) -> int | None:
    """The next escalation level if it is due (level n at raised_at + n * SLA), else None.

    One level at a time: a sweep that was down for several SLA periods escalates one level per run,
    so each level gets its own `alert.escalated` event. Only open, unacknowledged alerts escalate.
    The service must apply the level with a conditional update (`escalation_level` still equal to
    the value it read) so that replicas running the same sweep cannot escalate twice.
    """
    if alert.acknowledged or alert.status != "open":
        return None
    period = _period(alert.severity, AlertThresholds() if sla is None else sla)
    level = alert.escalation_level + 1
    return level if now >= alert.raised_at + level * period else None


def next_escalation_at(
    alert: EscalationView, sla: AlertThresholds | Mapping[str, timedelta] | None = None
) -> datetime | None:
    """When the next escalation level falls due under this SLA (level n at raised_at + n * SLA); None
    for an alert that no longer escalates (acknowledged or closed). What a lead's inbox counts down to."""
    if alert.acknowledged or alert.status != "open":
        return None
    period = _period(alert.severity, AlertThresholds() if sla is None else sla)
    return alert.raised_at + (alert.escalation_level + 1) * period
