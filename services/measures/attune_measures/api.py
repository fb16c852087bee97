"""measures' read API: an episode's scored series (for a chart) and a clinician's caseload; every call audited.

Roles: `lead` sees the clinics on its token, `admin` all; any other role 403, no or bad token 401 (the
HTTP guard answers those before any validation; `_denied` audits them). An episode outside the
caller's clinics is 404 like an unknown one, never 403, so episode ids do not leak. Only pseudonyms
leave: client_ref and the episode and response ids intake made; measures holds no MRN or EHR id.
An audit row (who, what, when, outcome) is written before anything is answered; when it cannot be
written the answer is 503 and nothing is revealed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from attune_measures.deps import StoreDep, ThresholdsDep, TrajectoriesDep, deps_of
from attune_measures.domain.charts import (
    HIGHER_IS_BETTER,
    KIND,
    RANK,
    SCORE_NAME,
    ChartPoint,
    Kind,
    chart_episode,
    last_response,
    latest,
    latest_per_series,
)
from attune_measures.domain.clinic_thresholds import ThresholdBook
from attune_measures.domain.versions import Tracked
from attune_measures.trajectory_models import InstrumentStatus
from attune_shared.auth import Principal, require_roles
from attune_shared.events import (
    ChangeFromIntake,
    ClientRef,
    EpisodeRef,
    Respondent,
    ResponseRef,
    ResponseStatus,
    SeriesContext,
    nul_escaped,
)
from attune_shared.http import NO_CONTROL_PATTERN
from attune_shared.ids import EPISODE_REF_PATTERN
from attune_shared.instruments import InstrumentName
from attune_shared.logging import get_logger

log = get_logger("attune_measures.api")
router = APIRouter(tags=["measures"])

DEFAULT_LIMIT, MAX_LIMIT = 100, 500
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no valid bearer token"},
    403: {"description": "the token's role may not read measures (or, for a caseload, the clinic asked for)"},
    503: {"description": "the read could not be audited, so nothing is answered"},
}
ScoreValue = float | int | bool | str | None


class SeriesPoint(BaseModel):
    """One scored response: a point of its instrument's series."""

    response_id: ResponseRef = Field(description="the response's pseudonym")
    session_at: datetime = Field(
        description="the session it belongs to: appointment start, else completion time"
    )
    status: ResponseStatus
    revision: int = Field(description="the last revision of measure.scored published for it")
    clinician_id: str
    score: float | None = Field(description="the primary score (see the series' `score_name`); null for PSQ")
    scores: dict[str, ScoreValue] = Field(
        description="every score of the response (WAI-SR: total, mean, task, bond, goal; SRS: total and "
        "concerns; ORS: total, clinical_range; PHQ-9 / GAD-7: total, band; PSQ: rupture_reported, "
        "tension, resolution, in_session_repair)"
    )
    change: ChangeFromIntake | None = Field(
        description="change from the episode's first score of this instrument, with reliable change "
        "(ORS, PHQ-9, GAD-7)"
    )
    alliance: SeriesContext | None = Field(
        description="client-rated WAI-SR / SRS: its place in the alliance series (mu, sd_eff, drop)"
    )


class InstrumentSeries(BaseModel):
    """One instrument's points, by one respondent, in session order."""

    instrument: InstrumentName
    respondent: Respondent
    kind: Kind
    score_name: str | None = Field(
        description="which score `score` is: `mean` (WAI-SR), `total`, or null (PSQ)"
    )
    higher_is_better: bool | None
    points: list[SeriesPoint]


class EpisodeSeries(BaseModel):
    """An episode's scored series, for a chart."""

    episode_id: EpisodeRef
    client_ref: ClientRef
    clinic_id: str
    clinician_id: str = Field(description="the clinician named by the episode's latest response")
    first_session_at: datetime
    last_session_at: datetime = Field(description="the latest session with a scored response")
    series: list[InstrumentSeries]


class LatestScore(BaseModel):
    """The latest score of an instrument in an episode."""

    instrument: InstrumentName
    respondent: Respondent
    score_name: str
    score: float
    session_at: datetime
    response_id: ResponseRef
    change: ChangeFromIntake | None = None


class CaseloadEntry(BaseModel):
    """One episode of the clinician's caseload."""

    client_ref: ClientRef
    episode_id: EpisodeRef
    clinic_id: str
    first_session_at: datetime
    last_session_at: datetime = Field(description="the latest session with a scored response")
    responses: int = Field(description="scored responses in the episode")
    latest_alliance: LatestScore | None = Field(
        description="the latest client-rated WAI-SR mean or SRS total"
    )
    latest_outcome: LatestScore | None = Field(description="the latest ORS, PHQ-9 or GAD-7 total")
    latest_by_instrument: list[LatestScore] = Field(description="the latest score of every instrument")


class Caseload(BaseModel):
    """A clinician's episodes, latest session first."""

    clinician_id: str
    clinic_id: str | None = Field(description="the clinic asked for; null: every clinic of the caller's")
    items: list[CaseloadEntry]
    limit: int
    truncated: bool = Field(description="true when more episodes than `limit` were found")


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
    """Audit a call the endpoint answers; 503 (nothing answered) when the row cannot be written."""
    try:
        await _audit(request, **entry)
    except Exception:
        log.exception("audit_failed", action=entry.get("action"))
        raise HTTPException(503, "the call could not be audited; nothing is answered") from None


async def _denied(request: Request, who: Principal | None, code: int, detail: str) -> None:
    """Audit a call the HTTP guard refused (401/403) before any validation: the action and target are
    read from the raw path and query, cut short, since nothing about them has been checked."""
    parts = request.url.path.strip("/").split("/")
    target: dict[str, Any] = {}
    if len(parts) == 4 and parts[:2] == ["v1", "episodes"] and parts[3] == "series":
        action, target["episode_id"] = "series", nul_escaped(parts[2][:200])
    elif len(parts) == 4 and parts[:2] == ["v1", "clinicians"] and parts[3] == "caseload":
        action, target["clinician_id"] = "caseload", nul_escaped(parts[2][:200])
        target["query"] = {
            nul_escaped(k[:64]): nul_escaped(v[:200]) for k, v in list(request.query_params.items())[:20]
        }
    else:
        action, target["path"] = "unknown", nul_escaped(request.url.path[:200])
    outcome = "unauthorized" if code == 401 else "forbidden"
    await _audit(request, action=action, who=who, outcome=outcome, code=code, **target)


# Authenticated and authorised by the HTTP guard before any validation; a refusal is audited by _denied.
Caller = Annotated[Principal, Depends(require_roles("lead", "admin", audit=_denied))]
EpisodePath = Annotated[
    str,
    Path(
        pattern=EPISODE_REF_PATTERN,
        description="the episode's pseudonym (`episode_id` in alerts and in a caseload)",
        examples=["ep_7K2QXW4M5N6P7Q2R3S4T5U6V7W"],
    ),
]
ClinicianPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=NO_CONTROL_PATTERN,
        description="the clinician's id in the EHR",
        examples=["c-17"],
    ),
]


def _point(p: ChartPoint) -> SeriesPoint:
    r = p.response
    return SeriesPoint(
        response_id=r.response_id,
        session_at=r.session_at,
        status=r.status,
        revision=p.revision,
        clinician_id=r.clinician_id,
        score=p.score,
        scores=dict(p.values),
        change=p.change,
        alliance=p.alliance,
    )


def _series(points: Sequence[ChartPoint]) -> list[InstrumentSeries]:
    """Points by instrument and respondent: instruments in the contract's order, client-rated first."""
    by: dict[tuple[int, bool], list[ChartPoint]] = {}
    for p in points:
        by.setdefault((RANK[p.response.instrument], p.response.respondent != "client"), []).append(p)
    out = []
    for _, group in sorted(by.items()):
        first = group[0].response
        out.append(
            InstrumentSeries(
                instrument=first.instrument,
                respondent=first.respondent,
                kind=KIND[first.instrument],
                score_name=SCORE_NAME.get(first.instrument),
                higher_is_better=HIGHER_IS_BETTER.get(first.instrument),
                points=[_point(p) for p in sorted(group, key=lambda p: p.response.order)],
            )
        )
    return out


def _points(members: Sequence[Tracked], thresholds: ThresholdBook) -> list[ChartPoint]:
    return [p for group in chart_episode(members, thresholds.for_clinic).values() for p in group]


def _latest(p: ChartPoint | None) -> LatestScore | None:
    if p is None or p.score is None:
        return None
    r = p.response
    return LatestScore(
        instrument=r.instrument,
        respondent=r.respondent,
        score_name=SCORE_NAME[r.instrument],
        score=p.score,
        session_at=r.session_at,
        response_id=r.response_id,
        change=p.change,
    )


@router.get(
    "/v1/episodes/{episode_id}/series",
    response_model=EpisodeSeries,
    summary="An episode's scored series, per instrument in session order (404 outside the caller's clinics)",
    responses={**_ERRORS, 404: {"description": "no scored response of this episode in the caller's clinics"}},
)
async def episode_series(
    request: Request, who: Caller, store: StoreDep, thresholds: ThresholdsDep, episode_id: EpisodePath
) -> EpisodeSeries:
    """Every scored response of the episode, for a chart: scores, change from intake, alliance context."""
    members = (await store.episode_responses(episode_ids=[episode_id])).get(episode_id, [])
    last = last_response(members)
    if last is None or not who.covers_clinic(last.clinic_id):
        await _audited(
            request, action="series", who=who, outcome="not_found", code=404, episode_id=episode_id
        )
        raise HTTPException(404, "no such episode")
    points = _points(members, thresholds)
    times = [t.response.session_at for t in members]
    await _audited(
        request,
        action="series",
        who=who,
        outcome="ok",
        code=200,
        episode_id=episode_id,
        clinic_id=last.clinic_id,
        client_ref=last.client_ref,
        returned=len(points),
    )
    return EpisodeSeries(
        episode_id=episode_id,
        client_ref=last.client_ref,
        clinic_id=last.clinic_id,
        clinician_id=last.clinician_id,
        first_session_at=min(times),
        last_session_at=max(times),
        series=_series(points),
    )


def _entry(members: Sequence[Tracked], thresholds: ThresholdBook) -> CaseloadEntry:
    points = _points(members, thresholds)
    last = last_response(members)
    assert last is not None  # only episodes with responses are listed
    times = [t.response.session_at for t in members]
    return CaseloadEntry(
        client_ref=last.client_ref,
        episode_id=last.episode_id,
        clinic_id=last.clinic_id,
        first_session_at=min(times),
        last_session_at=max(times),
        responses=len(points),
        latest_alliance=_latest(latest(points, "alliance", client_only=True)),
        latest_outcome=_latest(latest(points, "outcome")),
        latest_by_instrument=[s for p in latest_per_series(points) if (s := _latest(p)) is not None],
    )


@router.get(
    "/v1/clinicians/{clinician_id}/caseload",
    response_model=Caseload,
    summary="A clinician's episodes with each client's latest alliance and outcome, latest session first",
    responses={**_ERRORS},
)
async def clinician_caseload(
    request: Request,
    who: Caller,
    store: StoreDep,
    thresholds: ThresholdsDep,
    clinician_id: ClinicianPath,
    clinic_id: str | None = Query(
        default=None,
        max_length=64,
        pattern=NO_CONTROL_PATTERN,
        description="one clinic (default: the caller's)",
    ),
    limit: int = Query(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
) -> Caseload:
    """The episodes whose latest scored response names this clinician, in the caller's clinics (or `clinic_id`)."""
    query: dict[str, Any] = {"limit": limit} | ({"clinic_id": clinic_id} if clinic_id else {})
    target = {"clinician_id": clinician_id, "query": query}
    if clinic_id and not who.covers_clinic(clinic_id):
        await _audited(request, action="caseload", who=who, outcome="forbidden", code=403, **target)
        raise HTTPException(403, f"token does not cover clinic {clinic_id}")
    clinics = [clinic_id] if clinic_id else None if "*" in who.clinics else sorted(who.clinics)
    found = await store.clinician_episodes(clinician_id=clinician_id, clinics=clinics)
    # Latest first by the clinician's own responses; an episode whose latest response names another
    # clinician (a transfer) is left out, so episodes are read in chunks until the page is full.
    candidates = sorted(found, key=lambda e: (found[e], e), reverse=True)
    entries: list[CaseloadEntry] = []
    read = 0
    while read < len(candidates) and len(entries) <= limit:
        chunk = candidates[read : read + limit + 1 - len(entries)]
        read += len(chunk)
        loaded = await store.episode_responses(episode_ids=chunk)
        for episode_id in chunk:
            members = loaded.get(episode_id, [])
            last = last_response(members)
            if last is not None and last.clinician_id == clinician_id and who.covers_clinic(last.clinic_id):
                entries.append(_entry(members, thresholds))
    entries.sort(key=lambda e: (e.last_session_at, e.episode_id), reverse=True)
    page = entries[:limit]
    await _audited(request, action="caseload", who=who, outcome="ok", code=200, **target, returned=len(page))
    return Caseload(
        clinician_id=clinician_id,
        clinic_id=clinic_id,
        items=page,
        limit=limit,
        truncated=len(entries) > limit,
    )


# ---------------------------------------------------------------- expected trajectories
# `GET /v1/trajectories` (lead, ops, admin): per instrument (ORS, PHQ-9, GAD-7) active or inactive,
# with the episodes available against n_min, the current version, its fit time, coefficients and
# episodes used (no client data: a model is an aggregate of the network's closed episodes).
# `POST /v1/admin/trajectories/refit` (admin): fit every instrument now; the same listing, with the
# version each kept (`new_version`) or why an instrument stays inactive. Every call audited.

trajectories_router = APIRouter(tags=["trajectories"])

_TRAJECTORY_ERRORS: dict[int | str, dict[str, Any]] = {
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


async def _trajectories_denied(request: Request, who: Principal | None, code: int, detail: str) -> None:
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


Reader = Annotated[Principal, Depends(require_roles("lead", "ops", "admin", audit=_trajectories_denied))]
Admin = Annotated[Principal, Depends(require_roles("admin", audit=_trajectories_denied))]


@trajectories_router.get(
    "/v1/trajectories",
    response_model=Trajectories,
    summary="Each instrument's expected-trajectory model: active or inactive (episodes available vs n_min), "
    "version, fit time, coefficients",
    responses=_TRAJECTORY_ERRORS,
)
async def trajectories(request: Request, who: Reader, models: TrajectoriesDep) -> Trajectories:
    """The current model of ORS, PHQ-9 and GAD-7, or why the not-on-track rule is inactive for it."""
    await _audited(request, action="trajectories", who=who, outcome="ok", code=200)
    return Trajectories(refit_interval_s=models.refit_s, items=[_view(s) for s in models.status()])


@trajectories_router.post(
    "/v1/admin/trajectories/refit",
    response_model=Trajectories,
    summary="Refit every instrument's model now on the closed episodes; the versions kept, or why not",
    responses=_TRAJECTORY_ERRORS,
)
async def refit(request: Request, who: Admin, models: TrajectoriesDep) -> Trajectories:
    """Fit ORS, PHQ-9 and GAD-7 now; each new version is kept and becomes current (measures scored
    from then on carry its band; measures scored before keep theirs)."""
    await _audited(request, action="trajectories_refit", who=who, outcome="ok", code=200)
    found = await models.refit()
    return Trajectories(refit_interval_s=models.refit_s, items=[_view(s, refit=True) for s in found])
