"""The equity view: every figure of a built story by hand, its intervals against scipy, suppression
and pooling for ops, and the endpoint (roles, clinic scope, CSV equal to JSON)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from scipy import stats

from attune_reporting.api import router
from attune_reporting.deps import report_settings, report_source
from attune_reporting.domain.access import Audience
from attune_reporting.domain.cells import Cell
from attune_reporting.domain.equity import COLUMN_NAMES, FIGURE_COLUMNS, equity_rows
from attune_reporting.domain.intervals import t_interval, t_quantile, wilson
from attune_reporting.domain.ledger import Ledger
from attune_reporting.domain.render import csv_value
from attune_reporting.settings import ReportingSettings
from attune_shared.auth import TokenStore
from attune_shared.settings import DEV_TOKENS_FILE
from tests.support.fakes import MemoryReports
from tests.unit.reporting.equity_scenario import build_equity
from tests.unit.reporting.scenario import N, S

MONTHS = ["2026-01", "2026-02"]
ADMIN_AUDIENCE = Audience(None, None)
OPS_AUDIENCE = Audience(5, None)
RANGE = {"from": "2026-01", "to": "2026-02"}
OPS = {"Authorization": "Bearer dev-ops"}
LEAD_NORTH = {"Authorization": "Bearer dev-lead-north"}
LEAD_SOUTH = {"Authorization": "Bearer dev-lead-south"}
ADMIN = {"Authorization": "Bearer dev-admin"}
EHR = {"Authorization": "Bearer dev-ehr-north"}


@pytest.fixture(scope="module")
def cells() -> list[Cell[frozenset[str]]]:
    ledger = Ledger()
    ledger.fold_all(build_equity())
    return ledger.cells()


# ---------------------------------------------------------------- the figures, by hand


def _w(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return round(float(ci.low), 4) + 0.0, round(float(ci.high), 4) + 0.0


def _t(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=stats.sem(values))
    return round(float(low), 4), round(float(high), 4)


def expected(value: str | None, **figures: Any) -> dict[str, Any]:
    """A row of north-01's answer by language: zero counts, null rates, then `figures` given as
    counts, rates as (k, n) (rate and Wilson interval) and means as lists of the responses."""
    row: dict[str, Any] = {
        "row_type": "row" if value else "total",
        "clinic_id": N,
        "dimension": "language",
        "value": value,
        "period_from": "2026-01",
        "period_to": "2026-02",
        "suppressed": False,
        "suppressed_columns": [],
    }
    for col in FIGURE_COLUMNS:
        counting = not col.name.endswith(("_rate", "_low", "_high", "_mean"))
        row[col.name] = 0 if counting else None
    for name, given in figures.items():
        if isinstance(given, tuple):
            k, n = given
            row[name] = round(k / n, 4) + 0.0
            row[f"{name}_low"], row[f"{name}_high"] = _w(k, n)
        elif isinstance(given, list):
            row[name] = round(sum(given) / len(given), 4)
            if len(given) > 1:
                row[f"{name}_low"], row[f"{name}_high"] = _t(given)
        else:
            row[name] = given
    return row


# Closed in the period: A (planned; 3 attended; rupture al-2 unrepaired; PHQ-9 improved), B
# (unilateral; 2 attended; last session b4 a no-show; rupture al-1 repaired; ORS deteriorated),
# D (mutual; 3 attended; no outcome), E (other; 4 attended; last session e5 a no-show; GAD-7 no change).
EN = expected(  # B and C
    "en",
    sessions_attended=4,
    sessions_missed=2,
    attendance_rate=(4, 6),
    wai_sr_responses=1,
    wai_sr_mean=[2.5],
    srs_responses=1,
    srs_total_mean=[35.5],
    ruptures_raised=1,
    ruptures_repaired=1,
    repair_rate=(1, 1),
    episodes_closed=1,
    episodes_ruptured=1,
    rupture_rate=(1, 1),
    dropout_unilateral=1,
    dropout_unilateral_rate=(1, 1),
    dropout_last_missed=1,
    dropout_last_missed_rate=(1, 1),
    dropout_low_dose=1,
    dropout_low_dose_rate=(1, 1),
    outcome_measured=1,
    reliable_improvement_rate=(0, 1),
)
ES = expected(  # E: its second referral changed the language from pt to es
    "es",
    sessions_attended=4,
    sessions_missed=1,
    attendance_rate=(4, 5),
    episodes_closed=1,
    rupture_rate=(0, 1),
    dropout_unilateral_rate=(0, 1),
    dropout_last_missed=1,
    dropout_last_missed_rate=(1, 1),
    dropout_low_dose_rate=(0, 1),
    outcome_measured=1,
    reliable_improvement_rate=(0, 1),
)
PT = expected(  # A, referred only after its first session
    "pt",
    sessions_attended=3,
    sessions_missed=1,
    attendance_rate=(3, 4),
    wai_sr_responses=3,
    wai_sr_mean=[4.0, 3.5, 4.5],
    srs_responses=2,
    srs_total_mean=[38.0, 30.0],
    ruptures_raised=1,
    ruptures_unrepaired=1,
    repair_rate=(0, 1),
    episodes_closed=1,
    episodes_ruptured=1,
    rupture_rate=(1, 1),
    dropout_unilateral_rate=(0, 1),
    dropout_last_missed_rate=(0, 1),
    dropout_low_dose=1,
    dropout_low_dose_rate=(1, 1),
    outcome_measured=1,
    reliable_improvement=1,
    reliable_improvement_rate=(1, 1),
)
UNKNOWN = expected(  # D, never referred
    "unknown",
    sessions_attended=3,
    sessions_missed=1,
    attendance_rate=(3, 4),
    episodes_closed=1,
    rupture_rate=(0, 1),
    dropout_unilateral_rate=(0, 1),
    dropout_last_missed_rate=(0, 1),
    dropout_low_dose=1,
    dropout_low_dose_rate=(1, 1),
)
TOTAL = expected(
    None,
    sessions_attended=14,
    sessions_missed=5,
    attendance_rate=(14, 19),
    wai_sr_responses=4,
    wai_sr_mean=[4.0, 3.5, 4.5, 2.5],
    srs_responses=3,
    srs_total_mean=[38.0, 30.0, 35.5],
    ruptures_raised=2,
    ruptures_repaired=1,
    ruptures_unrepaired=1,
    repair_rate=(1, 2),
    episodes_closed=4,
    episodes_ruptured=2,
    rupture_rate=(2, 4),
    dropout_unilateral=1,
    dropout_unilateral_rate=(1, 4),
    dropout_last_missed=2,
    dropout_last_missed_rate=(2, 4),
    dropout_low_dose=3,
    dropout_low_dose_rate=(3, 4),
    outcome_measured=3,
    reliable_improvement=1,
    reliable_improvement_rate=(1, 3),
)


def test_north_by_language_figure_by_figure(cells: list[Cell[Any]]) -> None:
    rows = equity_rows(cells, months=MONTHS, by="language", audience=ADMIN_AUDIENCE, clinic_id=N)
    assert rows == [EN, ES, PT, UNKNOWN, TOTAL]
    assert list(rows[0]) == list(COLUMN_NAMES)


def _pick(rows: list[dict[str, Any]], *names: str) -> dict[str, tuple[Any, ...]]:
    return {r["value"]: tuple(r[n] for n in names) for r in rows}


def test_north_by_interpreter_age_band_and_modality(cells: list[Cell[Any]]) -> None:
    def rows(by: str) -> list[dict[str, Any]]:
        return equity_rows(cells, months=MONTHS, by=by, audience=ADMIN_AUDIENCE, clinic_id=N)

    names = ("sessions_attended", "sessions_missed", "wai_sr_responses", "episodes_closed", "ruptures_raised")
    # interpreter: A and E yes (E's from its first referral: the second sent none), B no, C and D unknown
    assert _pick(rows("interpreter"), *names) == {
        "yes": (7, 2, 3, 2, 1),
        "no": (2, 2, 1, 1, 1),
        "unknown": (5, 1, 0, 1, 0),
        None: (14, 5, 4, 4, 2),
    }
    # age band: B 18-25, A 26-40, E 65+, C and D unknown; empty bands are listed with zeros
    assert _pick(rows("age_band"), *names) == {
        "<18": (0, 0, 0, 0, 0),
        "18-25": (2, 2, 1, 1, 1),
        "26-40": (3, 1, 3, 1, 1),
        "41-64": (0, 0, 0, 0, 0),
        "65+": (4, 1, 0, 1, 0),
        "unknown": (5, 1, 0, 1, 0),
        None: (14, 5, 4, 4, 2),
    }
    # modality: sessions and responses by their own session's modality; closures and ruptures by the
    # episode's main modality (A, C, E video; B phone; D in_person)
    assert _pick(rows("modality"), *names, "dropout_unilateral") == {
        "in_person": (4, 2, 1, 1, 0, 0),  # a3, b1, d1-d4; wB1 at b1; D closed
        "video": (9, 1, 3, 2, 1, 0),  # a1 a2 a5 c1 c2 e1-e5; rA1 rA2 rA5; A and E; al-2
        "phone": (1, 2, 0, 1, 1, 1),  # b2 b3 b4; B (unilateral); al-1
        "unknown": (0, 0, 0, 0, 0, 0),
        None: (14, 5, 4, 4, 2, 1),
    }


def test_every_dimension_partitions_the_total(cells: list[Cell[Any]]) -> None:
    additive = [c.name for c in FIGURE_COLUMNS if not c.name.endswith(("_rate", "_low", "_high", "_mean"))]
    for clinic_id in (N, S, None):
        for by in ("language", "interpreter", "age_band", "modality"):
            *parts, whole = equity_rows(
                cells, months=MONTHS, by=by, audience=ADMIN_AUDIENCE, clinic_id=clinic_id
            )
            for name in additive:
                assert sum(r[name] for r in parts) == whole[name], (clinic_id, by, name)


def test_the_network_adds_south(cells: list[Cell[Any]]) -> None:
    rows = equity_rows(cells, months=MONTHS, by="language", audience=ADMIN_AUDIENCE)
    assert [r["value"] for r in rows] == ["en", "es", "pt", "unknown", None]
    assert rows[0]["clinic_id"] is None and rows[0]["sessions_attended"] == 5  # B, C and F's f1
    lead_south = equity_rows(cells, months=MONTHS, by="language", audience=Audience(None, frozenset({S})))
    assert _pick(lead_south, "sessions_attended") == {"en": (1,), "unknown": (0,), None: (1,)}


# ---------------------------------------------------------------- suppression for ops


def test_ops_pools_rare_languages_and_withholds_small_cells_with_their_intervals(
    cells: list[Cell[Any]],
) -> None:
    rows = equity_rows(cells, months=MONTHS, by="language", audience=OPS_AUDIENCE)
    # every language has fewer than 5 clients in every group: none is named, all are "other"
    assert [r["value"] for r in rows] == ["other", "unknown", None]
    other, unknown, whole = rows
    # unknown (D alone) is withheld; "other" (A B C E F: 5 session clients) would give it away by
    # subtraction from the total, so its session figures are withheld too (complementary cell)
    for row in (other, unknown):
        for name in ("sessions_attended", "attendance_rate", "attendance_rate_low", "attendance_rate_high"):
            assert row[name] is None and name in row["suppressed_columns"]
    assert whole["sessions_attended"] == 15 and whole["attendance_rate_low"] is not None
    # groups from 1..4 clients are withheld with their intervals everywhere
    assert whole["wai_sr_mean"] is None and "wai_sr_mean_low" in whole["suppressed_columns"]


def test_a_lead_sees_its_clinic_unsuppressed_and_languages_named(cells: list[Cell[Any]]) -> None:
    rows = equity_rows(cells, months=MONTHS, by="language", audience=Audience(None, None), clinic_id=N)
    assert not any(r["suppressed"] for r in rows)
    assert [r["value"] for r in rows] == ["en", "es", "pt", "unknown", None]


# ---------------------------------------------------------------- intervals


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 7, 10, 19, 30, 60, 120, 1000, 100_000])
def test_t_quantile_matches_scipy(df: int) -> None:
    for p in (0.9, 0.975, 0.995):
        assert math.isclose(t_quantile(p, df), float(stats.t.ppf(p, df)), rel_tol=1e-9)


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 7), (3, 7), (7, 7), (14, 19), (500, 1000)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    got = wilson(k, n)
    assert got is not None
    assert math.isclose(got[0], float(ci.low), abs_tol=1e-12)
    assert math.isclose(got[1], float(ci.high), abs_tol=1e-12)


def test_no_interval_without_data() -> None:
    assert wilson(0, 0) is None
    assert t_interval(3.0, 9.0, 1) is None  # one response: a mean but no spread
    low_high = t_interval(6.0, 18.0, 2)  # 3 and 3: no spread, a point interval
    assert low_high == (3.0, 3.0)


# ---------------------------------------------------------------- the endpoint


@pytest.fixture(scope="module")
def app(cells: list[Cell[Any]]) -> FastAPI:
    source = MemoryReports(cells)
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


async def get(client: httpx.AsyncClient, headers: dict[str, str] | None = None, **params: str) -> Any:
    return await client.get("/v1/reports/equity", params={**RANGE, **params}, headers=headers or {})


async def test_roles_and_clinic_scope(client: httpx.AsyncClient) -> None:
    assert (await get(client)).status_code == 401
    assert (await get(client, EHR)).status_code == 403
    assert (await get(client, LEAD_NORTH, clinic_id=S)).status_code == 403
    assert (await get(client, LEAD_SOUTH, clinic_id=N)).status_code == 403
    for headers in (LEAD_NORTH, OPS, ADMIN):
        assert (await get(client, headers, clinic_id=N)).status_code == 200
    assert (await get(client, ADMIN, by="clinician")).status_code == 422
    assert (await get(client, ADMIN, clinic_id="no/such")).status_code == 422


async def test_json_answer(client: httpx.AsyncClient) -> None:
    body = (await get(client, LEAD_NORTH, clinic_id=N, by="language")).json()
    assert body["report"] == "equity" and body["clinic_id"] == N and body["by"] == "language"
    assert body["intervals"] == {"level": 0.95, "rates": "wilson", "means": "t"}
    assert body["suppression"] == {"applied": False, "min_cell_size": None}
    assert body["columns"] == list(COLUMN_NAMES)
    assert body["rows"] == [EN, ES, PT, UNKNOWN, TOTAL]
    network = (await get(client, LEAD_SOUTH, by="age_band")).json()
    assert network["clinics"] == [S] and network["rows"][-1]["sessions_attended"] == 1
    ops = (await get(client, OPS, by="interpreter")).json()
    assert ops["clinics"] == "*" and ops["suppression"] == {"applied": True, "min_cell_size": 5}


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        (OPS, {"by": "language"}),
        (ADMIN, {"by": "modality", "clinic_id": N}),
        (LEAD_NORTH, {"by": "age_band", "clinic_id": N}),
    ],
)
async def test_csv_and_json_agree_row_for_row(
    client: httpx.AsyncClient, headers: dict[str, str], params: dict[str, str]
) -> None:
    body = (await get(client, headers, **params)).json()
    by_param = await get(client, headers, **params, format="csv")
    by_accept = await get(client, {**headers, "Accept": "text/csv"}, **params)
    assert by_param.text == by_accept.text
    assert by_param.headers["content-type"].startswith("text/csv")
    assert "equity-" in by_param.headers["content-disposition"]
    lines = list(csv.reader(io.StringIO(by_param.text)))
    assert lines[0] == list(COLUMN_NAMES)
    assert len(lines) - 1 == len(body["rows"])
    for line, row in zip(lines[1:], body["rows"], strict=True):
        assert line == [csv_value(row[c]) for c in COLUMN_NAMES]
