"""reporting's composition root: `create_app(settings=None, database=None)` and the `attune-reporting` entry point."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from attune_reporting.adapters.pointer import ActiveDatabase
from attune_reporting.adapters.reports import StoredReports
from attune_reporting.api import router
from attune_reporting.deps import Deps
from attune_reporting.handlers import GROUP, input_topics, register_consumer
from attune_reporting.materializer import Materializer, refresh_gauges
from attune_reporting.pipeline import ReportingPipeline
from attune_reporting.settings import ReportingSettings
from attune_shared.kafka import make_broker
from attune_shared.logging import get_logger
from attune_shared.runtime import Service, build_app, serve
from attune_shared.settings import load_settings

log = get_logger("attune_reporting.app")


def create_app(
    settings: ReportingSettings | None = None, database: AsyncDatabase[dict[str, Any]] | None = None
) -> FastAPI:
    """Build the reporting service; clients are created in the lifespan, not here.

    `database` is the control database (it holds the pointer to the active data database).
    """
    settings = settings or load_settings(ReportingSettings)
    service: Service[Deps] = Service(
        settings=settings,
        broker=make_broker(settings),
        group_id=settings.group(GROUP),
        topics=input_topics(settings),
    )
    register_consumer(service)

    async def on_start(svc: Service[Deps]) -> None:
        active = ActiveDatabase(svc.database.client, svc.database.name)
        materializer = Materializer(settings)
        svc.details = lambda: {"materializer": materializer.state()}  # /readyz: are the reports behind?
        svc.deps = Deps(
            active=active,
            materializer=materializer,
            pipeline=ReportingPipeline(settings, active, materializer),
            reports=StoredReports(active),
        )
        current = await active.store()
        if await current.legacy_layout():
            log.error(
                "legacy_layout",
                database=current.name,
                hint="this database has the per-cell collections of an earlier release; "
                "run `attune reporting rebuild` to move it to the current layout",
            )
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
        database=database,
    )


def main() -> None:
    """Run reporting until SIGTERM or Ctrl-C."""
    settings = load_settings(ReportingSettings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
