"""What reporting needs from its storage, as Protocols, and the dirty mark that crosses them.

adapters/store.py's ReportingStore implements `FactStore` and `ReadModel` (a data database: the active
one, or a rebuild's fresh one); adapters/pointer.py's ActiveDatabase finds the active one (`Databases`);
handlers.py's StoredReports serves the report endpoints (`ReportSource`). The unit tests' in-memory
fakes (tests/support/fakes.py) implement the ones they stand in for, checked by mypy.

- `FactStore`: the batch pipeline's fold (facts per cell, dirty marks, rejected records);
- `ReadModel`: the materializer's (marks, a lease, facts, episode summaries, the read model);
- `ReportSource`: the report endpoints' (materialized cells, never facts).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from attune_reporting.adapters.codec import ClientIndex
from attune_reporting.domain.cells import Cell
from attune_reporting.domain.episodes import EpisodeSummary
from attune_reporting.domain.facts import AlertFact, CareFact, MeasureFact


@dataclass(frozen=True, slots=True)
class Mark:
    """Dirty cells and episodes of one clinic, left by one batch for the materializer."""

    mark_id: str
    clinic_id: str
    months: frozenset[str]
    episodes: frozenset[tuple[str, str]]  # (episode_id, month holding one of its new facts)


def new_mark(clinic_id: str, months: Iterable[str], episodes: Iterable[tuple[str, str]]) -> Mark:
    """A mark with a fresh id."""
    return Mark(uuid.uuid4().hex, clinic_id, frozenset(months), frozenset(episodes))


class FactStore(Protocol):
    """The fold's port: facts kept once per cell, newer versions replacing older ones."""

    name: str
    """The data database's name (for logs)."""

    async def insert_care(self, *, clinic_id: str, month: str, facts: Sequence[CareFact]) -> tuple[int, int]:
        """Insert care facts new to their cell: (inserted, duplicates)."""
        ...

    async def load_measures(
        self, *, clinic_id: str, month: str, ids: Iterable[str]
    ) -> dict[str, MeasureFact]:
        """These measure facts of a cell, by id."""
        ...

    async def load_alerts(self, *, clinic_id: str, month: str, ids: Iterable[str]) -> dict[str, AlertFact]:
        """These alert facts of a cell, by id."""
        ...

    async def claim_new(
        self, *, kind: str, clinic_id: str, month: str, facts: Sequence[MeasureFact | AlertFact]
    ) -> set[str]:
        """Insert facts new to their cell; the ids that were there already."""
        ...

    async def replace(
        self, *, kind: str, clinic_id: str, month: str, facts: Sequence[MeasureFact | AlertFact]
    ) -> None:
        """Replace facts by newer versions."""
        ...

    async def mark(self, *, marks: Sequence[Mark]) -> None:
        """Leave dirty marks for the materializer."""
        ...

    async def keep_rejected(self, *, docs: Sequence[dict[str, Any]]) -> None:
        """Keep records that could not be read."""
        ...


class ReadModel(Protocol):
    """The materializer's port."""

    name: str
    """The data database's name (for logs)."""

    async def marks(self, *, limit: int = 500) -> list[Mark]:
        """Dirty marks left by batches, at most `limit`."""
        ...

    async def clear(self, *, mark_ids: Sequence[str]) -> None:
        """Remove marks whose cells were recomputed."""
        ...

    async def pending(self) -> int:
        """How many marks are waiting."""
        ...

    async def try_lock(self, *, owner: str, lease_s: float) -> bool:
        """Take the materializer's lease if it is free or expired."""
        ...

    async def renew_lock(self, *, owner: str, lease_s: float) -> None:
        """Extend our lease (LockLost if someone else holds it)."""
        ...

    async def unlock(self, *, owner: str) -> None:
        """Give our lease up."""
        ...

    async def cell_facts(
        self, *, clinic_id: str, month: str
    ) -> tuple[list[CareFact], list[MeasureFact], list[AlertFact]]:
        """Every fact of one cell."""
        ...

    async def episode_facts(
        self, *, clinic_id: str, episode_ids: Sequence[str]
    ) -> dict[str, tuple[list[CareFact], list[MeasureFact], list[AlertFact]]]:
        """Every fact of these episodes in the clinic's cells, by episode (one without any is absent)."""
        ...

    async def episodes(self, *, clinic_id: str) -> dict[str, EpisodeSummary]:
        """A clinic's episode summaries, by episode id."""
        ...

    async def save_episodes(
        self, *, clinic_id: str, changed: Sequence[EpisodeSummary], removed: Sequence[str]
    ) -> None:
        """Write changed summaries and remove others."""
        ...

    async def client_index(self, *, clinic_id: str) -> ClientIndex:
        """A clinic's client index (client_ref -> bit)."""
        ...

    async def save_client_index(self, *, clinic_id: str, index: ClientIndex, stored: int) -> None:
        """Write the index if it still holds `stored` clients (else ConcurrentUpdate)."""
        ...

    async def write_cell(self, *, clinic_id: str, month: str, body: bytes, network_body: bytes) -> None:
        """Write one cell of the read model (the clinic's and the network's view)."""
        ...

    async def clinic_bodies(self, *, clinic_id: str) -> list[tuple[str, bytes]]:
        """A clinic's cells of the read model: (month, body)."""
        ...

    async def network_bodies(self, *, first: str, last: str) -> list[tuple[str, str, bytes]]:
        """Every clinic's network cells in these months: (clinic_id, month, body)."""
        ...


class DataStore(FactStore, ReadModel, Protocol):
    """One data database: what a batch folds into and the materializer reads."""


class Databases(Protocol):
    """Which data database is active."""

    async def store(self) -> DataStore:
        """The active data database."""
        ...


class ReportSource(Protocol):
    """Where report endpoints read pre-aggregated cells from."""

    async def clinic_cells(self, clinic_id: str, months: Sequence[str]) -> list[Cell[Any]]:
        """A clinic's materialized cells in these months (all breakdowns)."""
        ...

    async def network_cells(self, months: Sequence[str]) -> list[Cell[Any]]:
        """Every clinic's cells in these months (no per-clinician breakdown)."""
        ...
