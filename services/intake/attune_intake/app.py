"""intake's composition root: `create_app(settings=None, store=None)` and the `attune-intake` entry point."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from attune_intake import admin, clients
from attune_intake.adapters.store import IntakeStore
from attune_intake.handlers import GROUP, register_consumer, router
from attune_intake.pipeline import IntakePipeline
from attune_intake.settings import IntakeSettings
from attune_shared.kafka import make_broker
from attune_shared.runtime import Service, build_app, serve
from attune_shared.settings import load_settings
from attune_shared.topics import Topics


def create_app(
    settings: IntakeSettings | None = None, store: AsyncDatabase[dict[str, Any]] | None = None
) -> FastAPI:
    """Build the intake service; clients are created in the lifespan, not here."""
    settings = settings or load_settings(IntakeSettings)
    service = Service(
        settings=settings,
        broker=make_broker(settings),
        group_id=settings.group(GROUP),
        topics=[settings.topic(Topics.EHR_EVENTS)],
    )
    register_consumer(service)

    async def on_start(svc: Service) -> None:
        intake_store = IntakeStore(svc.store)
        await intake_store.ensure_indexes()
        svc.extras["store"] = intake_store
        svc.extras["pipeline"] = IntakePipeline(settings, svc.broker, intake_store)

    return build_app(
        service,
        title="Attune intake",
        description="The one door into Attune: validates, de-duplicates and pseudonymises EHR events.",
        routers=[router, admin.router, clients.router],
        on_start=on_start,
        store=store,
    )


def main() -> None:
    """Run intake until SIGTERM or Ctrl-C."""
    settings = load_settings(IntakeSettings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
