"""What alerts needs from its storage, as Protocols, and the records that cross them.

adapters/store.py's AlertsStore implements every Protocol; each part of the service is typed with the
one it uses, so the unit tests' in-memory fakes (tests/support/fakes.py) implement only what they stand
in for, checked by mypy:

- `ConsumerStore`: the batch pipeline's (episodes, input marks, clocks, change records by origin);
- `ChangeLog`: the ledger's (claim a change, publish, project, queue deliveries);
- `Claims`: claim-by-insert of one escalation level or one delivery attempt;
- `SweepStore`: the sweeps' (open alerts, inactive episodes, the event clock), with claims;
- `Outbox`: the delivery worker's (due deliveries, attempts), with claims, and its channels `Webhooks`
  and `Mailer` (adapters/senders.py);
- `AuditLog` and `AlertQueries`: the API's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from attune_alerts.domain.lifecycle import EpisodeContext, StoredAlert, now_ms
from attune_alerts.domain.state import EpisodeState
from attune_shared.events import AlertEvent

# ---------------------------------------------------------------- records


@dataclass
class EpisodeRow:
    """One episode's rule state and bookkeeping, as loaded (version 0: not stored yet)."""

    ctx: EpisodeContext
    state: EpisodeState = field(default_factory=EpisodeState)
    open_alert_ids: dict[str, str] = field(default_factory=dict)
    version: int = 0
    partition: int | None = None
    dirty: bool = False


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One alert change: the alert after it, its published event (exact bytes), and why it happened."""

    stored: StoredAlert
    event_type: str
    event_id: str
    body: str
    cause_key: str
    origin_event_id: str | None
    recorded_at: datetime
    published: bool = False

    @property
    def record_id(self) -> str:
        """`<alert_id>:<sequence>`, zero-padded so ids sort by sequence."""
        return f"{self.stored.alert_id}:{self.stored.sequence:08d}"


def make_record(
    stored: StoredAlert, event: AlertEvent, *, cause: str, origin_event_id: str | None
) -> ChangeRecord:
    """The record of a change about to be claimed."""
    return ChangeRecord(
        stored=stored,
        event_type=event.event_type,
        event_id=event.event_id,
        body=event.model_dump_json(),
        cause_key=f"{stored.alert_id}|{cause}",
        origin_event_id=origin_event_id,
        recorded_at=now_ms(),
    )


@dataclass(frozen=True, slots=True)
class SendResult:
    """One attempt's outcome: delivered, http_error, timeout or error (final: retrying cannot help)."""

    ok: bool
    outcome: str
    status: int | None = None
    error: str | None = None
    final: bool = False


@dataclass(frozen=True, slots=True)
class Current:
    """An alert's newest state: the projection, or a newer change record not projected yet."""

    stored: StoredAlert
    unprojected: ChangeRecord | None = None


# ---------------------------------------------------------------- ports


class Episodes(Protocol):
    """Episodes' rule state and clocks, written with an optimistic version check."""

    def forget(self) -> None:
        """Drop what is remembered of episodes, clocks and marks (partitions changed, or a conflict)."""
        ...

    async def load_episodes(self, *, episode_ids: Iterable[str]) -> dict[str, EpisodeRow]:
        """These episodes as stored (absent ones are new)."""
        ...

    async def save_episodes(self, *, rows: Sequence[EpisodeRow]) -> None:
        """Write episodes (new ones inserted, known ones if their version is unchanged, else ConcurrentUpdate)."""
        ...

    async def event_clocks(self, *, keys: Iterable[str]) -> dict[str, datetime]:
        """The newest event time seen per episode."""
        ...


class ConsumerStore(Episodes, Protocol):
    """The batch pipeline's port."""

    async def input_marks(self, *, keys: Iterable[str]) -> dict[str, int]:
        """How far each input (an upstream change's key) has been applied."""
        ...

    async def advance_marks(self, *, through: Mapping[str, int]) -> None:
        """Move inputs' marks forward (never back)."""
        ...

    async def advance_clocks(self, *, newest: Mapping[str, datetime]) -> None:
        """Move episodes' clocks forward (never back)."""
        ...

    async def records_for_origins(self, *, origin_event_ids: Iterable[str]) -> dict[str, ChangeRecord]:
        """The change records caused by these input events, by origin event id."""
        ...

    async def current(self, *, alert_ids: Iterable[str]) -> dict[str, Current]:
        """These alerts' newest states."""
        ...

    async def claim_changes(self, *, records: Sequence[ChangeRecord]) -> None:
        """Claim these changes' sequence numbers (ConcurrentUpdate if one is taken)."""
        ...


class ChangeLog(Protocol):
    """The ledger's port: alert changes claimed once, published, projected, and their deliveries queued."""

    async def current(self, *, alert_ids: Iterable[str]) -> dict[str, Current]:
        """These alerts' newest states."""
        ...

    async def record_by_cause(self, *, cause_key: str) -> ChangeRecord | None:
        """The change already recorded for this cause, if any."""
        ...

    async def try_claim_change(self, *, record: ChangeRecord) -> bool:
        """Claim one change's sequence number; False if another writer holds it."""
        ...

    async def mark_published(self, *, record_ids: Sequence[str]) -> None:
        """Note that these changes' events were acknowledged by the broker."""
        ...

    async def project(self, *, alerts: Iterable[StoredAlert]) -> None:
        """Write alerts' current state (only forward: the sequence must grow)."""
        ...

    async def add_deliveries(self, *, docs: Sequence[dict[str, Any]]) -> int:
        """Queue deliveries (a replay re-derives the same ids: no duplicate); how many were new."""
        ...


class Claims(Protocol):
    """Claim-by-insert: of two replicas, only one does the claimed work."""

    async def claim(self, *, collection: str, claim_id: str, **fields: Any) -> bool:
        """Insert the claim; False if it was held already."""
        ...

    async def get_claim(self, *, collection: str, claim_id: str) -> dict[str, Any] | None:
        """The claim as held."""
        ...


class SweepStore(Claims, Protocol):
    """The sweeps' port (escalation of open alerts, inactivity of open episodes, gauges)."""

    async def finish_claim(self, *, collection: str, claim_id: str, outcome: str) -> None:
        """Note that the claimed work is done, with its outcome."""
        ...

    async def unacknowledged(self) -> list[StoredAlert]:
        """Every open alert (not acknowledged yet)."""
        ...

    async def count_unresolved(self) -> dict[str, int]:
        """Open and acknowledged alerts, counted per severity."""
        ...

    async def inactivity_candidates(
        self, *, partitions: Iterable[int], due: Callable[[str, datetime], bool] | None = None
    ) -> list[EpisodeRow]:
        """Open episodes of these partitions that the inactivity rule may concern; with `due` (clinic,
        last attended session) those it holds due, or more (the sweep judges each row again)."""
        ...

    async def newest_event_time(self) -> datetime | None:
        """The newest event time seen in any episode (the sweep's clock in event mode)."""
        ...


class Outbox(Claims, Protocol):
    """The delivery worker's port: the webhook and e-mail outbox."""

    async def due_deliveries(
        self, *, now: datetime, limit: int, exclude: Iterable[str]
    ) -> list[dict[str, Any]]:
        """Pending deliveries whose next attempt is due, oldest first."""
        ...

    async def record_attempt(
        self, *, delivery_id: str, attempt: Mapping[str, Any], status: str, next_attempt_at: datetime | None
    ) -> None:
        """Append one attempt and move the delivery on."""
        ...


class Webhooks(Protocol):
    """The webhook channel: signed POSTs."""

    async def post(self, url: str, secret: str, body: str, *, event_id: str, attempt: int) -> SendResult:
        """One attempt; never raises for network trouble (that is an outcome)."""
        ...


class Mailer(Protocol):
    """The e-mail channel."""

    async def send(self, to: str, subject: str, text: str) -> SendResult:
        """One attempt; mail and network errors are outcomes."""
        ...


class AuditLog(Protocol):
    """Who read or changed what, and when."""

    async def audit(self, *, entry: Mapping[str, Any]) -> None:
        """Record one API read or change (or its refusal)."""
        ...


class AlertQueries(AuditLog, Episodes, Protocol):
    """The API's port: alerts to list and read, and the episodes a change is forgotten in."""

    async def get_alert(self, *, alert_id: str) -> StoredAlert | None:
        """One alert's current state."""
        ...

    async def list_alerts(self, *, query: Mapping[str, Any], limit: int) -> list[StoredAlert]:
        """Alerts matching a store query, newest first."""
        ...
