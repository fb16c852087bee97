"""intake's composition root: `create_app(settings=None, database=None)` and the `attune-intake` entry point."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from attune_intake.adapters.store import IntakeStore
from attune_intake.api import routers
from attune_intake.deps import Deps
from attune_intake.handlers import GROUP, input_topics, register_consumer
from attune_intake.pipeline import IntakePipeline
from attune_intake.settings import IntakeSettings
from attune_shared.kafka import make_broker
from attune_shared.runtime import Service, build_app, serve
from attune_shared.settings import load_settings


def create_app(
    settings: IntakeSettings | None = None, database: AsyncDatabase[dict[str, Any]] | None = None
) -> FastAPI:
    """Build the intake service; clients are created in the lifespan, not here."""
    settings = settings or load_settings(IntakeSettings)
    service: Service[Deps] = Service(
        settings=settings,
        broker=make_broker(settings),
        group_id=settings.group(GROUP),
        topics=input_topics(settings),
    )
    register_consumer(service)

    async def on_start(svc: Service[Deps]) -> None:
        store = IntakeStore(svc.database)
        await store.ensure_indexes()
        svc.deps = Deps(store=store, pipeline=IntakePipeline(settings, svc.broker, store))

    return build_app(
        service,
        title="Attune intake",
        description="The one door into Attune: validates, de-duplicates and pseudonymises EHR events.",
        routers=routers,
        on_start=on_start,
        database=database,
    )


def main() -> None:
    """Run intake until SIGTERM or Ctrl-C."""
    settings = load_settings(IntakeSettings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
