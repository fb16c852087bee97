"""The materializer: recomputes dirty episodes and cells from the facts and stores the read model.

It runs at the end of every batch (after the batch's facts and marks are durable), from a periodic
sweep (marks left by a crash or by another replica), and on demand (rebuild). One run at a time
per data database: a lease in the `locks` collection (insert wins; expired leases are broken).
Because every cell is recomputed from all of its facts, a replayed or duplicated input can never
double a count.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from attune_reporting import metrics
from attune_reporting.adapters.codec import Bits, decode_parts, encode_parts
from attune_reporting.adapters.store import LockLost
from attune_reporting.domain.cells import ALL, Cell, Part, build_cell, cell_clients
from attune_reporting.domain.episodes import EpisodeSummary, summarize
from attune_reporting.domain.facts import AlertFact, CareFact, MeasureFact
from attune_reporting.domain.figures import figures, total
from attune_reporting.domain.months import month_of, shift
from attune_reporting.ports import Mark, ReadModel
from attune_reporting.settings import ReportingSettings
from attune_shared.logging import get_logger
from attune_shared.mongo import ConcurrentUpdate

log = get_logger("attune_reporting.materializer")
Progress = Callable[[int, int], None]
MARKS_PER_PASS = 10_000  # at 1,000 a 200,000-record backfill recomputed the whole network ~20 times


@dataclass
class RunResult:
    """What one materializer run did."""

    marks: int = 0
    clinics: set[str] = field(default_factory=set)
    cells: int = 0
    episodes: int = 0


class _Facts:
    """Facts of one clinic's cells, each read at most once per run."""

    def __init__(self, store: ReadModel, clinic_id: str) -> None:
        self.store, self.clinic_id = store, clinic_id
        self._cells: dict[str, tuple[list[CareFact], list[MeasureFact], list[AlertFact]]] = {}

    async def get(self, month: str) -> tuple[list[CareFact], list[MeasureFact], list[AlertFact]]:
        if month not in self._cells:
            self._cells[month] = await self.store.cell_facts(clinic_id=self.clinic_id, month=month)
        return self._cells[month]


def _affected(old: EpisodeSummary | None, new: EpisodeSummary | None) -> set[str]:
    """Cells whose figures depend on what changed between two (different) summaries of one episode.

    Episode-wide figures count in the month it closed (any change may move them) and, the opening
    alone, in the month it opened (under its clinician and strata). Its facts in any month read the
    client's attributes (the equity view's strata) and either their appointment's modality (sessions
    without one of their own, measures: `borrowers`) or the episode's main modality (alerts). So a
    change of attributes or of the main modality touches every month of the episode, and a change of
    some appointments' modalities (a new session, most often) only the months of their borrowers:
    before, every new session recomputed every month of its episode, and a run's cost grew with the
    data (issue 15)."""
    both = [ep for ep in (old, new) if ep]
    months = {ep.closed_month for ep in both if ep.closed_month}
    if old is None or new is None or _opening(old) != _opening(new):
        months |= {ep.opened_month for ep in both if ep.opened_month}
    everything = {m for ep in both for m in ep.months}
    if _strata(old) != _strata(new) or _main(old) != _main(new):
        return months | everything
    before = set(old.appointments if old else ())
    after = set(new.appointments if new else ())
    if before == after:
        return months
    if any(ep.borrowers is None for ep in both):  # stored before borrowers were kept
        return months | everything
    moved = {appt for appt, _ in before ^ after}
    return months | {m for ep in both for appt, m in ep.borrowers or () if appt in moved}


def _opening(ep: EpisodeSummary) -> tuple[object, ...]:
    """What the opened month's figures read of an episode (cells._episodes)."""
    return (ep.opened_month, ep.clinician_id, ep.client_ref, _strata(ep), ep.main_modality)


def _main(ep: EpisodeSummary | None) -> str | None:
    return ep.main_modality if ep else None


def _strata(ep: EpisodeSummary | None) -> tuple[str | bool | None, ...]:
    return (ep.language, ep.interpreter, ep.age_band) if ep else (None, None, None)


def network_parts(cell: Cell[Any]) -> dict[str, Part[Any]]:
    """The parts the network report needs (no per-clinician breakdown)."""
    return {k: p for k, p in cell.parts.items() if not k.startswith("clinician:")}


class Materializer:
    """Recomputes dirty cells; one instance per process, serialised locally and by the store's lease."""

    def __init__(self, settings: ReportingSettings) -> None:
        self.settings = settings
        self.owner = uuid.uuid4().hex
        self._local = asyncio.Lock()
        self.ended = 0.0  # monotonic time the last run that had marks ended
        self.took = 0.0  # and how long it took
        self._wanted = asyncio.Event()  # a drained consumer skipped a run: the sweep runs it when rested
        # Runs skipped (throttled) that no later run or empty check has covered: the first and the
        # latest. While there are, the reports lag behind what this instance consumed (`state()`).
        self.skipped_since: float | None = None
        self.last_skip: float | None = None

    def rest_left(self, at_least: float = 0.0) -> float:
        """Seconds until the last run ended long enough ago: `at_least` seconds, and its duration x
        (1 / ATTUNE_REPORTING_BACKLOG_MATERIALIZE_SHARE - 1), so repeated runs over big cells take
        at most about that share of the time (the pause is capped at a minute)."""
        share = float(getattr(self.settings, "attune_reporting_backlog_materialize_share", 1.0))
        pause = max(at_least, min(60.0, self.took * (1 / share - 1)))
        return max(0.0, pause - (time.monotonic() - self.ended))

    def rested(self, at_least: float = 0.0) -> bool:
        """Whether the pause after the last run is over (rest_left)."""
        return self.rest_left(at_least) <= 0.0

    def want(self) -> None:
        """Ask the sweep for a run as soon as the pause is over (a drained consumer that skipped one)."""
        self.skip()
        self._wanted.set()

    def skip(self) -> None:
        """A batch's marks are left for a later run."""
        self.last_skip = time.monotonic()
        if self.skipped_since is None:
            self.skipped_since = self.last_skip

    def _covered(self, checked_at: float) -> None:
        """Every mark that existed at `checked_at` has been applied (a run started then, or none was left)."""
        if self.last_skip is not None and self.last_skip <= checked_at:
            self.skipped_since = self.last_skip = None

    def state(self) -> dict[str, Any]:
        """For /readyz: whether the reports lag behind what this instance consumed, and the last run."""
        return {
            "reports_pending": self.skipped_since is not None,
            "pending_for_s": None
            if self.skipped_since is None
            else round(time.monotonic() - self.skipped_since, 1),
            "last_run_s": round(self.took, 3),
        }

    async def _nap(self, interval: float) -> None:
        """Sleep the sweep's interval, or less: when a consumer asked for a run, until the pause is over."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wanted.wait(), interval)
        if self._wanted.is_set():
            self._wanted.clear()
            await asyncio.sleep(self.rest_left())
            if not self.rested():  # a run meanwhile moved the end of the pause: the next nap waits it out
                self._wanted.set()

    async def run(self, store: ReadModel, progress: Progress | None = None) -> RunResult:
        """Process every pending mark; returns once none is left (waits for another holder's lease)."""
        lease = self.settings.attune_reporting_lock_lease_s
        result = RunResult()
        started = time.monotonic()
        async with self._local:
            await self._acquire(store, lease)
            try:
                while True:
                    # Every pass recomputes all the cells its marks name: while behind, marks pile up
                    # (one per clinic per batch) naming the same cells, so a pass takes many at once.
                    marks = await store.marks(limit=MARKS_PER_PASS)
                    if not marks:
                        break
                    await self._apply(store, marks, result, progress)
                    await store.clear(mark_ids=[m.mark_id for m in marks])
                    result.marks += len(marks)
            finally:
                await store.unlock(owner=self.owner)
        self._covered(started)
        if result.marks:
            self.ended = time.monotonic()
            self.took = self.ended - started
            metrics.MATERIALIZE_SECONDS.observe(self.took)
            log.info(
                "materialized",
                marks=result.marks,
                clinics=len(result.clinics),
                cells=result.cells,
                episodes=result.episodes,
                database=store.name,
                duration_ms=round((time.monotonic() - started) * 1000, 1),
            )
        return result

    async def _acquire(self, store: ReadModel, lease: float) -> None:
        """Wait for the lease: another replica's run (or the rebuild's) finishes our marks with its own."""
        while True:
            if await store.try_lock(owner=self.owner, lease_s=lease):
                return
            await asyncio.sleep(0.05)

    async def _apply(
        self, store: ReadModel, marks: Iterable[Mark], result: RunResult, progress: Progress | None
    ) -> None:
        months: dict[str, set[str]] = {}
        episodes: dict[str, dict[str, set[str]]] = {}
        for m in marks:
            months.setdefault(m.clinic_id, set()).update(m.months)
            per_clinic = episodes.setdefault(m.clinic_id, {})
            for episode_id, month in m.episodes:
                per_clinic.setdefault(episode_id, set()).add(month)
        clinics = sorted(months)
        for i, clinic_id in enumerate(clinics):
            await self._clinic(store, clinic_id, months[clinic_id], episodes.get(clinic_id, {}), result)
            await store.renew_lock(owner=self.owner, lease_s=self.settings.attune_reporting_lock_lease_s)
            if progress is not None:
                progress(i + 1, len(clinics))

    async def _clinic(
        self,
        store: ReadModel,
        clinic_id: str,
        months: set[str],
        dirty_episodes: dict[str, set[str]],
        result: RunResult,
    ) -> None:
        facts = _Facts(store, clinic_id)
        summaries = await store.episodes(clinic_id=clinic_id)
        cells = set(months)
        changed: list[EpisodeSummary] = []
        removed: list[str] = []
        # An episode is summarized from all of its facts. A trickle's run (a few episodes, this
        # month's cell) reads those episodes' own facts, so that it does not read every month of the
        # clinic for them (issue 15). A backlog's run, where most of the clinic's episodes changed
        # and the cells it builds span most months, reads whole cells once for both.
        spans = {
            e: ms | set(summaries[e].months if e in summaries else ()) for e, ms in dirty_episodes.items()
        }
        own = None
        if any(not span <= cells for span in spans.values()) and 2 * len(dirty_episodes) <= len(summaries):
            own = await store.episode_facts(clinic_id=clinic_id, episode_ids=sorted(dirty_episodes))
        for episode_id in sorted(dirty_episodes):
            old = summaries.get(episode_id)
            care: list[CareFact] = []
            measures: list[MeasureFact] = []
            alerts: list[AlertFact] = []
            if own is not None:
                care, measures, alerts = own.get(episode_id, ([], [], []))
            else:
                for month in sorted(spans[episode_id]):
                    c, m, a = await facts.get(month)
                    care += [f for f in c if f.episode_id == episode_id]
                    measures += [f for f in m if f.episode_id == episode_id]
                    alerts += [f for f in a if f.episode_id == episode_id]
            new = summarize(episode_id, care, measures, alerts)
            if new == old:
                continue
            cells |= _affected(old, new)
            if new is None:
                removed.append(episode_id)
                summaries.pop(episode_id, None)
            else:
                changed.append(new)
                summaries[episode_id] = new

        built = []
        for month in sorted(cells):
            c, m, a = await facts.get(month)
            built.append(build_cell(clinic_id, month, care=c, measures=m, alerts=a, episodes=summaries))
        index = await store.client_index(clinic_id=clinic_id)
        stored = len(index)
        if index.add(ref for cell in built for ref in cell_clients(cell)):
            await store.save_client_index(clinic_id=clinic_id, index=index, stored=stored)
        for cell in built:
            await store.write_cell(
                clinic_id=clinic_id,
                month=cell.month,
                body=encode_parts(cell.parts, index),
                network_body=encode_parts(network_parts(cell), index),
            )
        # The summaries last: until they are saved, a run again (after a crash or a conflict in
        # between) sees the same changes and recomputes the same cells; saved first, it would see
        # none and leave the cells they reach stale for good.
        await store.save_episodes(clinic_id=clinic_id, changed=changed, removed=removed)
        result.clinics.add(clinic_id)
        result.cells += len(built)
        result.episodes += len(changed) + len(removed)
        metrics.CELLS_MATERIALIZED.inc(len(built))
        metrics.EPISODES_RECOMPUTED.inc(len(changed) + len(removed))
        bodies = await store.clinic_bodies(clinic_id=clinic_id)
        set_gauges(clinic_id, [(month, decode_parts(body)) for month, body in bodies])

    async def sweep_forever(self, stores: Callable[[], Any]) -> None:
        """Run periodically: marks left by a crash or another replica, and gauge refreshes."""
        interval = self.settings.attune_reporting_sweep_interval_s
        refresh = self.settings.attune_reporting_gauge_refresh_s
        last_refresh = 0.0
        while True:
            try:
                store: ReadModel = await stores()
                # A consumer that is behind materializes itself, throttled; the sweep keeps to the
                # same pause so that it does not undo the throttle.
                checked_at = time.monotonic()
                pending = await store.pending()
                if pending and self.rested():
                    await self.run(store)
                elif not pending:  # another replica's run (or the rebuild's) applied them
                    self._covered(checked_at)
                if time.monotonic() - last_refresh >= refresh:
                    await refresh_gauges(store)
                    last_refresh = time.monotonic()
            except (ConcurrentUpdate, LockLost) as exc:
                log.warning("materializer_retry", error=str(exc))
            except Exception as exc:  # the sweep must outlive a store outage
                log.warning("materializer_sweep_failed", error=type(exc).__name__, detail=str(exc)[:200])
            await self._nap(interval)


def _set(gauge: Any, clinic_id: str, value: float | int | None) -> None:
    if value is None:
        with contextlib.suppress(KeyError):  # never set, or already removed
            gauge.remove(clinic_id)
    else:
        gauge.labels(clinic_id).set(value)


def set_gauges(
    clinic_id: str, months: list[tuple[str, dict[str, Part[Bits]]]], now: datetime | None = None
) -> None:
    """The clinic's gauges from its materialized months."""
    current = month_of(now or datetime.now(UTC))
    since = shift(current, -11)
    alls = [(month, parts[ALL]) for month, parts in sorted(months) if ALL in parts]
    everything = figures(total((clinic_id, p) for _, p in alls))
    this_month = figures(total((clinic_id, p) for month, p in alls if month == current))
    last_year = figures(total((clinic_id, p) for month, p in alls if since <= month <= current))
    _set(metrics.OPEN_ALERTS, clinic_id, everything["alerts_open"])
    _set(metrics.ATTENDANCE_RATE, clinic_id, this_month["attendance_rate"])
    _set(metrics.ALLIANCE_MEAN, clinic_id, this_month["wai_sr_mean"])
    _set(metrics.REPAIR_RATE, clinic_id, last_year["repair_rate"])


async def refresh_gauges(store: ReadModel) -> None:
    """Every clinic's gauges (the current month moves on even when no input arrives)."""
    bodies = await store.network_bodies(first="0000-01", last="9999-12")
    by_clinic: dict[str, list[tuple[str, dict[str, Part[Bits]]]]] = {}
    for clinic_id, month, body in bodies:
        by_clinic.setdefault(clinic_id, []).append((month, decode_parts(body)))
    for clinic_id, months in by_clinic.items():
        set_gauges(clinic_id, months)
