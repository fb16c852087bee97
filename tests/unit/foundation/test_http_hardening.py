"""The HTTP edge of every service, in process (issue 22): authentication before validation, body limits,
error bodies that never echo the input, security headers, no docs pages, no Host-built redirects, and an
OpenAPI document that lists what every endpoint can answer.

The apps are the services' own `create_app`; their lifespans do not run (no broker, no store), so only
what the HTTP edge answers by itself is exercised here. Each service's dependencies (`Service.deps`) are
stand-ins that are never called, except the audits of alerts and measures, which are lists in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from attune_shared.auth import TokenStore
from attune_shared.settings import DEV_TOKENS_FILE
from tests.support.fakes import MemoryAudit

SERVICES = ("intake", "measures", "alerts", "reporting")
LEAD = {"Authorization": "Bearer dev-lead-north"}
ADMIN = {"Authorization": "Bearer dev-admin"}
OPS = {"Authorization": "Bearer dev-ops"}
EHR = {"Authorization": "Bearer dev-ehr-north"}
BAD = {"Authorization": "Bearer not-a-token"}


def _app(name: str) -> FastAPI:
    if name == "intake":
        from attune_intake.app import create_app as intake_app

        app = intake_app()
        app.state.service.deps = SimpleNamespace(store=None)
    elif name == "alerts":
        from attune_alerts.app import create_app as alerts_app

        app = alerts_app()
        app.state.service.deps = SimpleNamespace(store=MemoryAudit(), ledger=None)
    elif name == "measures":
        from attune_measures.app import create_app as measures_app

        app = measures_app()
        app.state.service.deps = SimpleNamespace(store=MemoryAudit(), thresholds=None)
    else:
        from attune_reporting.app import create_app as reporting_app

        app = reporting_app()
        app.state.service.deps = SimpleNamespace(reports=None)
    app.state.tokens = TokenStore.load(DEV_TOKENS_FILE)
    return app


@pytest.fixture(scope="module")
def apps() -> dict[str, FastAPI]:
    return {name: _app(name) for name in SERVICES}


@pytest.fixture
async def http(apps: dict[str, FastAPI]) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    clients = {
        name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")
        for name, app in apps.items()
    }
    yield clients
    for c in clients.values():
        await c.aclose()


# Every /v1 operation, with parameters and bodies that fail validation, and the roles it refuses.
INVALID_CALLS = [
    ("alerts", "POST", "/v1/alerts/x/acknowledge", {"json": {"note": 5}}, EHR),
    ("alerts", "POST", "/v1/alerts/x/resolve", {"json": {"resolution": "nope"}}, OPS),
    ("alerts", "GET", "/v1/alerts", {"params": {"limit": "abc"}}, OPS),
    ("alerts", "GET", "/v1/alerts/x", {"params": {}}, EHR),
    ("reporting", "GET", "/v1/reports/clinics/%20", {"params": {"from": "x", "by": "y"}}, EHR),
    ("reporting", "GET", "/v1/reports/network", {"params": {"to": "2026-13"}}, EHR),
    ("intake", "POST", "/v1/ehr/events", {"content": b"{not json"}, LEAD),
    ("intake", "GET", "/v1/admin/dead-letters", {"params": {"limit": "abc"}}, LEAD),
    ("intake", "POST", "/v1/admin/dead-letters/replay", {"json": {"limit": "x"}}, EHR),
    ("measures", "GET", "/v1/episodes/not-an-episode/series", {"params": {}}, OPS),
    (
        "measures",
        "GET",
        "/v1/clinicians/c-1/caseload",
        {"params": {"limit": "abc", "clinic_id": "x" * 99}},
        EHR,
    ),
]


@pytest.mark.parametrize(("service", "method", "path", "kw", "wrong_role"), INVALID_CALLS)
async def test_no_token_is_401_and_a_wrong_role_403_before_any_validation(
    http: dict[str, httpx.AsyncClient],
    service: str,
    method: str,
    path: str,
    kw: dict[str, Any],
    wrong_role: dict[str, str],
) -> None:
    client = http[service]
    for headers in ({}, BAD, {"Authorization": "Basic dev-admin"}):
        r = await client.request(method, path, headers=headers, **kw)
        assert r.status_code == 401, (headers, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
    r = await client.request(method, path, headers=wrong_role, **kw)
    assert r.status_code == 403, r.text


async def test_an_unknown_v1_path_needs_a_token_too(http: dict[str, httpx.AsyncClient]) -> None:
    for client in http.values():
        assert (await client.get("/v1/nothing-here")).status_code == 401
        assert (await client.get("/v1/nothing-here", headers=ADMIN)).status_code == 404


async def test_denied_alerts_calls_are_audited_before_validation(
    apps: dict[str, FastAPI], http: dict[str, httpx.AsyncClient]
) -> None:
    audit: MemoryAudit = apps["alerts"].state.service.deps.store
    audit.entries.clear()
    await http["alerts"].post("/v1/alerts/a-1/acknowledge", json={"note": 5})
    await http["alerts"].get("/v1/alerts", params={"limit": "abc"}, headers=OPS)
    await http["alerts"].post("/v1/alerts/a-2/resolve", json={}, headers=EHR)
    got = [
        (e["who"], e["role"], e["action"], e["alert_id"], e["outcome"], e["status"]) for e in audit.entries
    ]
    assert got == [
        (None, None, "acknowledge", "a-1", "unauthorized", 401),
        ("ops", "ops", "list", None, "forbidden", 403),
        ("ehr-north", "ehr", "resolve", "a-2", "forbidden", 403),
    ]
    assert audit.entries[1]["query"] == {"limit": "abc"}


async def test_denied_measures_calls_are_audited_before_validation(
    apps: dict[str, FastAPI], http: dict[str, httpx.AsyncClient]
) -> None:
    audit: MemoryAudit = apps["measures"].state.service.deps.store
    audit.entries.clear()
    await http["measures"].get("/v1/episodes/not-an-episode/series")
    await http["measures"].get("/v1/clinicians/c-1/caseload", params={"limit": "abc"}, headers=OPS)
    await http["measures"].get("/v1/episodes/ep_X/series", headers=EHR)
    await http["measures"].get("/v1/episodes/" + "e" * 5000 + "/series", headers=BAD)
    await http["measures"].get("/v1/episodes/ep_X/other", headers=OPS)  # no such route, same prefix
    got = [(e["who"], e["role"], e["action"], e["outcome"], e["status"]) for e in audit.entries]
    assert got == [
        (None, None, "series", "unauthorized", 401),
        ("ops", "ops", "caseload", "forbidden", 403),
        ("ehr-north", "ehr", "series", "forbidden", 403),
        (None, None, "series", "unauthorized", 401),
        ("ops", "ops", "unknown", "forbidden", 403),
    ]
    assert audit.entries[0]["episode_id"] == "not-an-episode"
    assert audit.entries[1]["clinician_id"] == "c-1" and audit.entries[1]["query"] == {"limit": "abc"}
    assert audit.entries[3]["episode_id"] == "e" * 200  # raw input is cut short, never kept whole
    assert audit.entries[4]["path"] == "/v1/episodes/ep_X/other"


BIG = b'{"note": "' + b"x" * (70 * 1024) + b'"}'


@pytest.mark.parametrize(
    ("service", "path", "headers"),
    [
        ("alerts", "/v1/alerts/x/acknowledge", LEAD),
        ("alerts", "/v1/alerts/x/resolve", ADMIN),
        ("intake", "/v1/admin/dead-letters/replay", ADMIN),
    ],
)
async def test_every_post_has_a_small_body_limit(
    http: dict[str, httpx.AsyncClient], service: str, path: str, headers: dict[str, str]
) -> None:
    client = http[service]
    declared = await client.post(path, content=BIG, headers={**headers, "Content-Type": "application/json"})
    assert declared.status_code == 413, declared.text
    assert "xxxx" not in declared.text

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for i in range(0, len(BIG), 8192):
            yield BIG[i : i + 8192]

    streamed = await client.post(path, content=chunks(), headers=headers)
    assert streamed.status_code == 413, streamed.text


async def test_the_ingestion_endpoint_keeps_its_one_mebibyte_limit(
    http: dict[str, httpx.AsyncClient],
) -> None:
    r = await http["intake"].post("/v1/ehr/events", content=b"x" * (1024 * 1024 + 1), headers=EHR)
    assert r.status_code == 413
    # 100 KiB is over the small default, but under ingestion's own limit: it reaches the handler (400).
    r = await http["intake"].post("/v1/ehr/events", content=b"x" * (100 * 1024), headers=EHR)
    assert r.status_code == 400


async def test_a_validation_error_never_echoes_the_input(http: dict[str, httpx.AsyncClient]) -> None:
    secret = "MRN-SECRET-" + "y" * 5000
    r = await http["alerts"].post("/v1/alerts/x/acknowledge", json={"note": 5, secret: secret}, headers=LEAD)
    assert r.status_code == 422
    assert "MRN-SECRET" not in r.text or len(r.text) < 1000
    for error in r.json()["detail"]:
        assert set(error) <= {"loc", "msg", "type"}, error
    assert "y" * 200 not in r.text
    r = await http["alerts"].get("/v1/alerts", params={"limit": "SECRET-VALUE"}, headers=LEAD)
    assert r.status_code == 422 and "SECRET-VALUE" not in r.text
    measures = http["measures"]
    r = await measures.get("/v1/episodes/MRN-SECRET-VALUE/series", headers=LEAD)
    assert r.status_code == 422 and "SECRET" not in r.text
    r = await measures.get("/v1/episodes/" + "y" * 5000 + "/series", headers=ADMIN)
    assert r.status_code == 422 and "y" * 200 not in r.text
    r = await measures.get("/v1/clinicians/c-1/caseload", params={"limit": "SECRET-VALUE"}, headers=LEAD)
    assert r.status_code == 422 and "SECRET-VALUE" not in r.text
    r = await measures.get("/v1/clinicians/" + "y" * 5000 + "/caseload", headers=LEAD)
    assert r.status_code == 422 and "y" * 200 not in r.text
    r = await measures.get("/v1/clinicians/c-1/caseload", params={"clinic_id": "SECRET-" * 20}, headers=LEAD)
    assert r.status_code == 422 and "SECRET" not in r.text
    for error in r.json()["detail"]:
        assert set(error) <= {"loc", "msg", "type"}, error


SECURITY = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
}


@pytest.mark.parametrize("service", SERVICES)
async def test_every_answer_carries_the_security_headers(
    http: dict[str, httpx.AsyncClient], service: str
) -> None:
    client = http[service]
    answers = [
        await client.get("/healthz"),
        await client.get("/openapi.json"),
        await client.get("/metrics"),
        await client.get("/v1/anything"),
        await client.get("/nowhere", headers=ADMIN),
        await client.post("/v1/x", content=BIG, headers=ADMIN),
    ]
    for r in answers:
        for name, value in SECURITY.items():
            assert r.headers.get(name) == value, (r.request.url, name, r.headers)
        assert "server" not in r.headers


@pytest.mark.parametrize("service", SERVICES)
async def test_no_docs_pages_and_no_redirect_built_from_the_host(
    http: dict[str, httpx.AsyncClient], service: str
) -> None:
    client = http[service]
    assert (await client.get("/docs")).status_code == 404
    assert (await client.get("/redoc")).status_code == 404
    assert (await client.get("/openapi.json")).status_code == 200
    r = await client.get("/v1/alerts/..%2f", headers={**ADMIN, "Host": "evil.example"})
    assert r.status_code != 307 and "location" not in r.headers
    r = await client.get("/healthz/", headers={"Host": "evil.example"})
    assert r.status_code == 404 and "location" not in r.headers


def test_uvicorn_is_configured_without_a_server_banner(monkeypatch: pytest.MonkeyPatch) -> None:
    from attune_shared import runtime

    seen: dict[str, Any] = {}

    class Recorder:
        def __init__(self, config: Any) -> None:
            seen["config"] = config

        def run(self) -> None:
            pass

    monkeypatch.setattr(runtime, "_Server", Recorder)
    runtime.serve(FastAPI(), runtime.ServiceSettings())
    assert seen["config"].server_header is False


@pytest.mark.parametrize("service", SERVICES)
def test_openapi_documents_security_and_every_answer(apps: dict[str, FastAPI], service: str) -> None:
    doc = apps[service].openapi()
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A token from ATTUNE_TOKENS_FILE: `Authorization: Bearer <token>`.",
    }
    v1 = [(p, m, op) for p, ops in doc["paths"].items() for m, op in ops.items() if p.startswith("/v1/")]
    assert v1
    for path, method, op in v1:
        assert op.get("security") == [{"bearerAuth": []}], (path, method)
        assert {"401", "403"} <= set(op["responses"]), (path, method)
        if method == "post":
            assert "413" in op["responses"], path
    paths = doc["paths"]
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert "503" in paths["/readyz"]["get"]["responses"]
    if service == "reporting":
        for p in ("/v1/reports/clinics/{clinic_id}", "/v1/reports/network"):
            assert {"application/json", "text/csv"} <= set(paths[p]["get"]["responses"]["200"]["content"])
            assert {"400", "422"} <= set(paths[p]["get"]["responses"])
    if service == "alerts":
        for p in ("/v1/alerts/{alert_id}/acknowledge", "/v1/alerts/{alert_id}/resolve"):
            assert {"404", "409", "422", "503"} <= set(paths[p]["post"]["responses"])
    if service == "measures":
        assert {"404", "422", "503"} <= set(paths["/v1/episodes/{episode_id}/series"]["get"]["responses"])
        assert {"422", "503"} <= set(paths["/v1/clinicians/{clinician_id}/caseload"]["get"]["responses"])
    if service == "intake":
        op = paths["/v1/ehr/events"]["post"]
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        assert "$defs" not in schema and len(schema["oneOf"]) == 2
        assert "SessionAttendedEnvelope" in doc["components"]["schemas"]
        assert {"202", "400", "401", "403", "413"} <= set(op["responses"])
