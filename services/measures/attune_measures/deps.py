"""measures' dependencies: built once by app.py's on_start, read by the subscriber and the routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from attune_measures.adapters.store import MeasuresStore
from attune_measures.domain.clinic_thresholds import ThresholdBook
from attune_measures.pipeline import MeasuresPipeline


@dataclass(frozen=True, slots=True)
class Deps:
    """What measures runs on once started (the database itself is `Service.database`)."""

    store: MeasuresStore  # the repository over measures' database
    thresholds: ThresholdBook
    pipeline: MeasuresPipeline


def deps_of(request: Request) -> Deps:
    """The running service's dependencies (also for code the HTTP guard calls, outside FastAPI's DI)."""
    deps: Deps = request.app.state.service.deps
    return deps


def get_store(request: Request) -> MeasuresStore:
    """FastAPI dependency: measures' repository."""
    return deps_of(request).store


def get_thresholds(request: Request) -> ThresholdBook:
    """FastAPI dependency: the per-clinic thresholds."""
    return deps_of(request).thresholds


StoreDep = Annotated[MeasuresStore, Depends(get_store)]
ThresholdsDep = Annotated[ThresholdBook, Depends(get_thresholds)]
