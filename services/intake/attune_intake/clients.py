"""The one door back from a pseudonym to a person (contract section 6), audited on every call.

`GET /v1/clients/{client_ref}?reason=...` answers a lead (for the clinics on its token) or an admin
with the client's MRN, clinic and episodes, so the lead can find the person in the EHR. The audit
row (who, which client, when, why) is written before anything is answered: when it cannot be
written, nothing is revealed. A client outside the caller's clinics is 404, like an unknown one,
so pseudonyms of other clinics do not leak. Admins list the audit with `attune audit list`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel

from attune_intake import metrics
from attune_intake.adapters.store import IntakeStore
from attune_shared.auth import Principal, require_roles
from attune_shared.http import NO_CONTROL_PATTERN
from attune_shared.ids import CLIENT_REF_PATTERN
from attune_shared.logging import get_logger

log = get_logger("attune_intake.clients")
router = APIRouter(tags=["re-identification"])

REASON_MIN, REASON_MAX = 5, 500


class EpisodeView(BaseModel):
    """One episode of care, as intake knows it."""

    episode_id: str
    opened_on: str
    status: str
    clinician_id: str | None = None
    closed_on: str | None = None
    close_reason: str | None = None


class ClientIdentity(BaseModel):
    """Who a client_ref is: PHI, answered only here and only after the call is audited."""

    client_ref: str
    clinic_id: str
    mrn: str | None
    episodes: list[EpisodeView]
    audit_id: str


class ReidentificationAudit(BaseModel):
    """One audited call of the re-identification door."""

    audit_id: str
    at: datetime
    who: str
    role: str
    client_ref: str
    clinic_id: str | None = None
    reason: str
    outcome: str


class ReidentificationAuditPage(BaseModel):
    """Audit rows, newest first."""

    items: list[ReidentificationAudit]


def _store(request: Request) -> IntakeStore:
    store: IntakeStore = request.app.state.service.extras["store"]
    return store


ClientRefPath = Annotated[str, Path(pattern=CLIENT_REF_PATTERN, description="the client's pseudonym")]
Reason = Annotated[
    str,
    Query(
        min_length=REASON_MIN,
        max_length=REASON_MAX,
        # At least REASON_MIN characters that are not white space: a blank reason says nothing.
        pattern=rf"\S(?:\s*\S){{{REASON_MIN - 1}}}",
        description="why the caller needs to know who this is, kept in the audit",
    ),
]


@router.get(
    "/v1/clients/{client_ref}",
    response_model=ClientIdentity,
    summary="Who a client_ref is (MRN, clinic, episodes); every call audited",
    responses={
        401: {"description": "no valid bearer token"},
        403: {"description": "the token's role may not re-identify clients"},
        404: {"description": "no such client in the caller's clinics"},
        422: {"description": "a malformed client_ref or a missing or empty reason"},
        503: {"description": "the audit could not be written, so nothing is revealed"},
    },
)
async def reidentify(
    request: Request,
    client_ref: ClientRefPath,
    reason: Reason,
    caller: Principal = Depends(require_roles("lead", "admin")),
) -> ClientIdentity:
    """The client's MRN, clinic and episodes, for a lead of that clinic or an admin."""
    why = reason.strip()
    store = _store(request)
    state = await store.client(client_ref=client_ref)
    visible = state is not None and caller.covers_clinic(state.clinic_id)
    entry: dict[str, Any] = {
        "_id": str(uuid.uuid4()),
        "at": datetime.now(UTC),
        "who": caller.name,
        "role": caller.role,
        "client_ref": client_ref,
        "clinic_id": state.clinic_id if visible and state is not None else None,
        "reason": why,
        "outcome": "ok" if visible else "not_found",
    }
    try:
        await store.audit_reidentification(entry=entry)
    except Exception:
        log.exception("reidentification_audit_failed", who=caller.name, client_ref=client_ref)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "the audit could not be written; nothing is revealed"
        ) from None
    metrics.REIDENTIFICATIONS.labels(entry["outcome"]).inc()
    log.info(
        "client_reidentified" if visible else "client_reidentification_refused",
        who=caller.name,
        role=caller.role,
        client_ref=client_ref,
        audit_id=entry["_id"],
    )
    if not visible or state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such client")
    return ClientIdentity(
        client_ref=state.client_ref,
        clinic_id=state.clinic_id,
        mrn=state.mrn,
        episodes=[
            EpisodeView(
                episode_id=e.episode_id,
                opened_on=e.opened_on.isoformat(),
                status=e.status,
                clinician_id=e.clinician_id,
                closed_on=e.closed_on.isoformat() if e.closed_on else None,
                close_reason=e.close_reason,
            )
            for e in state.episodes
        ],
        audit_id=entry["_id"],
    )


@router.get(
    "/v1/admin/reidentifications",
    response_model=ReidentificationAuditPage,
    summary="The audit of the re-identification door, newest first (admin)",
    responses={
        401: {"description": "no valid bearer token"},
        403: {"description": "only the admin role reads this audit"},
    },
)
async def list_reidentifications(
    request: Request,
    client_ref: Annotated[str | None, Query(pattern=CLIENT_REF_PATTERN)] = None,
    who: Annotated[str | None, Query(min_length=1, max_length=200, pattern=NO_CONTROL_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    caller: Principal = Depends(require_roles("admin")),
) -> ReidentificationAuditPage:
    """Who looked up which client, when and why."""
    docs = await _store(request).list_reidentifications(client_ref=client_ref, who=who, limit=limit)
    log.info("reidentifications_listed", caller=caller.name, returned=len(docs))
    return ReidentificationAuditPage(
        items=[
            ReidentificationAudit(
                audit_id=d["_id"],
                at=d["at"],
                who=d["who"],
                role=d["role"],
                client_ref=d["client_ref"],
                clinic_id=d.get("clinic_id"),
                reason=d["reason"],
                outcome=d["outcome"],
            )
            for d in docs
        ]
    )
