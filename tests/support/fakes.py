"""In-memory stand-ins for the services' store ports (each service's ports.py), for unit tests.

Each fake implements the Protocol of the port it stands in for, and mypy checks it does (the block at
the end: `make lint` runs mypy on tests.support), so a port that changes breaks its fakes at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from attune_alerts.domain.lifecycle import StoredAlert
from attune_alerts.ports import EpisodeRow
from attune_intake.domain.episodes import ClientState
from attune_measures.dead_letters import MeasuresDeadLetter
from attune_measures.domain.trajectories import EpisodeClosure, EpisodeScores, TrajectoryModel
from attune_measures.domain.versions import Tracked
from attune_measures.ports import Loaded
from attune_reporting.domain.cells import Cell
from attune_reporting.materializer import network_parts
from attune_shared.events import DeadLetter


class Crash(RuntimeError):
    """A store that went away mid-write."""


class MemoryResponses:
    """measures' ResponseStore in memory; `fail_saves` makes the next saves crash half-way.

    `log` records "save" (shared with a broker fake, it shows the order of effects); `loads` counts reads.
    """

    def __init__(self, log: list[str]) -> None:
        self.docs: dict[str, tuple[Tracked, int]] = {}
        self.dead: dict[str, MeasuresDeadLetter] = {}
        self.fail_saves = 0
        self.loads = 0
        self.log = log

    async def load(self, *, keys: Iterable[str] = (), series_keys: Iterable[str] = ()) -> Loaded:
        self.loads += 1
        key_set, series = set(keys), set(series_keys)
        found = {k: v for k, v in self.docs.items() if k in key_set or v[0].response.series_key in series}
        return Loaded({k: t for k, (t, _) in found.items()}, {k: n for k, (_, n) in found.items()})

    async def save(
        self,
        *,
        changed: Sequence[Tracked],
        versions: Mapping[str, int],
        book: Mapping[str, Tracked] | None = None,
        series: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self.log.append("save")
        if self.fail_saves:
            self.fail_saves -= 1
            # Half the write lands before the crash.
            for t in changed[: len(changed) // 2]:
                self.docs[t.response.key] = (t, versions.get(t.response.key, 0) + 1)
            raise Crash("store went away mid-write")
        for t in changed:
            self.docs[t.response.key] = (t, versions.get(t.response.key, 0) + 1)

    async def keep_dead_letters(self, *, letters: Sequence[MeasuresDeadLetter]) -> None:
        for d in letters:
            self.dead.setdefault(d.dlq_id, d)


class MemoryIntake:
    """intake's ConsumerStore in memory: receipts by key (naming the record that claimed it), client
    states with their write counter, dead letters by id."""

    def __init__(self) -> None:
        self.receipts: dict[str, Any] = {}
        self.clients: dict[str, ClientState] = {}
        self.dead: dict[str, DeadLetter] = {}

    async def claim(self, *, receipts: Sequence[dict[str, Any]]) -> set[int]:
        duplicates = set()
        for i, r in enumerate(receipts):
            held = self.receipts.setdefault(r["_id"], r["origin"])
            if held != r["origin"]:  # claimed by another record (a second copy in this batch, too)
                duplicates.add(i)
        return duplicates

    async def load_clients(self, *, client_refs: Iterable[str]) -> dict[str, ClientState]:
        return {r: self.clients[r] for r in set(client_refs) if r in self.clients}

    async def save_clients(self, *, states: Sequence[ClientState]) -> None:
        for s in states:
            self.clients[s.client_ref] = replace(s, version=s.version + 1)

    async def keep_dead_letters(self, *, letters: Sequence[DeadLetter]) -> None:
        for d in letters:
            self.dead.setdefault(d.dlq_id, d)


class MemoryTrajectories:
    """measures' TrajectoryStore in memory: closed episodes' series as given, models by (instrument, version)."""

    def __init__(self, episodes: list[EpisodeScores]) -> None:
        self.episodes = episodes
        self.closed: dict[str, EpisodeClosure] = {}
        self.models: dict[tuple[str, str], TrajectoryModel] = {}

    async def close_episodes(self, *, closures: Sequence[EpisodeClosure]) -> None:
        self.closed.update((c.episode_id, c) for c in closures)

    async def closed_series(self) -> list[EpisodeScores]:
        return list(self.episodes)

    async def save_model(self, *, model: TrajectoryModel) -> None:
        self.models.setdefault((model.instrument, model.version), model)

    async def current_models(self) -> dict[str, TrajectoryModel]:
        out: dict[str, TrajectoryModel] = {}
        for m in sorted(self.models.values(), key=lambda m: m.fitted_at):
            out[m.instrument] = m
        return out

    async def models_by_version(self, *, keys: Iterable[tuple[str, str]]) -> list[TrajectoryModel]:
        return [self.models[k] for k in keys if k in self.models]


class MemoryAudit:
    """The audit trail of alerts' or measures' API, in a list (all an HTTP guard needs before a handler)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    async def audit(self, *, entry: Mapping[str, Any]) -> None:
        self.entries.append(dict(entry))


class MemoryReports:
    """reporting's ReportSource over cells from an in-memory fold, cut the way the store serves them."""

    def __init__(self, cells: list[Cell[Any]]) -> None:
        self.cells = cells

    async def clinic_cells(self, clinic_id: str, months: Sequence[str]) -> list[Cell[Any]]:
        return [c for c in self.cells if c.clinic_id == clinic_id and c.month in months]

    async def network_cells(self, months: Sequence[str]) -> list[Cell[Any]]:
        return [Cell(c.clinic_id, c.month, network_parts(c)) for c in self.cells if c.month in months]


class OneAlertSweep:
    """alerts' SweepStore holding one open alert and no episode; every claim is granted, finished
    claims are recorded in `finished` as (claim_id, outcome)."""

    def __init__(self, alert: Any) -> None:
        self.alert = alert
        self.finished: list[tuple[str, str]] = []

    async def claim(self, *, collection: str, claim_id: str, **fields: Any) -> bool:
        return True

    async def get_claim(self, *, collection: str, claim_id: str) -> dict[str, Any] | None:
        return None

    async def finish_claim(self, *, collection: str, claim_id: str, outcome: str) -> None:
        self.finished.append((claim_id, outcome))

    async def unacknowledged(self) -> list[StoredAlert]:
        stored: Any = SimpleNamespace(alert=self.alert)  # the sweep reads only `.alert`
        return [stored]

    async def count_unresolved(self) -> dict[str, int]:
        return {}

    async def inactivity_candidates(
        self, *, partitions: Iterable[int], due: Callable[[str, datetime], bool] | None = None
    ) -> list[EpisodeRow]:
        return []

    async def newest_event_time(self) -> datetime | None:
        return None


if TYPE_CHECKING:  # each fake implements the port it stands in for (mypy reports the one that does not)
    from attune_alerts import ports as alerts
    from attune_intake import ports as intake
    from attune_measures import ports as measures
    from attune_reporting import ports as reporting

    _intake: type[intake.ConsumerStore] = MemoryIntake
    _responses: type[measures.ResponseStore] = MemoryResponses
    _trajectories: type[measures.TrajectoryStore] = MemoryTrajectories
    _measures_audit: type[measures.AuditLog] = MemoryAudit
    _alerts_audit: type[alerts.AuditLog] = MemoryAudit
    _reports: type[reporting.ReportSource] = MemoryReports
    _sweep: type[alerts.SweepStore] = OneAlertSweep
