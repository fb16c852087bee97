"""reporting's edges: the batch subscriber on the three input topics, and the report endpoints."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol

from aiokafka import ConsumerRecord, TopicPartition
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse, Response
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage

from attune_reporting import metrics
from attune_reporting.adapters.codec import decode_parts
from attune_reporting.adapters.pointer import ActiveDatabase
from attune_reporting.adapters.store import ConcurrentUpdate, LockLost
from attune_reporting.domain.access import Audience, Forbidden, clinic_audience, network_audience
from attune_reporting.domain.cells import Cell
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
from attune_reporting.pipeline import INPUT_TOPICS, Inbound, ReportingPipeline
from attune_reporting.settings import ReportingSettings
from attune_shared.auth import Principal, require_roles
from attune_shared.kafka import raw_body, retry_transient
from attune_shared.metrics import BATCH_DURATION, BATCH_SIZE, MESSAGES_CONSUMED
from attune_shared.runtime import Service

GROUP = "attune-reporting"
CLINIC_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


def register_consumer(service: Service) -> None:
    """One batch subscriber on care, measures and alerts; offsets commit only after process() returns."""
    settings = service.settings
    topics = [settings.topic(t) for t in INPUT_TOPICS]

    @service.broker.subscriber(
        *topics,
        group_id=settings.group(GROUP),
        batch=True,
        max_records=settings.attune_batch_max_records,
        batch_timeout_ms=settings.attune_batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=raw_body,
        title="reporting-inputs",
        description="Folds care events, scored measures and alert events into report facts.",
    )
    async def on_inputs(body: Any, message: KafkaMessage) -> None:
        raw: tuple[ConsumerRecord[Any, Any], ...] = message.raw_message
        batch = [Inbound(topic=r.topic, value=r.value, partition=r.partition, offset=r.offset) for r in raw]
        for topic in {r.topic for r in batch}:
            n = sum(1 for r in batch if r.topic == topic)
            MESSAGES_CONSUMED.labels(topic).inc(n)
            BATCH_SIZE.labels(topic).observe(n)
        started = time.monotonic()
        pipeline: ReportingPipeline = service.extras["pipeline"]
        behind = waiting(message.consumer, raw)
        await retry_transient(
            "reporting_batch",
            lambda: pipeline.process(batch, behind=behind),
            stopping=lambda: service.stopping,
            also=(ConcurrentUpdate, LockLost),
        )
        for topic in {r.topic for r in batch}:
            BATCH_DURATION.labels(topic).observe(time.monotonic() - started)


def waiting(consumer: Any, records: Sequence[ConsumerRecord[Any, Any]]) -> bool:
    """Whether more records wait on the partitions of this batch: the consumer's last known high
    watermark of any of them is past the batch's last offset (unknown counts as nothing waiting)."""
    last: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        last[tp] = max(last.get(tp, -1), r.offset)
    for tp, offset in last.items():
        try:
            mark = consumer.highwater(tp)
        except Exception:  # a partition revoked meanwhile, or a consumer that cannot tell
            continue
        if mark is not None and mark > offset + 1:
            return True
    return False


# ---------------------------------------------------------------------------------------- HTTP


class ReportSource(Protocol):
    """Where report endpoints read pre-aggregated cells from."""

    async def clinic_cells(self, clinic_id: str, months: Sequence[str]) -> list[Cell[Any]]:
        """A clinic's materialized cells in these months (all breakdowns)."""
        ...

    async def network_cells(self, months: Sequence[str]) -> list[Cell[Any]]:
        """Every clinic's cells in these months (no per-clinician breakdown)."""
        ...


class StoredReports:
    """Cells from the active data database's read model (never from facts)."""

    def __init__(self, active: ActiveDatabase) -> None:
        self.active = active

    async def clinic_cells(self, clinic_id: str, months: Sequence[str]) -> list[Cell[Any]]:
        store = await self.active.store()
        wanted = set(months)
        bodies = await store.clinic_bodies(clinic_id=clinic_id)
        return [Cell(clinic_id, month, decode_parts(body)) for month, body in bodies if month in wanted]

    async def network_cells(self, months: Sequence[str]) -> list[Cell[Any]]:
        store = await self.active.store()
        bodies = await store.network_bodies(first=months[0], last=months[-1])
        return [Cell(clinic_id, month, decode_parts(body)) for clinic_id, month, body in bodies]


def report_source(request: Request) -> ReportSource:
    """Dependency: the service's report source (tests override it)."""
    source: ReportSource = request.app.state.service.extras["reports"]
    return source


def report_settings(request: Request) -> ReportingSettings:
    """Dependency: the service's settings (tests override it)."""
    settings: ReportingSettings = request.app.state.service.settings
    return settings


Caller = Annotated[Principal, Depends(require_roles("lead", "ops", "admin"))]
Source = Annotated[ReportSource, Depends(report_source)]
Settings = Annotated[ReportingSettings, Depends(report_settings)]
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
    request: Request, fmt: str | None, meta: dict[str, Any], rows: list[dict[str, Any]], filename: str
) -> Response:
    wants_csv = fmt == "csv" or (fmt is None and "text/csv" in request.headers.get("accept", ""))
    if wants_csv:
        return Response(
            to_csv(COLUMN_NAMES, rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
        )
    return JSONResponse({**meta, "columns": list(COLUMN_NAMES), "rows": rows})


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
