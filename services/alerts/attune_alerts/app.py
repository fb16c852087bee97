"""alerts' composition root: `create_app(settings=None, database=None)` and the `attune-alerts` entry point."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from attune_alerts.adapters.senders import EmailSender, WebhookSender
from attune_alerts.adapters.store import AlertsStore
from attune_alerts.api import router
from attune_alerts.delivery import DeliveryWorker
from attune_alerts.deps import Deps
from attune_alerts.handlers import GROUP, input_topics, register_consumer
from attune_alerts.ledger import AlertLedger
from attune_alerts.pipeline import AlertsPipeline
from attune_alerts.settings import AlertsSettings, load_contacts, load_thresholds
from attune_alerts.sweeper import PartitionTracker, Sweeper
from attune_shared.kafka import group_lag, make_broker
from attune_shared.runtime import Service, build_app, serve
from attune_shared.settings import load_settings
from attune_shared.topics import Topics


async def pipeline_drained(settings: AlertsSettings, own_topics: Sequence[str]) -> bool:
    """Every event published so far has been through intake, measures and alerts (lag zero)."""
    groups = {
        settings.group("attune-intake"): [settings.topic(Topics.EHR_EVENTS)],
        settings.group("attune-measures"): [settings.topic(Topics.CARE)],
        settings.group(GROUP): list(own_topics),
    }
    try:
        for group, topics in groups.items():
            if sum((await group_lag(settings, group, topics)).values()):
                return False
    except Exception:  # the broker is away: not drained, as far as anyone can tell
        return False
    return True


def create_app(
    settings: AlertsSettings | None = None, database: AsyncDatabase[dict[str, Any]] | None = None
) -> FastAPI:
    """Build the alerts service; the configuration files are validated here, clients in the lifespan."""
    settings = settings or load_settings(AlertsSettings)
    thresholds = load_thresholds(settings.attune_alerts_thresholds_file)
    contacts = load_contacts(settings.attune_alerts_webhooks_file)
    service: Service[Deps] = Service(
        settings=settings,
        broker=make_broker(settings),
        group_id=settings.group(GROUP),
        topics=input_topics(settings),
    )
    partitions = PartitionTracker(service.topics)
    register_consumer(service, partitions)
    replica_id = uuid.uuid4().hex[:12]

    async def on_start(svc: Service[Deps]) -> None:
        alerts_store = AlertsStore(svc.database)
        await alerts_store.ensure_indexes()
        partitions.on_rebalance.append(alerts_store.forget)
        ledger = AlertLedger(settings, svc.broker, alerts_store, contacts)
        pipeline = AlertsPipeline(
            store=alerts_store, ledger=ledger, thresholds=thresholds, clock=settings.attune_alerts_clock
        )
        lock = asyncio.Lock()
        http = httpx.AsyncClient(follow_redirects=False)
        sweeper = Sweeper(
            store=alerts_store,
            ledger=ledger,
            pipeline=pipeline,
            thresholds=thresholds,
            lock=lock,
            partitions=partitions,
            clock=settings.attune_alerts_clock,
            interval_s=settings.attune_alerts_sweep_seconds,
            replica_id=replica_id,
            drained=lambda: pipeline_drained(settings, service.topics),
        )
        worker = DeliveryWorker(
            store=alerts_store,
            contacts=contacts,
            webhooks=WebhookSender(http, settings.attune_alerts_webhook_timeout_seconds),
            email=EmailSender(settings) if settings.email_enabled else None,
            worker_id=replica_id,
            max_attempts=settings.attune_alerts_webhook_max_attempts,
            backoff_base_s=settings.attune_alerts_webhook_backoff_seconds,
            backoff_cap_s=settings.attune_alerts_webhook_backoff_max_seconds,
            timeout_s=settings.attune_alerts_webhook_timeout_seconds,
            concurrency=settings.attune_alerts_webhook_concurrency,
            poll_s=settings.attune_alerts_delivery_poll_seconds,
            public_url=settings.attune_alerts_public_url,
        )
        svc.deps = Deps(
            store=alerts_store,
            ledger=ledger,
            pipeline=pipeline,
            thresholds=thresholds,
            lock=lock,
            http=http,
            sweeper=sweeper,
            deliveries=worker,
        )
        svc.spawn(sweeper.run_forever(), "sweep")
        svc.spawn(worker.run_forever(), "deliveries")

    async def on_stop(svc: Service[Deps]) -> None:
        # Not started: deps raises RuntimeError, which build_app's stop ignores like any error of on_stop.
        await svc.deps.http.aclose()

    return build_app(
        service,
        title="Attune alerts",
        description=(
            "Applies the alert rules, owns the alert lifecycle, delivers alerts (topic, signed webhooks, "
            "e-mail) and serves the alerts API."
        ),
        routers=[router],
        on_start=on_start,
        on_stop=on_stop,
        database=database,
    )


def main() -> None:
    """Run alerts until SIGTERM or Ctrl-C."""
    settings = load_settings(AlertsSettings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
