"""The report endpoints without I/O: roles (401/403), suppression for ops, CSV equal to JSON row for row."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from attune_reporting.api import router
from attune_reporting.deps import report_settings, report_source
from attune_reporting.domain.figures import COLUMN_NAMES
from attune_reporting.domain.ledger import Ledger
from attune_reporting.domain.render import csv_value
from attune_reporting.settings import ReportingSettings
from attune_shared.auth import TokenStore
from attune_shared.settings import DEV_TOKENS_FILE
from tests.support.fakes import MemoryReports
from tests.unit.reporting.scenario import N, S, build

RANGE = {"from": "2026-01", "to": "2026-02"}
OPS = {"Authorization": "Bearer dev-ops"}
LEAD_NORTH = {"Authorization": "Bearer dev-lead-north"}
LEAD_SOUTH = {"Authorization": "Bearer dev-lead-south"}
ADMIN = {"Authorization": "Bearer dev-admin"}
EHR = {"Authorization": "Bearer dev-ehr-north"}


@pytest.fixture(scope="module")
def app() -> FastAPI:
    ledger = Ledger()
    ledger.fold_all(build())
    source = MemoryReports(ledger.cells())
    settings = ReportingSettings(attune_min_cell_size=5)
    app = FastAPI()
    app.include_router(router)
    app.state.tokens = TokenStore.load(DEV_TOKENS_FILE)
    app.dependency_overrides[report_source] = lambda: source
    app.dependency_overrides[report_settings] = lambda: settings
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://reporting") as c:
        yield c


async def get(
    client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None, **params: str
) -> Any:
    return await client.get(path, params={**RANGE, **params}, headers=headers or {})


async def test_no_token_or_a_bad_token_is_401(client: httpx.AsyncClient) -> None:
    for path in (f"/v1/reports/clinics/{N}", "/v1/reports/network"):
        assert (await get(client, path)).status_code == 401
        assert (await get(client, path, {"Authorization": "Bearer nope"})).status_code == 401
        assert (await get(client, path, {"Authorization": "Basic dev-ops"})).status_code == 401


async def test_an_ehr_token_may_not_read_reports(client: httpx.AsyncClient) -> None:
    assert (await get(client, f"/v1/reports/clinics/{N}", EHR)).status_code == 403
    assert (await get(client, "/v1/reports/network", EHR)).status_code == 403


async def test_a_lead_of_one_clinic_gets_403_for_another(client: httpx.AsyncClient) -> None:
    assert (await get(client, f"/v1/reports/clinics/{S}", LEAD_NORTH)).status_code == 403
    assert (await get(client, f"/v1/reports/clinics/{N}", LEAD_SOUTH)).status_code == 403
    assert (await get(client, f"/v1/reports/clinics/{N}", LEAD_NORTH)).status_code == 200


async def test_ops_never_gets_clinician_rows(client: httpx.AsyncClient) -> None:
    assert (await get(client, f"/v1/reports/clinics/{N}", OPS, by="clinician")).status_code == 403
    for by in ("month", "modality"):
        body = (await get(client, f"/v1/reports/clinics/{N}", OPS, by=by)).json()
        assert all(r["clinician_id"] is None for r in body["rows"])
    for by in ("clinic", "modality", "month"):
        body = (await get(client, "/v1/reports/network", OPS, by=by)).json()
        assert all(r["clinician_id"] is None for r in body["rows"])


async def test_a_lead_sees_its_clinicians(client: httpx.AsyncClient) -> None:
    body = (await get(client, f"/v1/reports/clinics/{N}", LEAD_NORTH, by="clinician")).json()
    assert [r["clinician_id"] for r in body["rows"]] == ["c-1", "c-2", "unassigned", None]
    assert body["suppression"] == {"applied": False, "min_cell_size": None}
    assert not any(r["suppressed"] for r in body["rows"])


async def test_a_cell_from_four_clients_is_null_and_suppressed_for_ops_only(
    client: httpx.AsyncClient,
) -> None:
    # January at north-01: sessions of clients A, B, C and E only (4 < 5).
    ops = (await get(client, f"/v1/reports/clinics/{N}", OPS, by="month")).json()
    january = ops["rows"][0]
    assert january["month"] == "2026-01"
    assert january["sessions_attended"] is None and january["attendance_rate"] is None
    assert january["suppressed"] is True
    assert "sessions_attended" in january["suppressed_columns"]
    # February's sessions come from 5 clients (A B C D E), enough to show; but the total row shows the
    # period's 14 sessions, and 14 - 6 would give January's 8 away. So February is withheld too (the
    # complementary cell), while the total stays.
    february = ops["rows"][1]
    assert february["sessions_attended"] is None and "sessions_attended" in february["suppressed_columns"]
    assert ops["rows"][-1]["row_type"] == "total" and ops["rows"][-1]["sessions_attended"] == 14
    assert ops["suppression"] == {"applied": True, "min_cell_size": 5}
    lead = (await get(client, f"/v1/reports/clinics/{N}", LEAD_NORTH, by="month")).json()
    assert lead["rows"][0]["sessions_attended"] == 8
    assert lead["rows"][0]["attendance_rate"] == 0.8
    assert lead["rows"][0]["suppressed"] is False


async def test_ops_network_report_suppresses_the_one_client_clinic(client: httpx.AsyncClient) -> None:
    rows = (await get(client, "/v1/reports/network", OPS)).json()["rows"]
    south = next(r for r in rows if r["clinic_id"] == S)
    assert south["sessions_attended"] is None and south["active_clients"] is None and south["suppressed"]
    admin = (await get(client, "/v1/reports/network", ADMIN)).json()["rows"]
    assert next(r for r in admin if r["clinic_id"] == S)["sessions_attended"] == 1


async def test_a_lead_network_report_is_restricted_to_its_clinics(client: httpx.AsyncClient) -> None:
    body = (await get(client, "/v1/reports/network", LEAD_SOUTH)).json()
    assert body["clinics"] == [S]
    assert [r["clinic_id"] for r in body["rows"]] == [S, None]
    assert body["rows"][-1]["sessions_attended"] == 1


def recoverable(rows: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """Withheld counts that subtraction gives away: (row label, column, value) for every additive
    column where exactly one row is null and the total and every other row are shown."""
    *parts, whole = rows
    assert whole["row_type"] == "total"
    leaks = []
    for column in COLUMN_NAMES:
        if not column.startswith(("sessions_", "episodes_", "ruptures_", "alerts_raised")):
            continue  # additive counts only (rates and means need more arithmetic, the same way)
        hidden = [r for r in parts if r[column] is None and column in r["suppressed_columns"]]
        others = [r for r in parts if r not in hidden]
        if len(hidden) == 1 and whole[column] is not None and all(r[column] is not None for r in others):
            label = str(hidden[0]["month"] or hidden[0]["clinic_id"] or hidden[0]["modality"])
            leaks.append((label, column, whole[column] - sum(r[column] for r in others)))
    return leaks


@pytest.mark.parametrize(
    ("path", "by"),
    [
        (f"/v1/reports/clinics/{N}", "month"),
        (f"/v1/reports/clinics/{N}", "modality"),
        (f"/v1/reports/clinics/{S}", "month"),
        ("/v1/reports/network", "clinic"),
        ("/v1/reports/network", "month"),
        ("/v1/reports/network", "modality"),
    ],
)
async def test_no_withheld_cell_can_be_recovered_by_subtracting_from_the_total(
    client: httpx.AsyncClient, path: str, by: str
) -> None:
    # Before complementary suppression this found January's 8 sessions at north-01 (14 - 6) and the
    # one-client clinic's figures in the network report (network total - north).
    for range_ in (RANGE, {"from": "2026-01", "to": "2026-01"}, {"from": "2025-12", "to": "2026-03"}):
        body = (await client.get(path, params={**range_, "by": by}, headers=OPS)).json()
        assert body["suppression"]["applied"] is True
        assert recoverable(body["rows"]) == []


@pytest.mark.parametrize(
    ("path", "headers", "by"),
    [
        (f"/v1/reports/clinics/{N}", LEAD_NORTH, "clinician"),
        (f"/v1/reports/clinics/{N}", OPS, "month"),
        (f"/v1/reports/clinics/{N}", ADMIN, "modality"),
        ("/v1/reports/network", OPS, "clinic"),
        ("/v1/reports/network", ADMIN, "month"),
    ],
)
async def test_csv_and_json_agree_row_for_row(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], by: str
) -> None:
    body = (await get(client, path, headers, by=by)).json()
    by_param = await get(client, path, headers, by=by, format="csv")
    by_accept = await get(client, path, {**headers, "Accept": "text/csv"}, by=by)
    assert by_param.text == by_accept.text
    assert by_param.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(by_param.text)))
    assert lines[0] == list(COLUMN_NAMES) == body["columns"]
    assert len(lines) - 1 == len(body["rows"])
    for line, row in zip(lines[1:], body["rows"], strict=True):
        assert list(row) == list(COLUMN_NAMES)
        assert line == [csv_value(row[c]) for c in COLUMN_NAMES]


async def test_month_parameters_are_checked(client: httpx.AsyncClient) -> None:
    assert (await get(client, f"/v1/reports/clinics/{N}", ADMIN, **{"from": "2026-13"})).status_code == 422
    assert (
        await get(client, f"/v1/reports/clinics/{N}", ADMIN, **{"from": "2026-03", "to": "2026-01"})
    ).status_code == 400
    assert (await get(client, f"/v1/reports/clinics/{N}", ADMIN, by="clinic")).status_code == 422
    assert (await get(client, "/v1/reports/network", ADMIN, by="clinician")).status_code == 422
    wide = await get(client, f"/v1/reports/clinics/{N}", ADMIN, **{"from": "2000-01", "to": "2026-01"})
    assert wide.status_code == 400  # over ATTUNE_REPORTING_MAX_MONTHS


async def test_the_range_defaults_to_the_last_twelve_months(client: httpx.AsyncClient) -> None:
    body = (await client.get(f"/v1/reports/clinics/{N}", headers=ADMIN)).json()
    months = [r["month"] for r in body["rows"][:-1]]
    assert len(months) == 12 and months == sorted(months)
    assert (body["from"], body["to"]) == (months[0], months[-1])
