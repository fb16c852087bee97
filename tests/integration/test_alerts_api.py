"""The alerts API on a real alerts process: clinic scoping, 401/403/404/409, lifecycle, paging, audit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from attune_shared.topics import Topics
from tests.support.kafka_io import produce, read_all
from tests.support.procs import ServiceProcess
from tests.unit.alerts_service.builders import Client, encode, week

LEAD_NORTH = {"Authorization": "Bearer dev-lead-north"}
LEAD_SOUTH = {"Authorization": "Bearer dev-lead-south"}
ADMIN = {"Authorization": "Bearer dev-admin"}
OPS = {"Authorization": "Bearer dev-ops"}


@pytest.fixture
async def service(namespace) -> AsyncIterator[ServiceProcess]:
    proc = ServiceProcess("alerts", namespace.env, namespace.logs / "alerts.log").start()
    try:
        await asyncio.to_thread(proc.wait_ready)
        yield proc
    finally:
        assert proc.stop() == 0, proc.tail()


async def _seed(namespace) -> dict[str, Client]:
    """Safety alerts for three north-01 clients and two south-01 clients."""
    clients = {f"n{i}": Client(clinic="north-01", mrn=f"N{i}", episode=f"ep_n{i}") for i in range(3)}
    clients |= {f"s{i}": Client(clinic="south-01", mrn=f"S{i}", episode=f"ep_s{i}") for i in range(2)}
    records = []
    for i, c in enumerate(clients.values()):
        records.append(encode(c.phq9(f"q-{c.episode}", item9=1 + i % 3, at=week(i))))
    await produce(namespace.settings.kafka_bootstrap_servers, namespace.topic(Topics.MEASURES), records)
    return clients


async def _wait_for(http: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    for _ in range(150):
        items = (await http.get("/v1/alerts", headers=ADMIN, params={"limit": 200})).json()["items"]
        if len(items) >= count:
            return items
        await asyncio.sleep(0.2)
    raise AssertionError(f"expected {count} alerts")


async def test_alerts_api_scoping_lifecycle_and_audit(namespace, mongo, service: ServiceProcess) -> None:
    await _seed(namespace)
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as http:
        everything = await _wait_for(http, 5)  # admin: all clinics (1 call)
        north = [a for a in everything if a["clinic_id"] == "north-01"]
        south = [a for a in everything if a["clinic_id"] == "south-01"]
        assert len(north) == 3 and len(south) == 2
        calls = 0

        async def call(
            method: str, path: str, headers: dict[str, str] | None = None, **kw: Any
        ) -> httpx.Response:
            nonlocal calls
            calls += 1
            return await http.request(method, path, headers=headers, **kw)

        # A lead sees only its clinics' alerts.
        r = await call("GET", "/v1/alerts", LEAD_NORTH)
        assert r.status_code == 200
        assert {a["alert_id"] for a in r.json()["items"]} == {a["alert_id"] for a in north}
        assert (
            await call("GET", "/v1/alerts", LEAD_NORTH, params={"clinic_id": "south-01"})
        ).status_code == 403
        r = await call(
            "GET", "/v1/alerts", LEAD_NORTH, params={"severity": "urgent", "rule_id": "safety.phq9-item9"}
        )
        assert r.status_code == 200 and {a["clinic_id"] for a in r.json()["items"]} == {"north-01"}

        # Another clinic's alert does not exist for this lead: 404 to read, 404 to acknowledge.
        foreign = south[0]["alert_id"]
        assert (await call("GET", f"/v1/alerts/{foreign}", LEAD_NORTH)).status_code == 404
        assert (
            await call("POST", f"/v1/alerts/{foreign}/acknowledge", LEAD_NORTH, json={})
        ).status_code == 404
        assert (await call("GET", "/v1/alerts/no-such-alert", LEAD_NORTH)).status_code == 404
        assert (await call("GET", f"/v1/alerts/{foreign}", LEAD_SOUTH)).status_code == 200

        # No token: 401; a role without alerts access: 403.
        assert (await call("GET", "/v1/alerts")).status_code == 401
        assert (await call("GET", "/v1/alerts", {"Authorization": "Bearer not-a-token"})).status_code == 401
        assert (await call("GET", "/v1/alerts", OPS)).status_code == 403
        assert (await call("GET", f"/v1/alerts/{north[0]['alert_id']}", OPS)).status_code == 403

        # Lifecycle: acknowledge, then resolve; resolving twice (or acknowledging again) is 409.
        mine = north[0]["alert_id"]
        r = await call("POST", f"/v1/alerts/{mine}/resolve", LEAD_NORTH, json={"resolution": "addressed"})
        assert r.status_code == 409  # open -> resolved skips acknowledgement
        r = await call(
            "POST", f"/v1/alerts/{mine}/acknowledge", LEAD_NORTH, json={"note": "called the client"}
        )
        assert r.status_code == 200, r.text
        acked = r.json()
        assert acked["status"] == "acknowledged" and acked["acknowledged_by"] == "lead-north"
        assert acked["notes"][0]["note"] == "called the client"
        assert (await call("POST", f"/v1/alerts/{mine}/acknowledge", LEAD_NORTH)).status_code == 409
        r = await call("POST", f"/v1/alerts/{mine}/resolve", LEAD_NORTH, json={"resolution": "addressed"})
        assert (
            r.status_code == 200
            and r.json()["status"] == "resolved"
            and r.json()["resolution"] == "addressed"
        )
        r = await call(
            "POST", f"/v1/alerts/{mine}/resolve", LEAD_NORTH, json={"resolution": "false_positive"}
        )
        assert r.status_code == 409
        r = await call("POST", f"/v1/alerts/{mine}/resolve", LEAD_NORTH, json={"resolution": "repaired"})
        assert r.status_code == 422  # rules-only resolutions are not a person's to choose
        calls -= 1  # a request rejected by validation never reaches the handler (not audited)
        r = await call("GET", f"/v1/alerts/{mine}", LEAD_NORTH)
        assert r.json()["status"] == "resolved" and r.json()["acknowledged_at"] is not None

        # Cursor paging: one at a time, every north alert exactly once, newest first.
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
            page = (await call("GET", "/v1/alerts", LEAD_NORTH, params=params)).json()
            seen.extend(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert [a["alert_id"] for a in seen] == [
            a["alert_id"] for a in sorted(north, key=lambda a: (a["raised_at"], a["alert_id"]), reverse=True)
        ]
        assert (await call("GET", "/v1/alerts", LEAD_NORTH, params={"cursor": "bogus"})).status_code == 400

    # Every call is in the audit trail (plus the admin's polling while waiting), none with a body.
    db = mongo[namespace.db("alerts")]
    audit = [d async for d in db["audit"].find({"who": {"$ne": "admin"}})]
    assert len(audit) == calls
    outcomes = {(d["who"], d["action"], d["outcome"]) for d in audit}
    assert ("lead-north", "get", "not_found") in outcomes
    assert ("lead-north", "acknowledge", "not_found") in outcomes
    assert (None, "list", "unauthorized") in outcomes
    assert ("ops", "list", "forbidden") in outcomes
    assert ("lead-north", "acknowledge", "ok") in outcomes
    assert ("lead-north", "resolve", "ok") in outcomes
    assert ("lead-north", "resolve", "conflict") in outcomes
    assert ("lead-north", "list", "forbidden") in outcomes
    assert all(d["at"] is not None for d in audit)
    assert not any("called the client" in json.dumps(d, default=str) for d in audit)

    # The person's changes went out as events; the note did not.
    records = await read_all(namespace.settings.kafka_bootstrap_servers, namespace.topic(Topics.ALERTS))
    events = [json.loads(r.value) for r in records]
    kinds = [e["event_type"] for e in events if e["alert"]["alert_id"] == mine]
    assert kinds == ["alert.raised", "alert.acknowledged", "alert.resolved"]
    assert not any("called the client" in r.value.decode() for r in records)
    # The episode's rule state forgot the alert: the next item-9 answer raises a new one.
    episode = await db["episodes"].find_one({"_id": north[0]["episode_id"]})
    assert episode is not None and episode["open_alerts"] == []


async def test_alerts_list_filtered_by_clinician(namespace, mongo, service: ServiceProcess) -> None:
    """`clinician_id` narrows the list like the other filters, within the caller's clinics, audited."""
    clients = [
        Client(clinic="north-01", mrn="CN1", episode="ep_cn1", clinician="c-1"),
        Client(clinic="north-01", mrn="CN2", episode="ep_cn2", clinician="c-1"),
        Client(clinic="north-01", mrn="CN3", episode="ep_cn3", clinician="c-2"),
        Client(clinic="south-01", mrn="CS1", episode="ep_cs1", clinician="c-1"),
    ]
    records = [encode(c.phq9(f"q-{c.episode}", item9=1, at=week(i))) for i, c in enumerate(clients)]
    await produce(namespace.settings.kafka_bootstrap_servers, namespace.topic(Topics.MEASURES), records)
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as http:
        everything = await _wait_for(http, 4)

        def episodes(r: httpx.Response) -> set[str]:
            assert r.status_code == 200, r.text
            return {a["episode_id"] for a in r.json()["items"]}

        by_clinician = {(a["clinic_id"], a["clinician_id"]) for a in everything}
        assert by_clinician == {("north-01", "c-1"), ("north-01", "c-2"), ("south-01", "c-1")}
        r = await http.get("/v1/alerts", headers=LEAD_NORTH, params={"clinician_id": "c-1"})
        assert episodes(r) == {clients[0].episode, clients[1].episode}
        r = await http.get("/v1/alerts", headers=LEAD_NORTH, params={"clinician_id": "c-2", "status": "open"})
        assert episodes(r) == {clients[2].episode}
        r = await http.get("/v1/alerts", headers=ADMIN, params={"clinician_id": "c-1"})
        assert episodes(r) == {clients[0].episode, clients[1].episode, clients[3].episode}
        r = await http.get(
            "/v1/alerts", headers=ADMIN, params={"clinician_id": "c-1", "clinic_id": "south-01"}
        )
        assert episodes(r) == {clients[3].episode}
        assert (
            episodes(await http.get("/v1/alerts", headers=LEAD_NORTH, params={"clinician_id": "c-9"}))
            == set()
        )
        r = await http.get(
            "/v1/alerts", headers=LEAD_NORTH, params={"clinician_id": "c-1", "clinic_id": "south-01"}
        )
        assert r.status_code == 403
        r = await http.get("/v1/alerts", headers=LEAD_NORTH, params={"clinician_id": "c" * 65})
        assert r.status_code == 422

    audit = [d async for d in mongo[namespace.db("alerts")]["audit"].find({"who": "lead-north"})]
    asked = [(d["outcome"], d["query"].get("clinician_id")) for d in audit]
    assert sorted(asked) == sorted([("ok", "c-1"), ("ok", "c-2"), ("ok", "c-9"), ("forbidden", "c-1")])


async def test_escalation_deadline_follows_the_clinics_own_sla(namespace, mongo, tmp_path) -> None:
    """`escalation_due_at`: raised_at + the clinic's SLA for the severity (north-01: urgent in 30 min;
    south-01: the default hour); null once acknowledged. The console's countdown reads it."""
    thresholds = tmp_path / "thresholds.json"
    thresholds.write_text(json.dumps({"clinics": {"north-01": {"sla_urgent_hours": 0.5}}}))
    proc = ServiceProcess(
        "alerts",
        {**namespace.env, "ATTUNE_ALERTS_THRESHOLDS_FILE": str(thresholds)},
        namespace.logs / "alerts-sla.log",
    ).start()
    try:
        await asyncio.to_thread(proc.wait_ready)
        await _seed(namespace)
        async with httpx.AsyncClient(base_url=proc.url, timeout=10) as http:
            items = await _wait_for(http, 5)
            minutes = {"north-01": 30, "south-01": 60}
            for a in items:
                assert a["severity"] == "urgent" and a["status"] == "open"
                due = datetime.fromisoformat(a["escalation_due_at"])
                assert due - datetime.fromisoformat(a["raised_at"]) == timedelta(
                    minutes=minutes[a["clinic_id"]]
                )
            north = next(a for a in items if a["clinic_id"] == "north-01")
            r = await http.get(f"/v1/alerts/{north['alert_id']}", headers=LEAD_NORTH)
            assert r.json()["escalation_due_at"] == north["escalation_due_at"]
            r = await http.post(f"/v1/alerts/{north['alert_id']}/acknowledge", headers=LEAD_NORTH, json={})
            assert r.status_code == 200 and r.json()["escalation_due_at"] is None
    finally:
        assert proc.stop() == 0, proc.tail()
