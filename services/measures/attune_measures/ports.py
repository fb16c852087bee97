"""What measures needs from its storage, as Protocols: adapters/store.py's MeasuresStore implements every
one, and the unit tests' in-memory fakes (tests/support/fakes.py) implement the ones they stand in for,
checked by mypy.

- `ResponseStore`: the batch pipeline's (read a batch's responses and groups, write what changed, keep
  dead letters).
- `AuditLog`: the HTTP guard's record of every read of the API, refusals included.
- `ResponseQueries`: the read API's (an episode's responses, a clinician's caseload), audited.
- `TrajectoryStore`: expected trajectories' (closed episodes, their series, the fitted models).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from attune_measures.dead_letters import MeasuresDeadLetter
from attune_measures.domain.versions import Tracked

if TYPE_CHECKING:  # annotations only
    from attune_measures.domain.trajectories import EpisodeClosure, EpisodeScores, TrajectoryModel


@dataclass
class Loaded:
    """Responses read for a batch, with each document's write counter (for the optimistic check)."""

    book: dict[str, Tracked]
    versions: dict[str, int]

    def merge(self, other: Loaded) -> None:
        """Add documents not already held (the ones held may have been changed since they were read)."""
        for key, tracked in other.book.items():
            if key not in self.book:
                self.book[key] = tracked
                self.versions[key] = other.versions[key]


class ResponseStore(Protocol):
    """The batch pipeline's port: responses by key and by group, written with an optimistic check."""

    async def load(self, *, keys: Iterable[str] = (), series_keys: Iterable[str] = ()) -> Loaded:
        """These responses and every current member of these groups (series)."""
        ...

    async def save(
        self,
        *,
        changed: Sequence[Tracked],
        versions: Mapping[str, int],
        book: Mapping[str, Tracked] | None = None,
        series: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        """Write changed responses (new ones inserted, known ones replaced if nobody wrote them
        meanwhile, else ConcurrentUpdate); `book` is every response the batch held; `series` the
        primary scores, in session order, of the outcome groups settle reported."""
        ...

    async def keep_dead_letters(self, *, letters: Sequence[MeasuresDeadLetter]) -> None:
        """Keep dead letters for an operator (a re-consumed record keeps its first copy)."""
        ...


class AuditLog(Protocol):
    """Who read or was refused what, and when."""

    async def audit(self, *, entry: Mapping[str, Any]) -> None:
        """Record one read of the API (or its refusal)."""
        ...


class ResponseQueries(AuditLog, Protocol):
    """The read API's port."""

    async def episode_responses(self, *, episode_ids: Iterable[str]) -> dict[str, list[Tracked]]:
        """Every response of these episodes, by episode (an episode without any is absent)."""
        ...

    async def clinician_episodes(
        self, *, clinician_id: str, clinics: Sequence[str] | None
    ) -> dict[str, datetime]:
        """The episodes with a response naming this clinician (in these clinics; None: all), each with
        the latest session time of those responses."""
        ...


class TrajectoryStore(Protocol):
    """Expected trajectories' port: closed episodes, their outcome series, every fitted model version."""

    async def close_episodes(self, *, closures: Sequence[EpisodeClosure]) -> None:
        """Record closed episodes (a replayed closure changes nothing)."""
        ...

    async def closed_series(self) -> list[EpisodeScores]:
        """Every closed episode's ORS, PHQ-9 and GAD-7 scores in session order."""
        ...

    async def save_model(self, *, model: TrajectoryModel) -> None:
        """Keep a fitted version (never overwritten)."""
        ...

    async def current_models(self) -> dict[str, TrajectoryModel]:
        """The newest model of each instrument that has one."""
        ...

    async def models_by_version(self, *, keys: Iterable[tuple[str, str]]) -> list[TrajectoryModel]:
        """These `(instrument, version)` models (unknown ones are missing)."""
        ...
