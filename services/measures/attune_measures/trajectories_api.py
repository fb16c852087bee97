"""measures' expected-trajectory API: each instrument's model status, and a refit on demand; every
call audited (measures' `audit` collection, like its other reads).

- `GET /v1/trajectories` (roles lead, ops, admin): per instrument (ORS, PHQ-9, GAD-7) active or
  inactive, with the episodes available against n_min, the current version, its fit time,
  coefficients and episodes used. No client data: a model is an aggregate of the network's closed
  episodes.
- `POST /v1/admin/trajectories/refit` (role admin): fit every instrument now; the same listing, with
  the version each kept (`new_version`) or why an instrument stays inactive.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from attune_measures.deps import TrajectoriesDep, deps_of
from attune_measures.trajectory_models import InstrumentStatus
from attune_shared.auth import Principal, require_roles
from attune_shared.events import nul_escaped
from attune_shared.logging import get_logger

log = get_logger("attune_measures.trajectories_api")
router = APIRouter(tags=["trajectories"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no valid bearer token"},
    403: {"description": "the token's role may not read (or refit) trajectory models"},
    503: {"description": "the call could not be audited, so nothing is answered (or done)"},
}


class QuantileLine(BaseModel):
    """One quantile's line: score_s = intercept + b_intake * intake + b_log_s * log(s)."""

    quantile: float
    intercept: float
    b_intake: float
    b_log_s: float


class ModelView(BaseModel):
    """A fitted model version."""

    version: str = Field(description="fit time, episodes used and a digest of the coefficients")
    fitted_at: datetime
    episodes: int = Field(description="closed episodes with at least 3 scores the fit used")
    rows: int = Field(description="(intake, session, score) rows, sessions 2 and later")
    quantiles: tuple[float, float, float]
    coefficients: list[QuantileLine]


class InstrumentTrajectory(BaseModel):
    """One instrument's expected trajectory: whether the not-on-track rule can apply, and why not."""

    instrument: str
    status: Literal["active", "inactive"] = Field(
        description="active: a model exists and measures carry its expected band; inactive: the rule stays silent"
    )
    n_min: int = Field(
        description="closed episodes with at least 3 scores a model needs (ATTUNE_TRAJECTORY_N_MIN)"
    )
    episodes_available: int | None = Field(
        description="closed episodes with at least 3 scores at this process's last refit attempt (null: none yet)"
    )
    checked_at: datetime | None = Field(description="this process's last refit attempt")
    reason: str | None = Field(description="why the last attempt fitted no new version")
    model: ModelView | None = Field(description="the current model (the newest version)")
    new_version: str | None = Field(default=None, description="refit only: the version this refit kept")


class Trajectories(BaseModel):
    """Every instrument's expected trajectory."""

    refit_interval_s: float = Field(description="ATTUNE_TRAJECTORY_REFIT_S")
    items: list[InstrumentTrajectory]


def _view(s: InstrumentStatus, *, refit: bool = False) -> InstrumentTrajectory:
    m = s.model
    model = None
    if m is not None:
        model = ModelView(
            version=m.version,
            fitted_at=m.fitted_at,
            episodes=m.episodes,
            rows=m.rows,
            quantiles=m.quantiles,
            coefficients=[
                QuantileLine(quantile=q, intercept=c[0], b_intake=c[1], b_log_s=c[2])
                for q, c in zip(m.quantiles, m.coefficients, strict=True)
            ],
        )
    return InstrumentTrajectory(
        instrument=s.instrument,
        status="active" if s.active else "inactive",
        n_min=s.n_min,
        episodes_available=s.episodes_available,
        checked_at=s.checked_at,
        reason=s.reason,
        model=model,
        new_version=m.version if refit and m is not None and s.reason is None else None,
    )


async def _audit(
    request: Request, *, action: str, who: Principal | None, outcome: str, code: int, **target: Any
) -> None:
    await deps_of(request).store.audit(
        entry={
            "_id": str(uuid.uuid4()),
            "at": datetime.now(UTC),
            "who": who.name if who else None,
            "role": who.role if who else None,
            "action": action,
            "outcome": outcome,
            "status": code,
            **target,
        }
    )


async def _audited(request: Request, **entry: Any) -> None:
    """Audit a call before answering it; 503 (nothing answered or done) when the row cannot be written."""
    try:
        await _audit(request, **entry)
    except Exception:
        log.exception("audit_failed", action=entry.get("action"))
        raise HTTPException(503, "the call could not be audited; nothing is answered") from None


async def _denied(request: Request, who: Principal | None, code: int, detail: str) -> None:
    """Audit a call the HTTP guard refused (401/403)."""
    path = request.url.path.rstrip("/")
    target: dict[str, Any] = {}
    if path == "/v1/trajectories":
        action = "trajectories"
    elif path == "/v1/admin/trajectories/refit":
        action = "trajectories_refit"
    else:
        action, target["path"] = "unknown", nul_escaped(request.url.path[:200])
    outcome = "unauthorized" if code == 401 else "forbidden"
    await _audit(request, action=action, who=who, outcome=outcome, code=code, **target)


Reader = Annotated[Principal, Depends(require_roles("lead", "ops", "admin", audit=_denied))]
Admin = Annotated[Principal, Depends(require_roles("admin", audit=_denied))]


@router.get(
    "/v1/trajectories",
    response_model=Trajectories,
    summary="Each instrument's expected-trajectory model: active or inactive (episodes available vs n_min), "
    "version, fit time, coefficients",
    responses=_ERRORS,
)
async def trajectories(request: Request, who: Reader, models: TrajectoriesDep) -> Trajectories:
    """The current model of ORS, PHQ-9 and GAD-7, or why the not-on-track rule is inactive for it."""
    await _audited(request, action="trajectories", who=who, outcome="ok", code=200)
    return Trajectories(refit_interval_s=models.refit_s, items=[_view(s) for s in models.status()])


@router.post(
    "/v1/admin/trajectories/refit",
    response_model=Trajectories,
    summary="Refit every instrument's model now on the closed episodes; the versions kept, or why not",
    responses=_ERRORS,
)
async def refit(request: Request, who: Admin, models: TrajectoriesDep) -> Trajectories:
    """Fit ORS, PHQ-9 and GAD-7 now; each new version is kept and becomes current (measures scored
    from then on carry its band; measures scored before keep theirs)."""
    await _audited(request, action="trajectories_refit", who=who, outcome="ok", code=200)
    found = await models.refit()
    return Trajectories(refit_interval_s=models.refit_s, items=[_view(s, refit=True) for s in found])
