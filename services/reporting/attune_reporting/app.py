"""reporting's composition root: `create_app(settings=None, store=None)` and the `attune-reporting` entry point."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from attune_reporting.adapters.pointer import ActiveDatabase
from attune_reporting.handlers import GROUP, StoredReports, register_consumer, router
from attune_reporting.materializer import Materializer, refresh_gauges
from attune_reporting.pipeline import INPUT_TOPICS, ReportingPipeline
from attune_reporting.settings import ReportingSettings
from attune_shared.kafka import make_broker
from attune_shared.runtime import Service, build_app, serve
from attune_shared.settings import load_settings


def create_app(
    settings: ReportingSettings | None = None, store: AsyncDatabase[dict[str, Any]] | None = None
) -> FastAPI:
    """Build the reporting service; clients are created in the lifespan, not here.

    `store` is the control database (it holds the pointer to the active data database).
    """
    settings = settings or load_settings(ReportingSettings)
    service = Service(
        settings=settings,
        broker=make_broker(settings),
        group_id=settings.group(GROUP),
        topics=[settings.topic(t) for t in INPUT_TOPICS],
    )
    register_consumer(service)

    async def on_start(svc: Service) -> None:
        active = ActiveDatabase(svc.store.client, svc.store.name)
        materializer = Materializer(settings)
        svc.extras["active"] = active
        svc.extras["materializer"] = materializer
        svc.extras["pipeline"] = ReportingPipeline(settings, active, materializer)
        svc.extras["reports"] = StoredReports(active)
        current = await active.store()
        await materializer.run(current)  # marks a crash left behind
        await refresh_gauges(current)
        svc.spawn(materializer.sweep_forever(active.store), "materializer")

    return build_app(
        service,
        title="Attune reporting",
        description=(
            "Folds care events, scored measures and alert events into per clinic, clinician, modality "
            "and month read models; serves reports as JSON and CSV and exports gauges."
        ),
        routers=[router],
        on_start=on_start,
        store=store,
    )


def main() -> None:
    """Run reporting until SIGTERM or Ctrl-C."""
    settings = load_settings(ReportingSettings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
