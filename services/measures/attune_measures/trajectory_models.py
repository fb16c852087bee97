"""The expected-trajectory models measures scores against: loaded at start, refitted on a schedule
(ATTUNE_TRAJECTORY_REFIT_S, first attempt at start-up) and on demand (the admin endpoint).

A refit reads every closed episode's ORS, PHQ-9 and GAD-7 series, fits each instrument (in a worker
thread: the fit is CPU work) and keeps each new version; the current model of an instrument is its
newest. Each replica reloads the current models every `poll_s` (so a refit by another replica, or on
demand, reaches it within that time) and refits only when the newest model is older than the refit
interval (or an instrument has none and this process has not tried for that long), so replicas do not
refit in turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from attune_measures import metrics
from attune_measures.domain.trajectories import (
    N_MIN,
    TRAJECTORY_INSTRUMENTS,
    EpisodeClosure,
    EpisodeScores,
    ModelBook,
    TrajectoryModel,
    fit,
    usable,
)
from attune_measures.domain.versions import Tracked
from attune_measures.ports import TrajectoryStore
from attune_shared.logging import get_logger

log = get_logger("attune_measures.trajectories")


@dataclass(frozen=True, slots=True)
class InstrumentStatus:
    """One instrument's model: the current one if any, and what the last refit attempt found."""

    instrument: str
    model: TrajectoryModel | None
    episodes_available: int | None  # closed episodes with >= 3 scores at the last attempt (None: none yet)
    n_min: int
    checked_at: datetime | None
    reason: str | None  # why the last attempt fitted nothing new

    @property
    def active(self) -> bool:
        """The rule can apply: there is a model."""
        return self.model is not None


def _now() -> datetime:
    # Whole seconds: a fit time stored as a BSON date (milliseconds) reads back equal.
    return datetime.now(UTC).replace(microsecond=0)


class TrajectoryModels:
    """The current models (a ModelBook), their refits and their status."""

    def __init__(
        self,
        store: TrajectoryStore,
        *,
        n_min: int = N_MIN,
        refit_s: float = 86400.0,
        poll_s: float | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.n_min = n_min
        self.refit_s = refit_s
        self.poll_s = poll_s if poll_s is not None else min(refit_s, 60.0)
        self.clock = clock
        self.book = ModelBook()
        self.available: dict[str, int] = {}
        self.reasons: dict[str, str | None] = {}
        self.checked_at: datetime | None = None
        self.retry_at: datetime | None = None  # after a failed scheduled attempt
        self._lock = asyncio.Lock()

    async def reload(self) -> ModelBook:
        """Read the current models (another replica's refit included)."""
        current = await self.store.current_models()
        self.book = ModelBook(current, self.book.known).with_models(current.values())
        self._export()
        return self.book

    async def covering(self, book: ModelBook, members: Iterable[Tracked]) -> ModelBook:
        """`book`, also knowing every model version these members are pinned to (read once)."""
        missing = {
            (t.response.instrument, t.trajectory)
            for t in members
            if t.trajectory is not None and book.version(t.response.instrument, t.trajectory) is None
        }
        if not missing:
            return book
        found = await self.store.models_by_version(keys=missing)
        self.book = self.book.with_models(found)
        return book.with_models(found)

    async def record_closures(self, closures: Sequence[EpisodeClosure]) -> None:
        """Keep closed episodes (their series may now train a model)."""
        if closures:
            await self.store.close_episodes(closures=closures)

    def due(self, now: datetime) -> bool:
        """A scheduled refit is due: the oldest current model and this process's last attempt are both
        at least the refit interval old (an instrument without a model: the last attempt alone)."""
        fitted = [m.fitted_at for i in TRAJECTORY_INSTRUMENTS if (m := self.book.current.get(i)) is not None]
        if self.retry_at is not None and now < self.retry_at:
            return False
        reference = min(fitted) if len(fitted) == len(TRAJECTORY_INSTRUMENTS) else None
        if self.checked_at is not None:
            reference = self.checked_at if reference is None else max(reference, self.checked_at)
        return reference is None or now - reference >= timedelta(seconds=self.refit_s)

    async def refit(self) -> list[InstrumentStatus]:
        """Fit every instrument on the closed episodes now, keep each new version, and say what came of it."""
        async with self._lock:
            now = self.clock()
            episodes = await self.store.closed_series()
            fitted = await asyncio.to_thread(_fit_all, episodes, now, self.n_min)
            for instrument, (model, available) in fitted.items():
                self.available[instrument] = available
                if model is not None:
                    await self.store.save_model(model=model)
                    self.reasons[instrument] = None
                    outcome = "fitted"
                elif available < self.n_min:
                    self.reasons[instrument] = (
                        f"{available} closed episodes with at least 3 scores; {self.n_min} needed"
                    )
                    outcome = "below_n_min"
                else:
                    self.reasons[instrument] = "the intake scores do not vary: no model can be fitted"
                    outcome = "degenerate"
                metrics.TRAJECTORY_FITS.labels(instrument, outcome).inc()
                log.info(
                    "trajectory_refit",
                    instrument=instrument,
                    outcome=outcome,
                    episodes=available,
                    n_min=self.n_min,
                    version=model.version if model else None,
                )
            self.checked_at = now
            self.retry_at = None
            await self.reload()
            return self.status()

    def status(self) -> list[InstrumentStatus]:
        """Each instrument's current model and what the last refit attempt found."""
        return [
            InstrumentStatus(
                instrument=i,
                model=self.book.current.get(i),
                episodes_available=self.available.get(i),
                n_min=self.n_min,
                checked_at=self.checked_at,
                reason=self.reasons.get(i),
            )
            for i in TRAJECTORY_INSTRUMENTS
        ]

    def health(self) -> dict[str, object]:
        """Each instrument's model status for /readyz (whether not-on-track can apply, and why not)."""
        return {
            s.instrument: {
                "status": "active" if s.active else "inactive",
                "version": s.model.version if s.model else None,
                "episodes_available": s.episodes_available,
                "n_min": s.n_min,
                "reason": None if s.active else s.reason,
            }
            for s in self.status()
        }

    async def run(self, stopping: Callable[[], bool]) -> None:
        """Reload every poll_s and refit when due, until the service stops; a failed attempt is logged
        and tried again after min(refit_s, 10 minutes)."""
        while not stopping():
            try:
                await self.reload()
                if self.due(self.clock()):
                    await self.refit()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("trajectory_refit_failed")
                self.retry_at = self.clock() + timedelta(seconds=min(self.refit_s, 600.0))
            await asyncio.sleep(self.poll_s)

    def _export(self) -> None:
        for i in TRAJECTORY_INSTRUMENTS:
            metrics.TRAJECTORY_ACTIVE.labels(i).set(1 if i in self.book.current else 0)
            if i in self.available:
                metrics.TRAJECTORY_EPISODES.labels(i).set(self.available[i])


def _fit_all(
    episodes: Sequence[EpisodeScores], fitted_at: datetime, n_min: int
) -> dict[str, tuple[TrajectoryModel | None, int]]:
    """Each instrument's model (or None) and the episodes it could use."""
    return {
        i: (fit(i, episodes, fitted_at=fitted_at, n_min=n_min), len(usable(i, episodes)))
        for i in TRAJECTORY_INSTRUMENTS
    }
