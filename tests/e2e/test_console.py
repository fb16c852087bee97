"""The web console in a real headless Chromium against the whole stack as real processes.

The four services and the console start with a fresh name prefix; a simulated three-clinic network is
published; then people use the pages: a lead works an alert from the inbox to resolution and reveals
who the client is, an ops user reads the dashboard with its suppressed cells, and the console's
refusals (another clinic's alert, a form post without its CSRF token, an idle session) are checked.
axe-core runs on every page. Screenshots go to var/screenshots/ (or ATTUNE_SCREENSHOTS_DIR).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright import sync_api as playwright_sync

from attune_cli.simulator.generate import generate
from attune_cli.simulator.model import SimConfig
from attune_cli.simulator.publish import publish
from attune_cli.stack import ROOT, SERVICES, ServiceProcess, free_port
from attune_shared.kafka_admin import ensure_topics
from attune_shared.settings import ServiceSettings
from attune_shared.topics import Topics
from tests.support.ehr import Ehr
from tests.support.procs import start_stack, stop_stack

CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "services" / "console" / "node_modules" / "axe-core" / "axe.min.js"
# The README's pictures: ATTUNE_SCREENSHOTS_DIR=docs/screenshots refreshes them; by default a run
# writes its screenshots under var/ and leaves the tracked ones alone.
SHOTS = Path(os.environ.get("ATTUNE_SCREENSHOTS_DIR") or ROOT / "var" / "screenshots")
# Never skip: a green run must mean the pages were driven in a real browser.
if not CHROMIUM.exists() or not AXE.exists():
    pytest.fail(
        f"{CHROMIUM} or {AXE} is missing: `make setup` installs chromium and the console's npm assets",
        pytrace=False,
    )
SHOTS.mkdir(parents=True, exist_ok=True)


def _api(base: str, path: str, token: str, **params: Any) -> Any:
    r = httpx.get(f"{base}{path}", params=params, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    r.raise_for_status()
    return r.json()


def _alerts(base: str, token: str) -> list[dict[str, Any]]:
    return list(_api(base, "/v1/alerts", token, limit=200)["items"])


def _wait_for_data(procs: dict[str, ServiceProcess], timeout: float = 150) -> None:
    """Until alerts are settled (an open one in north-01 and south-01, unchanged twice) and reports exist."""
    alerts, reporting = procs["alerts"].url, procs["reporting"].url
    deadline, last, same = time.monotonic() + timeout, None, 0
    while time.monotonic() < deadline:
        found = _alerts(alerts, "dev-admin")
        shape = sorted((a["alert_id"], a["status"]) for a in found)
        open_in = {a["clinic_id"] for a in found if a["status"] == "open"}
        same = same + 1 if shape == last and {"north-01", "south-01"} <= open_in else 0
        last = shape
        rows = _api(reporting, "/v1/reports/network", "dev-ops", by="month")["rows"]
        if same >= 2 and any(r.get("suppressed") for r in rows):
            return
        time.sleep(3)
    raise AssertionError(f"no settled alerts and reports within {timeout}s: {last}")


@pytest.fixture(scope="module")
def settings() -> ServiceSettings:
    return ServiceSettings(attune_name_prefix=f"con{uuid.uuid4().hex[:6]}_")


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, settings: ServiceSettings
) -> Iterator[dict[str, ServiceProcess]]:
    prefix = settings.attune_name_prefix
    asyncio.run(ensure_topics(settings))
    env = {
        **os.environ,
        "ATTUNE_NAME_PREFIX": prefix,
        "ATTUNE_ALERTS_CLOCK": "event",
        "ATTUNE_ALERTS_SWEEP_SECONDS": "2",
        "ATTUNE_BATCH_TIMEOUT_MS": "50",
        "ATTUNE_CONSOLE_POLL_S": "1",
    }
    logs = tmp_path_factory.mktemp("console-logs")
    procs = start_stack(env, logs, services=(*SERVICES, "console"))
    try:
        scenario = generate(SimConfig(clinics=3, clients=60, weeks=12, seed=11))
        asyncio.run(
            publish(
                scenario,
                via="kafka",
                bootstrap=settings.kafka_bootstrap_servers,
                topic=settings.topic(Topics.EHR_EVENTS),
            )
        )
        # A second console whose sessions expire after 2 idle seconds.
        short = ServiceProcess(
            "console",
            {
                **env,
                "ATTUNE_CONSOLE_SESSION_IDLE_S": "2",
                "ATTUNE_CONSOLE_ALERTS_URL": procs["alerts"].url,
                "ATTUNE_CONSOLE_REPORTING_URL": procs["reporting"].url,
                "ATTUNE_CONSOLE_INTAKE_URL": procs["intake"].url,
                "ATTUNE_CONSOLE_MEASURES_URL": procs["measures"].url,
            },
            logs / "console-short.log",
            port=free_port(),
        ).start()
        procs["console-short"] = short
        short.wait_ready()
        _wait_for_data(procs)
        yield procs
    finally:
        stop_stack(procs)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def _context(browser: Any, *, bypass_csp: bool = False, width: int = 1280) -> Any:
    return browser.new_context(
        viewport={"width": width, "height": 900}, timezone_id="America/Toronto", bypass_csp=bypass_csp
    )


def _sign_in(page: Any, console: str, token: str) -> None:
    page.goto(f"{console}/sign-in")
    page.get_by_label("Access token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def _axe(page: Any) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}))
            .violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"""
    )
    return found


def test_lead_works_an_alert_from_inbox_to_resolution(stack: dict[str, ServiceProcess], browser: Any) -> None:
    console, alerts = stack["console"].url, stack["alerts"].url
    north_open = [a for a in _alerts(alerts, "dev-lead-north") if a["status"] == "open"]
    assert north_open, "the scenario leaves an open alert in north-01"
    # A rupture if there is one: its chart has a trigger and a trough to mark.
    chosen = next((a for a in north_open if a["rule_id"] == "alliance.rupture"), north_open[0])
    target = chosen["alert_id"]

    ctx = _context(browser)
    problems: list[str] = []
    try:
        inbox = ctx.new_page()
        inbox.on(
            "console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None
        )
        _sign_in(inbox, console, "dev-lead-north")
        assert inbox.url.endswith("/inbox")
        cookie = next(c for c in ctx.cookies() if c["name"] == "attune_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

        answer = inbox.goto(f"{console}/inbox")
        assert answer is not None
        headers = answer.headers
        assert headers["cache-control"] == "no-store"
        assert "default-src 'self'" in headers["content-security-policy"]
        assert "unsafe-inline" not in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert "server" not in headers

        # Only the lead's own clinic, in every status.
        inbox.goto(f"{console}/inbox?status=all")
        clinics = inbox.locator("table.alerts tbody tr td:nth-child(3)").all_inner_texts()
        assert clinics and all(c.startswith("north-01") for c in clinics), clinics

        # The live inbox: another tab acknowledges; this one shows it without a reload.
        inbox.goto(f"{console}/inbox")
        row = inbox.locator(f'tr[data-alert-id="{target}"]')
        assert row.locator(".status").inner_text() == "open"
        work = ctx.new_page()
        work.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
        work.goto(f"{console}/inbox")
        work.locator(f'tr[data-alert-id="{target}"] a.alert-link').click()
        work.wait_for_url(f"**/alerts/{target}")
        assert work.get_by_role("heading", name="What fired and why").is_visible()
        assert "version" in work.locator("section[aria-labelledby=why-h]").inner_text()
        # The client's series, drawn by Chart.js from measures' answer, with the alert's points marked.
        charts = work.locator("canvas[data-panel]")
        assert charts.count() >= 1 and work.locator("#series-table tbody tr").count() >= 2
        assert charts.first.bounding_box()["height"] > 100  # type: ignore[index]
        marks = " ".join(c.get_attribute("data-marks") or "" for c in charts.all())
        if chosen["rule_id"] == "alliance.rupture":
            assert "trigger" in marks and "trough" in marks, marks
        elif chosen["rule_id"] in ("outcome.deterioration", "safety.phq9-item9"):
            assert "trigger" in marks, marks
        work.get_by_label("Note (optional)").first.fill("Called the client; next session booked.")
        work.get_by_role("button", name="Acknowledge").click()
        work.wait_for_url(f"**/alerts/{target}?done=acknowledge")
        assert "Alert acknowledged." in work.inner_text("main")
        inbox.locator(f'tr[data-alert-id="{target}"] .status', has_text="acknowledged").wait_for(
            timeout=10_000
        )

        work.screenshot(path=str(SHOTS / "console-alert.png"), full_page=True)  # no MRN on it

        # Who is this client: intake's audited door, shown once.
        work.get_by_label("Why do you need to know?").fill("Calling the client about the missed sessions")
        work.get_by_role("button", name="Show the medical record number").click()
        work.wait_for_load_state()
        mrn = work.locator("[data-mrn]").inner_text()
        assert mrn and mrn != "not recorded"
        audit = _api(stack["intake"].url, "/v1/admin/reidentifications", "dev-admin")["items"]
        assert any(
            r["who"] == "lead-north" and r["reason"].startswith("Calling the client") and r["outcome"] == "ok"
            for r in audit
        ), audit
        work.goto(f"{console}/alerts/{target}")
        assert mrn not in work.inner_text("main")  # once: a new visit does not show it again

        # Resolve with a note; the timeline shows both notes.
        work.get_by_label("False positive").check()
        work.locator("#res-note").fill("Client had moved house; engaged again.")
        work.get_by_role("button", name="Resolve").click()
        work.wait_for_url(f"**/alerts/{target}?done=resolve")
        text = work.inner_text("main")
        assert "Alert resolved." in text and "Resolution: false positive" in text
        assert "Called the client; next session booked." in text and "Client had moved house" in text
        assert _api(alerts, f"/v1/alerts/{target}", "dev-lead-north")["status"] == "resolved"

        # A rupture's chart marks the trigger and the trough (and the repair when there was one); one
        # the client reported on the PSQ marks the trigger at that session's alliance score.
        ruptures = [a for a in _alerts(alerts, "dev-lead-north") if a["rule_id"] == "alliance.rupture"]
        assert any(r["evidence"].get("criterion") in ("strict", "lenient") for r in ruptures), ruptures
        for rupture in ruptures:
            work.goto(f"{console}/alerts/{rupture['alert_id']}")
            marks = (work.locator("canvas#series-alliance").get_attribute("data-marks") or "").split()
            assert "trigger" in marks, (rupture["evidence"], marks)
            if rupture["evidence"].get("criterion") != "psq":
                assert "trough" in marks, (rupture["evidence"], marks)
            if (rupture["evidence"].get("resolution_evidence") or {}).get("repair_response_id"):
                assert "repair" in marks, (rupture["evidence"], marks)
                work.screenshot(path=str(SHOTS / "console-alert-rupture.png"), full_page=True)

        # Another clinic's alert by URL: the console's 404 page.
        south = next(a for a in _alerts(alerts, "dev-admin") if a["clinic_id"] == "south-01")
        answer = work.goto(f"{console}/alerts/{south['alert_id']}")
        assert answer is not None and answer.status == 404
        assert work.get_by_role("heading", name="Not found").is_visible()
        assert south["client_ref"] not in work.content()

        # A form post without the CSRF token is refused, and changes nothing.
        south_lead_open = next(a for a in _alerts(alerts, "dev-lead-south") if a["status"] == "open")
        refused = work.request.post(f"{console}/alerts/{target}/acknowledge", form={"note": "no token"})
        assert refused.status == 403
        refused = work.request.post(
            f"{console}/alerts/{target}/reveal", form={"reason": "no csrf token here", "csrf": "forged"}
        )
        assert refused.status == 403 and "not recorded" not in refused.text()
        assert _api(alerts, f"/v1/alerts/{south_lead_open['alert_id']}", "dev-admin")["status"] == "open"
        assert not problems, problems
    finally:
        ctx.close()


def test_a_new_alert_appears_live(
    stack: dict[str, ServiceProcess], browser: Any, settings: ServiceSettings
) -> None:
    """A lead watches the inbox; the EHR then reports a PHQ-9 with a self-harm answer for a new client
    of the lead's clinic: the urgent alert appears at the top without a reload, counting down from 1 h."""
    console = stack["console"].url
    ctx = _context(browser)
    try:
        page = ctx.new_page()
        _sign_in(page, console, "dev-lead-north")
        before = set(
            page.locator("tr[data-alert-id]").evaluate_all("rows => rows.map(r => r.dataset.alertId)")
        )
        ehr = Ehr(source="ehr-north")
        when = datetime.now(UTC) - timedelta(minutes=5)
        events = [
            ehr.referred("north-01", "MRN-LIVE-1", when - timedelta(days=1), clinician="c-live"),
            ehr.questionnaire(
                "north-01",
                "MRN-LIVE-1",
                when,
                "resp-live-1",
                "PHQ-9",
                [1, 1, 1, 1, 1, 1, 1, 1, 2],
                clinician="c-live",
            ),
        ]
        # Through intake's HTTP ingestion, as an EHR would (the page's own event loop rules out asyncio here).
        sent = httpx.post(
            f"{stack['intake'].url}/v1/ehr/events",
            json={"events": events},
            headers={"Authorization": "Bearer dev-ehr-north"},
            timeout=30,
        )
        assert sent.status_code == 202 and sent.json()["accepted"] == 2, sent.text
        # No reload from here on: the page's own polling must bring the row in.
        page.wait_for_function(
            """known => [...document.querySelectorAll('tr[data-alert-id]')]
                .some(r => !known.includes(r.dataset.alertId) && r.textContent.includes('c-live'))""",
            arg=sorted(before),
            timeout=60_000,
        )
        first = page.locator("table.alerts tbody tr").first
        assert (
            "c-live" in first.inner_text() and first.locator(".sev").inner_text().strip().lower() == "urgent"
        )
        countdown = first.locator("[data-countdown]").inner_text()
        assert countdown and "overdue" not in countdown.lower(), countdown
        # The live region says so, for a screen reader too, and the new row is marked.
        assert " new, " in page.locator("#live-status").inner_text()
        assert "fresh" in (first.get_attribute("class") or "")
        # The clinician link leads to that clinician's caseload, with the new client and its open alert.
        first.locator("a.clinician-link").click()
        page.wait_for_url("**/clinicians/c-live?clinic=north-01")
        caseload = page.locator("table.caseload")
        assert caseload.locator("tbody tr").count() == 1
        assert "PHQ-9" in caseload.inner_text()
        assert page.locator("table.alerts tbody tr").count() == 1
    finally:
        ctx.close()


def test_admin_inbox_orders_open_alerts_by_severity_then_deadline(
    stack: dict[str, ServiceProcess], browser: Any
) -> None:
    ctx = _context(browser)
    try:
        page = ctx.new_page()
        _sign_in(page, stack["console"].url, "dev-admin")
        page.goto(f"{stack['console'].url}/inbox")
        severities = page.locator("table.alerts tbody .sev").all_inner_texts()
        rank = {"URGENT": 0, "HIGH": 1, "NORMAL": 2}
        ranks = [rank[s.strip().upper()] for s in severities]
        assert (
            ranks == sorted(ranks)
            and len({c[:8] for c in page.locator("table.alerts td:nth-child(3)").all_inner_texts()}) >= 2
        )
        assert page.locator("#counts-region .counts li").count() >= 1
        page.screenshot(path=str(SHOTS / "console-inbox.png"), full_page=True)
        page.set_viewport_size({"width": 820, "height": 1100})
        page.screenshot(path=str(SHOTS / "console-inbox-tablet.png"), full_page=True)
    finally:
        ctx.close()


def test_ops_dashboard_marks_suppressed_cells(stack: dict[str, ServiceProcess], browser: Any) -> None:
    console = stack["console"].url
    ctx = _context(browser)
    problems: list[str] = []
    try:
        page = ctx.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        _sign_in(page, console, "dev-ops")
        assert page.url.endswith("/dashboard")
        assert page.get_by_role("heading", name="Operations dashboard").is_visible(), page.content()[:800]
        suppressed = page.locator("#trend-table td[data-suppressed=true]")
        assert suppressed.count() >= 1
        assert all(t == "suppressed" for t in suppressed.all_inner_texts())
        assert all(v == "" for v in [c.get_attribute("data-value") for c in suppressed.all()])
        page.locator("#trend-metric").select_option("improved_share")
        assert "suppressed" in page.locator("#trend-suppressed").inner_text()
        assert page.evaluate("() => typeof window.Chart") == "function"
        assert page.locator("#trend-chart").bounding_box()["height"] > 100  # type: ignore[index]
        with page.expect_download() as download:
            page.get_by_role("link", name="Download CSV of clinics").click()
        assert download.value.suggested_filename == "attune-network-by-clinic.csv"
        page.locator("#trend-metric").select_option("attendance_rate")
        page.screenshot(path=str(SHOTS / "console-dashboard.png"), full_page=True)
        assert not problems, problems
        # An ops user has no inbox.
        answer = page.goto(f"{console}/inbox")
        assert answer is not None and answer.status == 403
    finally:
        ctx.close()


def test_lead_dashboard_has_own_clinicians_only(stack: dict[str, ServiceProcess], browser: Any) -> None:
    console = stack["console"].url
    ctx = _context(browser)
    try:
        page = ctx.new_page()
        _sign_in(page, console, "dev-lead-north")
        page.goto(f"{console}/dashboard")
        tables = page.locator("table.clinicians")
        assert [t.get_attribute("data-clinic") for t in tables.all()] == ["north-01"]
        rows = tables.first.locator("tbody tr")
        assert rows.count() >= 2
        # A clinician's row leads to the caseload: clients with their latest alliance and outcome
        # (the busiest clinician's, for the screenshot).
        active = [int(t.replace(",", "") or 0) for t in rows.locator("td:nth-child(2)").all_inner_texts()]
        rows.nth(active.index(max(active))).locator("a").click()
        page.wait_for_url("**/clinicians/*?clinic=north-01")
        cases = page.locator("table.caseload tbody tr")
        assert cases.count() >= 1
        assert all(
            t.strip().startswith("north-01") for t in cases.locator("td:nth-child(2)").all_inner_texts()
        )
        page.screenshot(path=str(SHOTS / "console-caseload.png"), full_page=True)
        # Another clinic's clinician: measures' clinic scope, shown as the console's refusal.
        answer = page.goto(f"{console}/clinicians/c-1?clinic=south-01")
        assert answer is not None and answer.status == 403
    finally:
        ctx.close()


def test_idle_session_expires(stack: dict[str, ServiceProcess], browser: Any) -> None:
    console = stack["console-short"].url
    ctx = _context(browser)
    try:
        page = ctx.new_page()
        _sign_in(page, console, "dev-lead-north")
        assert page.url.endswith("/inbox")
        csrf = page.locator("input[name=csrf]").first.get_attribute("value")
        time.sleep(2.5)
        page.goto(f"{console}/inbox")
        assert "/sign-in" in page.url and "Your session expired" in page.inner_text("main")
        # The old cookie and a valid CSRF token from before: still refused.
        refused = page.request.post(f"{console}/sign-out", form={"csrf": csrf or ""}, max_redirects=0)
        assert refused.status == 303 and refused.headers["location"].startswith("/sign-in")
    finally:
        ctx.close()


def test_every_page_passes_axe(stack: dict[str, ServiceProcess], browser: Any) -> None:
    console, alerts = stack["console"].url, stack["alerts"].url
    an_alert = _alerts(alerts, "dev-lead-south")[0]["alert_id"]
    north_clinician = next(a["clinician_id"] for a in _alerts(alerts, "dev-lead-north") if a["clinician_id"])
    found: dict[str, list[dict[str, Any]]] = {}
    for token, paths in (
        ("dev-lead-south", ["/inbox", "/inbox?status=all", f"/alerts/{an_alert}", "/alerts/no-such-alert"]),
        ("dev-ops", ["/dashboard", "/equity", "/equity?by=age_band"]),
        (
            "dev-lead-north",
            ["/dashboard", f"/clinicians/{north_clinician}?clinic=north-01", "/equity?clinic=north-01"],
        ),
    ):
        # axe is injected as a script tag, which the console's CSP rightly forbids: this context bypasses it.
        ctx = _context(browser, bypass_csp=True)
        try:
            page = ctx.new_page()
            page.goto(f"{console}/sign-in")
            found["/sign-in"] = _axe(page)
            _sign_in(page, console, token)
            for path in paths:
                page.goto(f"{console}{path}")
                found[f"{token} {path}"] = _axe(page)
        finally:
            ctx.close()
    assert len(found) == 11 and all(v == [] for v in found.values()), {k: v for k, v in found.items() if v}
