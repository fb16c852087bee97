"""alerts' dependencies: built once by app.py's on_start, read by the subscriber, the routes and the
background tasks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends, Request

from attune_alerts.adapters.store import AlertsStore
from attune_alerts.delivery import DeliveryWorker
from attune_alerts.ledger import AlertLedger
from attune_alerts.pipeline import AlertsPipeline
from attune_alerts.ports import AlertQueries
from attune_alerts.settings import ClinicThresholds
from attune_alerts.sweeper import Sweeper


@dataclass(frozen=True, slots=True)
class Deps:
    """What alerts runs on once started (the database itself is `Service.database`)."""

    store: AlertsStore  # the repository over alerts' database
    ledger: AlertLedger
    pipeline: AlertsPipeline
    thresholds: ClinicThresholds
    lock: asyncio.Lock  # the consumer and the inactivity sweep write episodes under it, one at a time
    http: httpx.AsyncClient  # the webhooks' client, closed when the service stops
    sweeper: Sweeper
    deliveries: DeliveryWorker


def deps_of(request: Request) -> Deps:
    """The running service's dependencies (also for code the HTTP guard calls, outside FastAPI's DI)."""
    deps: Deps = request.app.state.service.deps
    return deps


def get_store(request: Request) -> AlertQueries:
    """FastAPI dependency: alerts' repository, as the API's port."""
    return deps_of(request).store


def get_ledger(request: Request) -> AlertLedger:
    """FastAPI dependency: the alert ledger (every change of an alert goes through it)."""
    return deps_of(request).ledger


StoreDep = Annotated[AlertQueries, Depends(get_store)]
LedgerDep = Annotated[AlertLedger, Depends(get_ledger)]
