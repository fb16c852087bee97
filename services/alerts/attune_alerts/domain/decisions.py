"""What the rules decide; the service turns each into an alert event and a stored alert change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Raise:
    """Open a new alert for the episode (`alert.raised`).

    The alert's id is derived from the input that raised it, unless `key` is set: a rule whose alert
    needs several inputs (a lenient rupture: a session's alliance drop and its SRS concern) fires on
    whichever of them comes second, so it names the alert by what those inputs share, and sets
    `triggered_at` (otherwise the raising input's time) likewise, whatever their order.
    """

    rule_id: str
    rule_version: int
    severity: str
    title: str
    evidence: Mapping[str, Any]
    suggested_action: str
    thresholds_used: Mapping[str, Any]
    key: str | None = None
    triggered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Update:
    """New evidence for the open alert of `rule_id` (`alert.updated`).

    `evidence` is the alert's complete evidence after the update (the service replaces the stored
    evidence with it); `severity` is set only when the severity changes. `alone`: a change of its own,
    never folded into the decision before it (`common.compact`): a second trigger of one input, which
    would have been an input of its own had the trigger's responses come in the other order.
    """

    rule_id: str
    evidence: Mapping[str, Any]
    severity: str | None = None
    alone: bool = False


@dataclass(frozen=True, slots=True)
class Resolve:
    """Resolve the open alert of `rule_id` (`alert.resolved`) with a contract resolution."""

    rule_id: str
    resolution: str
    evidence: Mapping[str, Any]


Decision = Raise | Update | Resolve
