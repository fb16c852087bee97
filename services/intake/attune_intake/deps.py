"""intake's dependencies: built once by app.py's on_start, read by the subscriber and the routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from attune_intake.adapters.store import IntakeStore
from attune_intake.pipeline import IntakePipeline
from attune_intake.ports import ReidentificationStore, SubmissionStore


@dataclass(frozen=True, slots=True)
class Deps:
    """What intake runs on once started (the database itself is `Service.database`)."""

    store: IntakeStore  # the repository over intake's database
    pipeline: IntakePipeline


def deps_of(request: Request) -> Deps:
    """The running service's dependencies."""
    deps: Deps = request.app.state.service.deps
    return deps


def get_store(request: Request) -> IntakeStore:
    """FastAPI dependency: intake's repository."""
    return deps_of(request).store


# Each door sees the repository through its own port (ports.py); the dead-letter admin reads the
# dead_letters collection itself, so it takes the repository.
StoreDep = Annotated[IntakeStore, Depends(get_store)]
SubmissionsDep = Annotated[SubmissionStore, Depends(get_store)]
ReidentificationDep = Annotated[ReidentificationStore, Depends(get_store)]
