"""measures' dependencies: built once by app.py's on_start, read by the subscriber and the routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from attune_measures.adapters.store import MeasuresStore
from attune_measures.domain.clinic_thresholds import ThresholdBook
from attune_measures.pipeline import MeasuresPipeline
from attune_measures.ports import ResponseQueries
from attune_measures.trajectory_models import TrajectoryModels


@dataclass(frozen=True, slots=True)
class Deps:
    """What measures runs on once started (the database itself is `Service.database`)."""

    store: MeasuresStore  # the repository over measures' database
    thresholds: ThresholdBook
    pipeline: MeasuresPipeline
    trajectories: TrajectoryModels  # the expected-trajectory models, their refits and status


def deps_of(request: Request) -> Deps:
    """The running service's dependencies (also for code the HTTP guard calls, outside FastAPI's DI)."""
    deps: Deps = request.app.state.service.deps
    return deps


def get_store(request: Request) -> ResponseQueries:
    """FastAPI dependency: measures' repository, as the read API's port."""
    return deps_of(request).store


def get_thresholds(request: Request) -> ThresholdBook:
    """FastAPI dependency: the per-clinic thresholds."""
    return deps_of(request).thresholds


def get_trajectories(request: Request) -> TrajectoryModels:
    """FastAPI dependency: the expected-trajectory models."""
    return deps_of(request).trajectories


StoreDep = Annotated[ResponseQueries, Depends(get_store)]
ThresholdsDep = Annotated[ThresholdBook, Depends(get_thresholds)]
TrajectoriesDep = Annotated[TrajectoryModels, Depends(get_trajectories)]
