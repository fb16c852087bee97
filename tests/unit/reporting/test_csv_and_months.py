"""Reporting's CSV never carries a live spreadsheet formula, and a bad month names what the client sent."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from attune_reporting.api import router
from attune_reporting.deps import report_settings, report_source
from attune_reporting.domain.render import csv_value, to_csv
from attune_reporting.settings import ReportingSettings
from attune_shared.auth import TokenStore
from attune_shared.settings import DEV_TOKENS_FILE
from tests.support.fakes import MemoryReports

ADMIN = {"Authorization": "Bearer dev-admin"}


@pytest.mark.parametrize(
    "text",
    ['=HYPERLINK("http://e.x/a","x")', "+1+2", "-2+3", "@SUM(A1)", "\tx", "\r=1"],
)
def test_a_cell_starting_like_a_formula_is_neutralised(text: str) -> None:
    assert csv_value(text) == "'" + text
    [line] = list(csv.reader(io.StringIO(to_csv(["clinician_id"], [{"clinician_id": text}]))))[1:]
    assert line == ["'" + text]


def test_numbers_and_plain_text_are_left_alone() -> None:
    assert csv_value(-0.25) == "-0.25" and csv_value(-3) == "-3" and csv_value(0.8) == "0.8"
    assert csv_value("c-17") == "c-17" and csv_value(None) == "" and csv_value(True) == "true"
    assert csv_value(["=x", "y"]) == "'=x;y" and csv_value(["a", "=b"]) == "a;=b"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(router)
    app.state.tokens = TokenStore.load(DEV_TOKENS_FILE)
    settings = ReportingSettings()
    app.dependency_overrides[report_source] = lambda: MemoryReports([])
    app.dependency_overrides[report_settings] = lambda: settings
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as c:
        yield c


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"to": "0000-01"}, "0000-01"),
        ({"from": "0000-12"}, "0000-12"),
        ({"from": "0000-01", "to": "0000-06"}, "0000-01"),
    ],
)
async def test_year_zero_is_out_of_range_and_the_error_names_the_value_sent(
    client: httpx.AsyncClient, params: dict[str, str], named: str
) -> None:
    for path in ("/v1/reports/network", "/v1/reports/clinics/north-01"):
        r = await client.get(path, params=params, headers=ADMIN)
        assert r.status_code == 400, r.text
        detail = r.json()["detail"]
        assert named in detail and "out of range" in detail
        assert "-001" not in detail


async def test_a_range_near_year_one_starts_at_year_one(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/reports/network", params={"to": "0001-03"}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert (r.json()["from"], r.json()["to"]) == ("0001-01", "0001-03")
