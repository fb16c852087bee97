"""The simulator's values: its configuration, the records it emits and the ground truth it knows."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

RecordKind = Literal["event", "late", "duplicate", "poison"]
DEFAULT_START = date(2026, 1, 5)  # a Monday; fixed so that every run of a seed is byte-identical


@dataclass(frozen=True, slots=True)
class SimConfig:
    """What to simulate: a network of `clinics` clinics, `clients` clients over `weeks` weeks from `start`."""

    clinics: int = 3
    clients: int = 150
    weeks: int = 16
    seed: int = 42
    start: date = DEFAULT_START
    source: str = "ehr-sim"
    # A closed-episode history before the period (published first), so that measures can fit the
    # expected trajectories outcome.not-on-track needs; clients who miss the expected path come with it.
    history: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.clinics <= 50:
            raise ValueError("clinics must be 1..50")
        if not 1 <= self.clients <= 100_000:
            raise ValueError("clients must be 1..100000")
        if not 2 <= self.weeks <= 104:
            raise ValueError("weeks must be 2..104")

    @property
    def as_of(self) -> datetime:
        """The simulation's end: every event happens before it, and the truth holds at it."""
        return datetime.combine(self.start + timedelta(weeks=self.weeks), time(0, 0), tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    """One record exactly as the EHR publishes it to ehr.events.v1, with what the simulator meant by it."""

    key: bytes | None
    value: bytes
    kind: RecordKind  # "late": deliberately delivered after later events of its key
    event_type: str | None = None
    event_id: str | None = None
    occurred_at: datetime | None = None
    expected_code: str | None = None  # the dead-letter code of a poison record
    json_ok: bool = True  # False: not JSON at all, so it can only travel over Kafka


@dataclass(frozen=True, slots=True)
class ExpectedAlert:
    """An alert the services must raise for a client, and how it must end by `as_of`."""

    rule_id: str
    severity: str
    episode: int
    trigger: str  # a response_id, or an appointment_id for engagement.dropout-risk
    trigger_kind: Literal["response", "appointment"]
    criteria: list[str]
    raised_at: str
    resolution: str | None  # None: still open at as_of
    resolved_at: str | None
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EpisodeTruth:
    """One episode of care as the EHR recorded it."""

    episode: int
    opened_on: str
    closed_on: str | None
    close_reason: str | None
    open_at_end: bool
    attended: int
    no_show: int
    late_cancel: int
    cancelled_by_client: int
    cancelled_by_clinician: int
    last_attended_at: str | None
    last_session_outcome: str | None
    dropout: dict[str, bool]


@dataclass(frozen=True, slots=True)
class ClientTruth:
    """Everything expected of one client."""

    clinic_id: str
    mrn: str
    client_ref: str
    clinician_id: str
    archetype: str
    episodes: list[EpisodeTruth]
    expected_alerts: list[ExpectedAlert]


@dataclass(frozen=True, slots=True)
class DeadLetterTruth:
    """A poison record and the dead-letter code intake must give it."""

    code: str
    event_id: str | None
    description: str
    key: str | None
    transport: Literal["any", "kafka_only"]


@dataclass(frozen=True, slots=True)
class Truth:
    """The ground truth of one scenario (written as truth.json)."""

    config: dict[str, Any]
    as_of: str
    interpretations: list[str]
    clinics: list[dict[str, Any]]
    clients: list[ClientTruth]
    dead_letters: list[DeadLetterTruth]
    deliveries: dict[str, int]
    reporting: dict[str, Any]
    # With SimConfig.history: the history behind the expected trajectories and the models fitted on it.
    trajectories: dict[str, Any] = field(default_factory=dict)
    # The equity view's figures over the period, per dimension and stratum (then "total").
    equity: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"schema": "attune.simulator.truth/1", **asdict(self)}


@dataclass(frozen=True, slots=True)
class Scenario:
    """The ordered outbound records of a simulated network, and the ground truth behind them."""

    config: SimConfig
    records: tuple[OutboundRecord, ...]
    truth: Truth
    # With SimConfig.history: the closed episodes before the period, to publish (and let drain)
    # before `records`, so that measures can fit its expected trajectories on them first.
    history: tuple[OutboundRecord, ...] = ()

    @property
    def valid_records(self) -> tuple[OutboundRecord, ...]:
        """Every record that is a valid envelope (first sends, late ones and duplicates)."""
        return tuple(r for r in self.records if r.kind != "poison")

    @property
    def poison_records(self) -> tuple[OutboundRecord, ...]:
        """Every deliberately malformed record."""
        return tuple(r for r in self.records if r.kind == "poison")


def write_truth(scenario: Scenario, path: Path | str) -> Path:
    """Write the scenario's ground truth as JSON to `path` (a file, or a directory to hold truth.json)."""
    target = Path(path)
    if target.suffix != ".json":
        target = target / "truth.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(scenario.truth.to_dict(), indent=2, ensure_ascii=False)
    target.write_text(text + "\n", encoding="utf-8")
    return target
