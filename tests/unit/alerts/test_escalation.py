"""escalation_due: level n at raised_at + n * SLA while unacknowledged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from attune_alerts.domain.errors import UnknownSeverity
from attune_alerts.domain.escalation import EscalationView, escalation_due
from attune_alerts.domain.thresholds import AlertThresholds

RAISED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _view(severity="urgent", level=0, *, acknowledged=False, status="open"):
    return EscalationView(severity, status, RAISED, level, acknowledged)


@pytest.mark.parametrize(
    ("severity", "level", "after", "due"),
    [
        ("urgent", 0, timedelta(minutes=59), None),
        ("urgent", 0, timedelta(minutes=60), 1),
        ("urgent", 1, timedelta(minutes=119), None),
        ("urgent", 1, timedelta(hours=2), 2),
        ("urgent", 2, timedelta(hours=2), None),  # level 2 already applied
        ("urgent", 0, timedelta(hours=5), 1),  # one level per sweep run
        ("high", 0, timedelta(hours=23, minutes=59), None),
        ("high", 0, timedelta(hours=24), 1),
        ("normal", 0, timedelta(hours=71), None),
        ("normal", 0, timedelta(hours=72), 1),
        ("normal", 1, timedelta(hours=144), 2),
    ],
)
def test_due_levels_at_the_sla_boundary(severity, level, after, due):
    assert escalation_due(_view(severity, level), RAISED + after, AlertThresholds()) == due


@pytest.mark.parametrize(
    ("acknowledged", "status"), [(True, "acknowledged"), (True, "open"), (False, "resolved")]
)
def test_acknowledged_or_resolved_alerts_do_not_escalate(acknowledged, status):
    view = _view(acknowledged=acknowledged, status=status)
    assert escalation_due(view, RAISED + timedelta(hours=10), AlertThresholds()) is None


def test_sla_defaults_and_overrides():
    assert escalation_due(_view(), RAISED + timedelta(hours=1)) == 1
    slower = AlertThresholds().with_overrides({"sla_urgent_hours": 2})
    assert escalation_due(_view(), RAISED + timedelta(hours=1), slower) is None
    assert escalation_due(_view(), RAISED + timedelta(minutes=30), {"urgent": timedelta(minutes=30)}) == 1


def test_unknown_severity_is_a_named_error():
    with pytest.raises(UnknownSeverity):
        escalation_due(_view("low"), RAISED + timedelta(hours=1), AlertThresholds())
    with pytest.raises(UnknownSeverity):
        escalation_due(_view("low"), RAISED + timedelta(hours=1), {"urgent": timedelta(hours=1)})
