"""What intake needs from its storage, as Protocols: adapters/store.py's IntakeStore implements every
one, and any in-memory fake the unit tests use (tests/support/fakes.py) implements the ones it stands in
for, checked by mypy.

- `ConsumerStore`: the batch pipeline's (claim receipts, client states, dead letters);
- `SubmissionStore`: the HTTP endpoint's (which events were received already, dead letters);
- `ReidentificationStore`: the audited re-identification door's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from attune_intake.domain.episodes import ClientState
from attune_shared.events import DeadLetter


class DeadLetterKeeper(Protocol):
    """Where rejected records are kept for an operator."""

    async def keep_dead_letters(self, *, letters: Sequence[DeadLetter]) -> None:
        """Keep dead letters (a re-consumed record keeps its first copy)."""
        ...


class ConsumerStore(DeadLetterKeeper, Protocol):
    """The batch pipeline's port."""

    async def claim(self, *, receipts: Sequence[dict[str, Any]]) -> set[int]:
        """Record receipts before their events are processed; the positions of EHR duplicates."""
        ...

    async def load_clients(self, *, client_refs: Iterable[str]) -> dict[str, ClientState]:
        """Current state of these clients (absent ones are new)."""
        ...

    async def save_clients(self, *, states: Sequence[ClientState]) -> None:
        """Write changed clients with an optimistic version check (else ConcurrentUpdate)."""
        ...


class SubmissionStore(DeadLetterKeeper, Protocol):
    """The HTTP endpoint's port (`POST /v1/ehr/events`)."""

    async def seen(self, *, keys: Iterable[str]) -> set[str]:
        """Which receipt keys are already recorded."""
        ...


class ReidentificationStore(Protocol):
    """The re-identification door's port: a client's stored state, and the audit of every call."""

    async def client(self, *, client_ref: str) -> ClientState | None:
        """One client's stored state (never from a process's memory)."""
        ...

    async def audit_reidentification(self, *, entry: dict[str, Any]) -> None:
        """Record one call of the door (before any MRN is returned)."""
        ...

    async def list_reidentifications(
        self, *, client_ref: str | None = None, who: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Audit rows of the door, newest first."""
        ...
