"""POST /v1/ehr/events on a running intake (contract section 3)."""

from __future__ import annotations

import json

import httpx
import pytest

from attune_shared.topics import Topics
from tests.support.ehr import BASE, Ehr
from tests.support.kafka_io import read_all, wait_drained
from tests.support.procs import ServiceProcess

NORTH = {"Authorization": "Bearer dev-ehr-north"}


@pytest.fixture
def intake(namespace):
    proc = ServiceProcess("intake", namespace.env, namespace.logs / "intake.log").start()
    proc.wait_ready()
    yield proc
    assert proc.stop() == 0, proc.tail()


def test_http_ingestion_status_codes_and_results(intake, namespace) -> None:
    ehr = Ehr(source="ehr-north")
    good = [ehr.referred("north-01", f"MRNH{i}", BASE) for i in range(3)]
    bad = dict(good[0], event_id="ehr-north:bad", event_type="client.teleported")
    url = f"{intake.url}/v1/ehr/events"

    r = httpx.post(url, json={"events": [*good, bad]}, headers=NORTH)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 3 and body["duplicates"] == 0
    assert body["rejected"] == [
        {
            "index": 3,
            "event_id": "ehr-north:bad",
            "code": "unknown_event_type",
            "message": body["rejected"][0]["message"],
        }
    ]

    # One envelope alone is accepted too.
    single = ehr.referred("north-02", "MRNH9", BASE)
    assert httpx.post(url, json=single, headers=NORTH).json()["accepted"] == 1

    assert httpx.post(url, content=b"{not json", headers=NORTH).status_code == 400
    assert httpx.post(url, content=b"x" * (1024 * 1024 + 1), headers=NORTH).status_code == 413
    assert httpx.post(url, json=good[0]).status_code == 401
    assert httpx.post(url, json=good[0], headers={"Authorization": "Bearer nope"}).status_code == 401
    other_clinic = ehr.referred("south-01", "MRNH5", BASE)
    assert httpx.post(url, json=other_clinic, headers=NORTH).status_code == 403
    other_source = dict(good[1], source="ehr-south", event_id="ehr-south:1")
    assert httpx.post(url, json=other_source, headers=NORTH).status_code == 403
    assert httpx.post(url, json=good[0], headers={"Authorization": "Bearer dev-ops"}).status_code == 403


async def test_accepted_events_are_durable_and_duplicates_counted(intake, namespace) -> None:
    ehr = Ehr(source="ehr-north")
    events = [ehr.referred("north-01", f"MRND{i}", BASE) for i in range(5)]
    url = f"{intake.url}/v1/ehr/events"
    async with httpx.AsyncClient() as client:
        first = (await client.post(url, json={"events": events}, headers=NORTH)).json()
        # Accepted means on the inbound topic already.
        inbound = await read_all(
            namespace.settings.kafka_bootstrap_servers, namespace.topic(Topics.EHR_EVENTS)
        )
        assert {json.loads(r.value)["event_id"] for r in inbound} == {e["event_id"] for e in events}
        assert {r.key for r in inbound} == {f"north-01:MRND{i}".encode() for i in range(5)}
        await wait_drained(
            namespace.settings,
            namespace.settings.group("attune-intake"),
            [namespace.topic(Topics.EHR_EVENTS)],
        )
        again = (await client.post(url, json={"events": events}, headers=NORTH)).json()
    assert first["accepted"] == 5 and again == {"accepted": 0, "duplicates": 5, "rejected": []}
    await wait_drained(
        namespace.settings, namespace.settings.group("attune-intake"), [namespace.topic(Topics.EHR_EVENTS)]
    )
    care = await read_all(namespace.settings.kafka_bootstrap_servers, namespace.topic(Topics.CARE))
    referred = [r for r in care if json.loads(r.value)["event_type"] == "client.referred"]
    assert len(referred) == 5  # the resent copies had no effect


def test_rejected_http_events_are_dead_lettered(intake, namespace, mongo) -> None:
    import asyncio

    ehr = Ehr(source="ehr-north")
    bad = dict(ehr.referred("north-01", "MRNQ", BASE), schema_version=7)
    r = httpx.post(f"{intake.url}/v1/ehr/events", json=bad, headers=NORTH)
    assert r.json()["rejected"][0]["code"] == "unsupported_version"
    dlq = asyncio.run(read_all(namespace.settings.kafka_bootstrap_servers, namespace.topic(Topics.EHR_DLQ)))
    assert [json.loads(d.value)["error"]["code"] for d in dlq] == ["unsupported_version"]
    assert json.loads(dlq[0].value)["origin"]["topic"] == "http"


async def test_dead_letters_can_be_listed_and_replayed_by_admin_only(intake, namespace) -> None:
    import os
    import subprocess
    import sys

    from tests.support.kafka_io import produce

    bootstrap = namespace.settings.kafka_bootstrap_servers
    await produce(bootstrap, namespace.topic(Topics.EHR_EVENTS), [(b"north-01:MRNZ", b"{broken")])
    await wait_drained(
        namespace.settings, namespace.settings.group("attune-intake"), [namespace.topic(Topics.EHR_EVENTS)]
    )
    url = f"{intake.url}/v1/admin/dead-letters"
    assert httpx.get(url, headers={"Authorization": "Bearer dev-lead-north"}).status_code == 403
    assert httpx.get(url).status_code == 401
    listed = httpx.get(url, headers={"Authorization": "Bearer dev-admin"}).json()
    assert listed["counts_by_code"] == {"invalid_json": 1}
    [letter] = listed["dead_letters"]
    assert letter["raw"] == "{broken" and letter["origin"]["key"] == "north-01:MRNZ"

    env = {**os.environ, "ATTUNE_INTAKE_URL": intake.url, "ATTUNE_ADMIN_TOKEN": "dev-admin"}
    cli = [sys.executable, "-m", "attune_cli", "dlq"]
    out = subprocess.run([*cli, "list"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "invalid_json=1" in out.stdout, out.stdout + out.stderr
    out = subprocess.run(
        [*cli, "replay", "--code", "invalid_json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "re-driven: 1" in out.stdout, out.stdout + out.stderr
    await wait_drained(
        namespace.settings, namespace.settings.group("attune-intake"), [namespace.topic(Topics.EHR_EVENTS)]
    )
    # Still broken, so it is dead-lettered again (a new letter); the first one is marked replayed.
    after = httpx.get(
        url, params={"include_replayed": True}, headers={"Authorization": "Bearer dev-admin"}
    ).json()
    assert len(after["dead_letters"]) == 2
    assert sum(1 for d in after["dead_letters"] if d["replayed_at"]) == 1
