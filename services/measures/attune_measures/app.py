"""measures' composition root: `create_app(settings=None, database=None)` and the `attune-measures` entry point."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from attune_measures.adapters.store import MeasuresStore
from attune_measures.adapters.trajectories import TrajectoryRepository
from attune_measures.api import router, trajectories_router
from attune_measures.deps import Deps
from attune_measures.handlers import GROUP, input_topics, register_consumer
from attune_measures.pipeline import MeasuresPipeline
from attune_measures.settings import MeasuresSettings
from attune_measures.trajectory_models import TrajectoryModels
from attune_shared.kafka import make_broker
from attune_shared.runtime import Service, build_app, serve
from attune_shared.settings import load_settings


def create_app(
    settings: MeasuresSettings | None = None, database: AsyncDatabase[dict[str, Any]] | None = None
) -> FastAPI:
    """Build the measures service; clients are created in the lifespan, not here."""
    settings = settings or load_settings(MeasuresSettings)
    thresholds = settings.thresholds()  # validated by the settings already; read once here
    service: Service[Deps] = Service(
        settings=settings,
        broker=make_broker(settings),
        group_id=settings.group(GROUP),
        topics=input_topics(settings),
    )
    register_consumer(service)

    async def on_start(svc: Service[Deps]) -> None:
        store = MeasuresStore(svc.database)
        await store.ensure_indexes()
        repository = TrajectoryRepository(svc.database)
        await repository.ensure_indexes()
        trajectories = TrajectoryModels(
            repository, n_min=settings.attune_trajectory_n_min, refit_s=settings.attune_trajectory_refit_s
        )
        await trajectories.reload()  # the current models before the first batch
        pipeline = MeasuresPipeline(settings, svc.broker, store, thresholds, trajectories)
        svc.deps = Deps(store=store, thresholds=thresholds, pipeline=pipeline, trajectories=trajectories)
        svc.details = lambda: {"trajectories": trajectories.health()}  # /readyz says which rule is inactive
        # Reload and refit (first attempt now, then every ATTUNE_TRAJECTORY_REFIT_S) in the background.
        svc.spawn(trajectories.run(lambda: svc.stopping), "trajectories")

    return build_app(
        service,
        title="Attune measures",
        description=(
            "Scores questionnaires, keeps each episode's series, publishes scored measures, and serves "
            "the series and caseloads to leads."
        ),
        routers=[router, trajectories_router],
        on_start=on_start,
        database=database,
    )


def main() -> None:
    """Run measures until SIGTERM or Ctrl-C."""
    settings = load_settings(MeasuresSettings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
