"""The console's equity page: figures with their intervals, suppressed cells read "suppressed"
(never a number, never an interval), an accessible table, the CSV link, the roles it is for."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from attune_console.app import create_app
from attune_console.equity import figure, label
from attune_console.settings import ConsoleSettings
from attune_console.signin import TokenAuthenticator
from attune_console.upstream import Upstream
from attune_shared.auth import TokenStore
from attune_shared.settings import DEV_TOKENS_FILE

ROW = {
    "row_type": "row",
    "value": "pt",
    "attendance_rate": 0.75,
    "attendance_rate_low": 0.3006,
    "attendance_rate_high": 0.9544,
    "wai_sr_mean": 4.0,
    "wai_sr_mean_low": None,  # one response: a mean, no interval
    "wai_sr_mean_high": None,
    "srs_total_mean": None,
    "srs_total_mean_low": None,
    "srs_total_mean_high": None,
    "repair_rate": None,
    "repair_rate_low": None,
    "repair_rate_high": None,
    "sessions_attended": 3,
    "suppressed": True,
    "suppressed_columns": ["repair_rate", "repair_rate_low", "repair_rate_high"],
}


def test_a_figure_reads_with_its_interval_and_a_suppressed_one_with_neither() -> None:
    shown = figure(ROW, "attendance_rate", "share")
    assert (shown.text, shown.interval, shown.suppressed) == ("75%", "30% to 95%", False)
    mean = figure(ROW, "wai_sr_mean", "mean")
    assert (mean.text, mean.interval) == ("4.00", "")
    withheld = figure(ROW, "repair_rate", "share")
    assert (withheld.text, withheld.interval, withheld.suppressed) == ("suppressed", "", True)
    assert figure(ROW, "srs_total_mean", "mean").text == "no data"
    assert figure(ROW, "sessions_attended", "count").text == "3"


def test_strata_read_as_people_write_them() -> None:
    assert [label(v) for v in ("pt", "unknown", "other", "yes", "video", "65+", None)] == [
        "pt",
        "Unknown",
        "Other languages",
        "Yes",
        "Telehealth (video)",
        "65+",
        "All",
    ]


ANSWER: dict[str, Any] = {
    "report": "equity",
    "clinics": "*",
    "from": "2026-01",
    "to": "2026-02",
    "by": "language",
    "role": "ops",
    "suppression": {"applied": True, "min_cell_size": 5},
    "intervals": {"level": 0.95, "rates": "wilson", "means": "t"},
    "rows": [
        ROW,
        {
            "row_type": "total",
            "value": None,
            "attendance_rate": 0.7368,
            "attendance_rate_low": 0.5121,
            "attendance_rate_high": 0.8819,
            "sessions_attended": 14,
            "suppressed": False,
            "suppressed_columns": [],
        },
    ],
}


@pytest.fixture
def calls() -> list[httpx.Request]:
    return []


@pytest.fixture
def client(calls: list[httpx.Request]) -> Iterator[TestClient]:
    def reporting(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if request.url.params.get("format") == "csv":
            return httpx.Response(
                200, text="row_type,value\r\nrow,pt\r\n", headers={"content-type": "text/csv"}
            )
        return httpx.Response(200, json=ANSWER)

    settings = ConsoleSettings()
    upstream = Upstream(settings, client=httpx.AsyncClient(transport=httpx.MockTransport(reporting)))
    app = create_app(
        settings, upstream=upstream, authenticator=TokenAuthenticator(TokenStore.load(DEV_TOKENS_FILE))
    )
    with TestClient(app, base_url="http://console") as c:
        yield c


def sign_in(client: TestClient, token: str) -> None:
    form = client.get("/sign-in").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    answer = client.post("/sign-in", data={"csrf": csrf.group(1), "token": token}, follow_redirects=False)
    assert answer.status_code == 303


def test_ops_sees_the_table_with_intervals_suppressed_cells_and_a_csv_link(
    client: TestClient, calls: list[httpx.Request]
) -> None:
    sign_in(client, "dev-ops")
    page = client.get("/equity", params={"by": "language", "from": "2026-01", "to": "2026-02"})
    assert page.status_code == 200
    html = page.text
    assert calls[-1].url.path == "/v1/reports/equity"
    assert dict(calls[-1].url.params) == {"by": "language", "from": "2026-01", "to": "2026-02"}
    assert calls[-1].headers["authorization"] == "Bearer dev-ops"  # the person's own token
    assert '<a href="/equity" aria-current="page">Equity view</a>' in html
    assert "<caption>Preferred language: headline figures with 95% intervals" in html
    assert '<th scope="col">pt</th>' in html and '<th scope="col">All</th>' in html
    assert '<th scope="row">Attendance</th>' in html
    assert "75%<br>" in html and "30% to 95%" in html and "51% to 88%" in html
    repair = re.search(r'<th scope="row">Rupture repair rate</th><td>(.*?)</td>', html)
    assert repair is not None and ">suppressed</span>" in repair.group(1) and "%" not in repair.group(1)
    assert 'href="/equity.csv?by=language&amp;from=2026-01&amp;to=2026-02"' in html
    assert "cdn" not in html.lower() and '<script src="http' not in html
    csv = client.get("/equity.csv", params={"by": "language", "from": "2026-01", "to": "2026-02"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "attune-equity-network-by-language.csv" in csv.headers["content-disposition"]
    assert calls[-1].url.params["format"] == "csv"


def test_one_clinic_and_bad_parameters(client: TestClient, calls: list[httpx.Request]) -> None:
    sign_in(client, "dev-lead-north")
    assert client.get("/equity", params={"clinic": "north-01", "by": "age_band"}).status_code == 200
    assert dict(calls[-1].url.params) == {"by": "age_band", "clinic_id": "north-01"}
    before = len(calls)
    assert client.get("/equity", params={"by": "clinician"}).status_code == 404
    assert client.get("/equity", params={"clinic": "../alerts"}).status_code == 404
    assert client.get("/equity", params={"from": "2026-13"}).status_code == 400
    assert len(calls) == before  # refused before reporting is asked


def test_the_page_is_for_people_who_read_reports(client: TestClient) -> None:
    assert client.get("/equity", follow_redirects=False).status_code == 303  # sign in first
    sign_in(client, "dev-lead-north")
    assert 'href="/equity"' in client.get("/equity").text  # linked from the navigation
