"""The alerts API (contract section 7): list, read, acknowledge, resolve; every call audited.

Roles: `lead` sees the clinics on its token, `admin` all; any other role 403, no or bad token 401.
A single alert outside the caller's clinics is 404, never 403, so alert ids do not leak.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from attune_alerts.deps import LedgerDep, StoreDep, deps_of
from attune_alerts.domain.escalation import EscalationView, next_escalation_at
from attune_alerts.domain.lifecycle import (
    MAX_NOTE_CHARS,
    InvalidTransition,
    StoredAlert,
    acknowledged,
    now_ms,
    resolved_by_person,
)
from attune_alerts.domain.rules import on_person_resolved
from attune_alerts.ledger import AlertLedger, AlertNotFound
from attune_alerts.paging import InvalidCursor, after_cursor, encode_cursor
from attune_alerts.ports import Episodes
from attune_shared.auth import Principal, require_roles
from attune_shared.events import Alert, AlertStatus, Severity, nul_escaped
from attune_shared.http import NO_CONTROL_PATTERN, no_surrogates
from attune_shared.logging import get_logger
from attune_shared.mongo import ConcurrentUpdate

log = get_logger("attune_alerts.api")
router = APIRouter(prefix="/v1/alerts", tags=["alerts"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no valid bearer token"},
    403: {"description": "the token's role may not use the alerts API (or, listing, the clinic asked for)"},
}
NoteText = Annotated[str, AfterValidator(no_surrogates), Field(max_length=MAX_NOTE_CHARS)]


class Note(BaseModel):
    """A person's note on an alert (kept for the clinic's leads; never published)."""

    action: str
    by: str
    at: datetime
    note: str


class AlertView(Alert):
    """An alert as the API shows it: the event's fields and when its next escalation falls due."""

    escalation_due_at: datetime | None = Field(
        default=None,
        description="when the alert escalates unless acknowledged, under its clinic's SLA for its "
        "severity (level n at raised_at + n x SLA); null once acknowledged or resolved",
    )


class AlertDetail(AlertView):
    """An alert with the notes people added to it."""

    notes: list[Note] = []


class AlertPage(BaseModel):
    """One page of alerts, newest first; pass `next_cursor` as `cursor` for the next page."""

    items: list[AlertView]
    next_cursor: str | None = None


class AcknowledgeBody(BaseModel):
    """`POST /v1/alerts/{alert_id}/acknowledge`."""

    model_config = ConfigDict(extra="forbid")
    note: NoteText | None = None


class ResolveBody(BaseModel):
    """`POST /v1/alerts/{alert_id}/resolve`."""

    model_config = ConfigDict(extra="forbid")
    resolution: Literal["addressed", "false_positive"]
    note: NoteText | None = None


async def _audit(
    request: Request,
    *,
    action: str,
    who: Principal | None,
    outcome: str,
    code: int,
    alert_id: str | None = None,
    query: dict[str, Any] | None = None,
    **extra: Any,
) -> None:
    await deps_of(request).store.audit(
        entry={
            "_id": str(uuid.uuid4()),
            "at": now_ms(),
            "who": who.name if who else None,
            "role": who.role if who else None,
            "action": action,
            "alert_id": None if alert_id is None else nul_escaped(alert_id),
            "query": query,
            "outcome": outcome,
            "status": code,
            **extra,
        }
    )


async def _fail(request: Request, code: int, detail: str, **audit: Any) -> HTTPException:
    outcome = {400: "invalid", 401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict"}
    await _audit(request, outcome=outcome.get(code, "error"), code=code, **audit)
    headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
    return HTTPException(code, detail, headers=headers)


async def _denied(request: Request, who: Principal | None, code: int, detail: str) -> None:
    """Audit a call the HTTP guard refused (401/403) before any validation: the action and target are
    read from the raw path and query, cut short, since nothing about them has been checked."""
    rest = request.url.path.removeprefix(router.prefix).strip("/")
    parts = rest.split("/") if rest else []
    target: dict[str, Any] = {}
    if not parts:
        action = "list"
        target["query"] = {
            nul_escaped(k[:64]): nul_escaped(v[:200]) for k, v in list(request.query_params.items())[:20]
        }
    elif len(parts) == 1:
        action, target["alert_id"] = "get", nul_escaped(parts[0][:200])
    elif len(parts) == 2 and parts[1] in ("acknowledge", "resolve"):
        action, target["alert_id"] = parts[1], nul_escaped(parts[0][:200])
    else:
        action = "unknown"
    outcome = "unauthorized" if code == 401 else "forbidden"
    await _audit(request, action=action, who=who, outcome=outcome, code=code, **target)


# Authenticated and authorised by the HTTP guard before any validation; a refusal is audited by _denied.
Caller = Annotated[Principal, Depends(require_roles("lead", "admin", audit=_denied))]


def _due(request: Request, alert: Alert) -> datetime | None:
    thresholds = deps_of(request).thresholds
    view = EscalationView(
        severity=alert.severity,
        status=alert.status,
        raised_at=alert.raised_at,
        escalation_level=alert.escalation_level,
        acknowledged=alert.acknowledged_at is not None,
    )
    return next_escalation_at(view, thresholds.for_clinic(alert.clinic_id))


def _view(request: Request, s: StoredAlert) -> AlertView:
    return AlertView.model_validate({**s.alert.model_dump(), "escalation_due_at": _due(request, s.alert)})


def _detail(request: Request, s: StoredAlert) -> AlertDetail:
    return AlertDetail.model_validate(
        {
            **s.alert.model_dump(),
            "escalation_due_at": _due(request, s.alert),
            "notes": [dict(n) for n in s.notes],
        }
    )


@router.get(
    "",
    response_model=AlertPage,
    summary="List alerts, newest first",
    responses={**_ERRORS, 400: {"description": "a cursor this API did not give out"}},
)
async def list_alerts(
    request: Request,
    who: Caller,
    store: StoreDep,
    clinic_id: str | None = Query(default=None, max_length=64, pattern=NO_CONTROL_PATTERN),
    status_: AlertStatus | None = Query(default=None, alias="status"),
    severity: Severity | None = None,
    rule_id: str | None = Query(default=None, max_length=64, pattern=NO_CONTROL_PATTERN),
    clinician_id: str | None = Query(default=None, max_length=64, pattern=NO_CONTROL_PATTERN),
    limit: int = Query(default=50, ge=1, le=200),
    cursor: str | None = Query(default=None, max_length=500),
) -> AlertPage:
    """Alerts of the caller's clinics (or of `clinic_id`), filtered (e.g. one clinician's), in pages."""
    asked = {
        "clinic_id": clinic_id,
        "status": status_,
        "severity": severity,
        "rule_id": rule_id,
        "clinician_id": clinician_id,
    }
    query: dict[str, Any] = {k: v for k, v in asked.items() if v is not None} | {"limit": limit}
    if cursor:
        query["cursor"] = True
    if clinic_id and not who.covers_clinic(clinic_id):
        raise await _fail(
            request, 403, f"token does not cover clinic {clinic_id}", action="list", who=who, query=query
        )
    filt: dict[str, Any] = {k: v for k, v in asked.items() if v is not None}
    if not clinic_id and "*" not in who.clinics:
        filt["clinic_id"] = {"$in": sorted(who.clinics)}
    try:
        filt.update(after_cursor(cursor))
    except InvalidCursor as exc:
        raise await _fail(request, 400, str(exc), action="list", who=who, query=query) from None
    found = await store.list_alerts(query=filt, limit=limit + 1)
    page = found[:limit]
    nxt = encode_cursor(page[-1].alert.raised_at, page[-1].alert_id) if len(found) > limit else None
    await _audit(request, action="list", who=who, outcome="ok", code=200, query=query, returned=len(page))
    return AlertPage(items=[_view(request, s) for s in page], next_cursor=nxt)


async def _visible(request: Request, who: Principal, alert_id: str, action: str) -> StoredAlert:
    s = await deps_of(request).store.get_alert(alert_id=alert_id)
    if s is None or not who.covers_clinic(s.alert.clinic_id):
        raise await _fail(request, 404, "no such alert", action=action, who=who, alert_id=alert_id)
    return s


@router.get(
    "/{alert_id}",
    response_model=AlertDetail,
    summary="One alert (404 outside the caller's clinics)",
    responses={**_ERRORS, 404: {"description": "no such alert for this caller"}},
)
async def get_alert(request: Request, who: Caller, alert_id: str) -> AlertDetail:
    """One alert with its notes."""
    s = await _visible(request, who, alert_id, "get")
    await _audit(request, action="get", who=who, outcome="ok", code=200, alert_id=alert_id)
    return _detail(request, s)


async def _act(
    request: Request, ledger: AlertLedger, who: Principal, alert_id: str, action: str, change: Any
) -> StoredAlert:
    try:
        record = await ledger.apply(alert_id, cause=f"api:{uuid.uuid4()}", change=change)
    except InvalidTransition as exc:
        raise await _fail(request, 409, str(exc), action=action, who=who, alert_id=alert_id) from None
    except AlertNotFound:
        raise await _fail(request, 404, "no such alert", action=action, who=who, alert_id=alert_id) from None
    except ConcurrentUpdate:
        raise await _fail(
            request, 503, "the alert is busy; try again", action=action, who=who, alert_id=alert_id
        ) from None
    if record is None:  # pragma: no cover - person changes never decline silently
        raise await _fail(request, 409, "nothing to change", action=action, who=who, alert_id=alert_id)
    return record.stored


_ACT_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    404: {"description": "no such alert for this caller"},
    409: {"description": "the alert's status does not allow this"},
    503: {"description": "the alert is being changed by another call; try again"},
}


@router.post(
    "/{alert_id}/acknowledge",
    response_model=AlertDetail,
    summary="open -> acknowledged",
    responses=_ACT_ERRORS,
)
async def acknowledge(
    request: Request, who: Caller, ledger: LedgerDep, alert_id: str, body: AcknowledgeBody | None = None
) -> AlertDetail:
    """Acknowledge an open alert (stops its escalation)."""
    await _visible(request, who, alert_id, "acknowledge")
    note = body.note if body else None
    stored = await _act(
        request,
        ledger,
        who,
        alert_id,
        "acknowledge",
        lambda cur, at: (acknowledged(cur, by=who.name, at=at, note=note), "alert.acknowledged"),
    )
    await _audit(
        request, action="acknowledge", who=who, outcome="ok", code=200, alert_id=alert_id, note=bool(note)
    )
    return _detail(request, stored)


@router.post(
    "/{alert_id}/resolve",
    response_model=AlertDetail,
    summary="acknowledged -> resolved",
    responses=_ACT_ERRORS,
)
async def resolve(
    request: Request, who: Caller, store: StoreDep, ledger: LedgerDep, alert_id: str, body: ResolveBody
) -> AlertDetail:
    """Resolve an acknowledged alert as `addressed` or `false_positive`."""
    await _visible(request, who, alert_id, "resolve")
    stored = await _act(
        request,
        ledger,
        who,
        alert_id,
        "resolve",
        lambda cur, at: (
            resolved_by_person(cur, resolution=body.resolution, by=who.name, at=at, note=body.note),
            "alert.resolved",
        ),
    )
    await _audit(
        request,
        action="resolve",
        who=who,
        outcome="ok",
        code=200,
        alert_id=alert_id,
        resolution=body.resolution,
        note=bool(body.note),
    )
    if not await forget_in_episode(
        store, stored, clock=request.app.state.service.settings.attune_alerts_clock
    ):
        log.warning("episode_not_updated", alert_id=alert_id)  # the consumer heals it on the next batch
    return _detail(request, stored)


async def forget_in_episode(store: Episodes, s: StoredAlert, *, clock: str, attempts: int = 5) -> bool:
    """Tell the episode's rule state a person resolved the alert (version-checked, retried)."""
    a = s.alert
    for attempt in range(attempts):
        row = (await store.load_episodes(episode_ids=[a.episode_id])).get(a.episode_id)
        if row is None or row.open_alert_ids.get(a.rule_id) != a.alert_id:
            return True  # nothing to forget (or already forgotten)
        now = a.resolved_at or now_ms()
        if clock == "event":
            now = (await store.event_clocks(keys=[a.episode_id])).get(a.episode_id, now)
        row.state = on_person_resolved(row.state, a.rule_id, a.resolution or "addressed", now)
        del row.open_alert_ids[a.rule_id]
        try:
            await store.save_episodes(rows=[row])
            return True
        except ConcurrentUpdate:
            await asyncio.sleep(0.05 * 2**attempt)
    return False
