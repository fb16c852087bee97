"""What the rules decide; the service turns each into an alert event and a stored alert change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Raise:
    """Open a new alert for the episode (`alert.raised`)."""

    rule_id: str
    rule_version: int
    severity: str
    title: str
    evidence: Mapping[str, Any]
    suggested_action: str
    thresholds_used: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Update:
    """New evidence for the open alert of `rule_id` (`alert.updated`).

    `evidence` is the alert's complete evidence after the update (the service replaces the stored
    evidence with it); `severity` is set only when the severity changes.
    """

    rule_id: str
    evidence: Mapping[str, Any]
    severity: str | None = None


@dataclass(frozen=True, slots=True)
class Resolve:
    """Resolve the open alert of `rule_id` (`alert.resolved`) with a contract resolution."""

    rule_id: str
    resolution: str
    evidence: Mapping[str, Any]


Decision = Raise | Update | Resolve
