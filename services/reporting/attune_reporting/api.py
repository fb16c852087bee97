"""reporting's HTTP API: the clinic and network reports, as JSON or CSV, from the materialized read model.

Roles: `lead` (the clinics on its token) and `admin` see every breakdown; `ops` sees no per-clinician
breakdown and its small cells are suppressed (domain/access.py says who sees what).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse, Response

from attune_reporting import metrics
from attune_reporting.deps import Settings, Source
from attune_reporting.domain import equity
from attune_reporting.domain.access import Audience, Forbidden, clinic_audience, network_audience
from attune_reporting.domain.figures import COLUMN_NAMES
from attune_reporting.domain.months import (
    MONTH_PATTERN,
    BadMonth,
    month_of,
    month_range,
    parse_month,
    shift,
)
from attune_reporting.domain.render import to_csv
from attune_reporting.domain.report import clinic_rows, network_rows
from attune_reporting.settings import ReportingSettings
from attune_shared.auth import Principal, require_roles

CLINIC_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"

Caller = Annotated[Principal, Depends(require_roles("lead", "ops", "admin"))]
FromMonth = Annotated[
    str | None, Query(alias="from", pattern=MONTH_PATTERN, description="first month, YYYY-MM")
]
ToMonth = Annotated[str | None, Query(pattern=MONTH_PATTERN, description="last month, YYYY-MM")]
Format = Annotated[Literal["json", "csv"] | None, Query(description="csv, or send Accept: text/csv")]

router = APIRouter(prefix="/v1/reports", tags=["reports"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the report: JSON, or CSV with `format=csv` or `Accept: text/csv`",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    },
    400: {"description": "bad month range"},
    401: {"description": "no valid token"},
    403: {"description": "role or clinic not covered (ops: no by=clinician)"},
}


FIRST_MONTH = "0001-01"  # year 0000 is out of range (no calendar has it; shifting back from it goes negative)


def _months(first: str | None, last: str | None, settings: ReportingSettings) -> list[str]:
    for name, sent in (("from", first), ("to", last)):
        if sent is not None and sent < FIRST_MONTH:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, f"{name}={sent}: year {sent[:4]} is out of range (0001-9999)"
            )
    span = settings.attune_reporting_default_months - 1
    current = month_of(datetime.now(UTC))
    if last is None:
        last = max(current, first) if first else current
    if first is None:
        # A range the client did not bound starts at most `span` months back, and never before year 1.
        back = parse_month(last)[0] * 12 + parse_month(last)[1] - 1 - span
        first = shift(last, -span) if back >= 12 else FIRST_MONTH
    try:
        return month_range(first, last, limit=settings.attune_reporting_max_months)
    except BadMonth as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None


def _answer(
    request: Request,
    fmt: str | None,
    meta: dict[str, Any],
    rows: list[dict[str, Any]],
    filename: str,
    columns: Sequence[str] = COLUMN_NAMES,
) -> Response:
    wants_csv = fmt == "csv" or (fmt is None and "text/csv" in request.headers.get("accept", ""))
    if wants_csv:
        return Response(
            to_csv(columns, rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
        )
    return JSONResponse({**meta, "columns": list(columns), "rows": rows})


def _meta(audience: Audience, months: list[str], by: str, caller: Principal) -> dict[str, Any]:
    return {
        "from": months[0],
        "to": months[-1],
        "by": by,
        "role": caller.role,
        "suppression": {
            "applied": audience.suppress_below is not None,
            "min_cell_size": audience.suppress_below,
        },
    }


@router.get(
    "/clinics/{clinic_id}", summary="One clinic's report by month, clinician or modality", responses=_ERRORS
)
async def clinic_report(
    request: Request,
    caller: Caller,
    source: Source,
    settings: Settings,
    clinic_id: Annotated[str, Path(pattern=CLINIC_PATTERN)],
    from_: FromMonth = None,
    to: ToMonth = None,
    by: Literal["month", "clinician", "modality"] = "month",
    format: Format = None,
) -> Response:
    """Rows per month, clinician (lead and admin only) or modality, then a total row."""
    started = time.monotonic()
    try:
        audience = clinic_audience(caller.role, caller.clinics, clinic_id, by, settings.attune_min_cell_size)
    except Forbidden as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    months = _months(from_, to, settings)
    cells = await source.clinic_cells(clinic_id, months)
    rows = clinic_rows(cells, clinic_id=clinic_id, months=months, by=by, audience=audience)
    meta = {"report": "clinic", "clinic_id": clinic_id, **_meta(audience, months, by, caller)}
    response = _answer(request, format, meta, rows, f"report-{clinic_id}-{months[0]}-{months[-1]}-{by}")
    metrics.REPORT_SECONDS.labels("clinic").observe(time.monotonic() - started)
    return response


@router.get("/network", summary="The network report by clinic, modality or month", responses=_ERRORS)
async def network_report(
    request: Request,
    caller: Caller,
    source: Source,
    settings: Settings,
    from_: FromMonth = None,
    to: ToMonth = None,
    by: Literal["clinic", "modality", "month"] = "clinic",
    format: Format = None,
) -> Response:
    """Rows per clinic, modality or month, then a total row; a lead's report covers its own clinics."""
    started = time.monotonic()
    try:
        audience = network_audience(caller.role, caller.clinics, settings.attune_min_cell_size)
    except Forbidden as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    months = _months(from_, to, settings)
    cells = await source.network_cells(months)
    rows = network_rows(cells, months=months, by=by, audience=audience)
    scope = sorted(audience.clinics) if audience.clinics is not None else "*"
    meta = {"report": "network", "clinics": scope, **_meta(audience, months, by, caller)}
    response = _answer(request, format, meta, rows, f"report-network-{months[0]}-{months[-1]}-{by}")
    metrics.REPORT_SECONDS.labels("network").observe(time.monotonic() - started)
    return response


@router.get(
    "/equity",
    summary="The equity view: headline figures by language, interpreter need, age band or modality",
    responses=_ERRORS,
)
async def equity_report(
    request: Request,
    caller: Caller,
    source: Source,
    settings: Settings,
    from_: FromMonth = None,
    to: ToMonth = None,
    by: Literal["language", "interpreter", "age_band", "modality"] = "language",
    clinic_id: Annotated[
        str | None, Query(pattern=CLINIC_PATTERN, description="one clinic; the network without it")
    ] = None,
    format: Format = None,
) -> Response:
    """One row per stratum of `by` (`unknown` included), then a total row, with 95% intervals (Wilson
    for rates, t for means); one clinic's with `clinic_id` (a lead: its own clinics only), else the
    network's (a lead's covers its own clinics). For ops, small cells and their intervals are
    withheld, complementary cells too, and rare languages are pooled as `other` (docs/equity.md)."""
    started = time.monotonic()
    min_cell = settings.attune_min_cell_size
    try:
        if clinic_id is not None:
            audience = clinic_audience(caller.role, caller.clinics, clinic_id, "equity", min_cell)
        else:
            audience = network_audience(caller.role, caller.clinics, min_cell)
    except Forbidden as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    months = _months(from_, to, settings)
    if clinic_id is not None:
        cells = await source.clinic_cells(clinic_id, months)
        where: dict[str, Any] = {"clinic_id": clinic_id}
    else:
        cells = await source.network_cells(months)
        where = {"clinics": sorted(audience.clinics) if audience.clinics is not None else "*"}
    rows = equity.equity_rows(cells, months=months, by=by, audience=audience, clinic_id=clinic_id)
    meta = {
        "report": "equity",
        **where,
        **_meta(audience, months, by, caller),
        "intervals": {"level": 0.95, "rates": "wilson", "means": "t"},
    }
    name = f"equity-{clinic_id or 'network'}-{months[0]}-{months[-1]}-{by}"
    response = _answer(request, format, meta, rows, name, equity.COLUMN_NAMES)
    metrics.REPORT_SECONDS.labels("equity").observe(time.monotonic() - started)
    return response
