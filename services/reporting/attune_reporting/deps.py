"""reporting's dependencies: built once by app.py's on_start, read by the subscriber and the routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from attune_reporting.adapters.pointer import ActiveDatabase
from attune_reporting.materializer import Materializer
from attune_reporting.pipeline import ReportingPipeline
from attune_reporting.ports import ReportSource
from attune_reporting.settings import ReportingSettings


@dataclass(frozen=True, slots=True)
class Deps:
    """What reporting runs on once started (`Service.database` is the control database)."""

    active: ActiveDatabase  # the data database in use, named by a pointer in the control database
    materializer: Materializer
    pipeline: ReportingPipeline
    reports: ReportSource


def deps_of(request: Request) -> Deps:
    """The running service's dependencies."""
    deps: Deps = request.app.state.service.deps
    return deps


async def report_source(request: Request) -> ReportSource:
    """FastAPI dependency: the service's report source (tests override it); 503 while the active data
    database is in the layout of an earlier release, whose reports this code cannot read."""
    deps = deps_of(request)
    if (await deps.active.store()).legacy:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the read model is in the storage layout of an earlier release: "
            "run `attune reporting rebuild` (services/reporting/README.md)",
        )
    return deps.reports


def report_settings(request: Request) -> ReportingSettings:
    """FastAPI dependency: the service's settings (tests override it)."""
    settings: ReportingSettings = request.app.state.service.settings
    return settings


Source = Annotated[ReportSource, Depends(report_source)]
Settings = Annotated[ReportingSettings, Depends(report_settings)]
