"""Intake's HTTP edge on a running intake (issue 22): one bad event never costs a batch, the token's
scope applies to invalid events too, dead letters name who sent them, and a replay needs a filter."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from attune_shared.topics import Topics
from tests.support.ehr import BASE, Ehr
from tests.support.kafka_io import read_all, wait_drained
from tests.support.procs import ServiceProcess

NORTH = {"Authorization": "Bearer dev-ehr-north"}
ADMIN = {"Authorization": "Bearer dev-admin"}


@pytest.fixture
async def intake(namespace) -> AsyncIterator[ServiceProcess]:
    import asyncio

    proc = ServiceProcess("intake", namespace.env, namespace.logs / "intake.log").start()
    try:
        await asyncio.to_thread(proc.wait_ready)
        yield proc
    finally:
        assert proc.stop() == 0, proc.tail()


async def _dead_letters(namespace) -> list[dict]:
    records = await read_all(namespace.settings.kafka_bootstrap_servers, namespace.topic(Topics.EHR_DLQ))
    return [json.loads(r.value) for r in records]


async def test_a_lone_surrogate_rejects_its_event_only(intake: ServiceProcess, namespace) -> None:
    ehr = Ehr(source="ehr-north")
    good = ehr.referred("north-01", "MRNS1", BASE)
    bad = ehr.referred("north-01", "MRNS2", BASE)
    text = json.dumps({"events": [good, bad]}).replace('"MRNS2"', '"MRN\\ud800"')
    async with httpx.AsyncClient(base_url=intake.url, timeout=30) as http:
        r = await http.post(
            "/v1/ehr/events", content=text, headers={**NORTH, "Content-Type": "application/json"}
        )
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["accepted"] == 1 and body["duplicates"] == 0
        assert [(x["index"], x["code"], x["event_id"]) for x in body["rejected"]] == [
            (1, "invalid_json", bad["event_id"])
        ]
        # A lone surrogate in the event_id itself: still an answer, not a 500.
        single = json.dumps(ehr.referred("north-01", "MRNS3", BASE)).replace(
            '"ehr-north:000003"', '"ehr-north:\\udfff"'
        )
        r = await http.post(
            "/v1/ehr/events", content=single, headers={**NORTH, "Content-Type": "application/json"}
        )
        assert r.status_code == 202, r.text
        assert r.json()["rejected"][0]["code"] == "invalid_json"
    inbound = await read_all(namespace.settings.kafka_bootstrap_servers, namespace.topic(Topics.EHR_EVENTS))
    assert [json.loads(x.value)["event_id"] for x in inbound] == [good["event_id"]]
    letters = await _dead_letters(namespace)
    assert [d["error"]["code"] for d in letters] == ["invalid_json", "invalid_json"]
    assert "MRN\\ud800" in letters[0]["raw"]  # kept as sent, escapes and all


INVALID = {
    "unknown type": {"event_type": "client.teleported"},
    "version 2": {"schema_version": 2},
    "extra field": {"colour": "blue"},
}


@pytest.mark.parametrize("change", list(INVALID))
async def test_invalid_events_for_another_clinic_or_source_are_403_and_not_kept(
    intake: ServiceProcess, namespace, change: str
) -> None:
    ehr = Ehr(source="ehr-north")
    south = {**ehr.referred("south-01", "MRNT1", BASE), **INVALID[change]}
    other_source = {**ehr.referred("north-01", "MRNT2", BASE), **INVALID[change], "source": "ehr-south"}
    missing_source = {k: v for k, v in ehr.referred("south-01", "MRNT3", BASE).items() if k != "source"}
    async with httpx.AsyncClient(base_url=intake.url, timeout=30) as http:
        for event in (south, other_source, missing_source):
            r = await http.post("/v1/ehr/events", json=event, headers=NORTH)
            assert r.status_code == 403, (event, r.text)
            ok = ehr.referred("north-01", "MRNT4", BASE)
            r = await http.post("/v1/ehr/events", json={"events": [ok, event]}, headers=NORTH)
            assert r.status_code == 403, r.text
        listed = (await http.get("/v1/admin/dead-letters", headers=ADMIN)).json()
    assert listed["dead_letters"] == []
    assert await _dead_letters(namespace) == []


async def test_dead_letters_from_http_name_the_submitting_token(intake: ServiceProcess, namespace) -> None:
    ehr = Ehr(source="ehr-north")
    bad = {**ehr.referred("north-01", "MRNU1", BASE), "schema_version": 2}
    no_source = {k: v for k, v in ehr.referred("north-01", "MRNU2", BASE).items() if k != "source"}
    async with httpx.AsyncClient(base_url=intake.url, timeout=30) as http:
        r = await http.post("/v1/ehr/events", json={"events": [bad, no_source]}, headers=NORTH)
        assert r.status_code == 202 and len(r.json()["rejected"]) == 2
        listed = (await http.get("/v1/admin/dead-letters", headers=ADMIN)).json()["dead_letters"]
    who = {"name": "ehr-north", "role": "ehr"}
    assert [d["submitted_by"] for d in listed] == [who, who]
    assert [d["submitted_by"] for d in await _dead_letters(namespace)] == [who, who]


async def test_a_replay_needs_a_filter_and_can_count_first(intake: ServiceProcess, namespace) -> None:
    import os
    import subprocess
    import sys

    ehr = Ehr(source="ehr-north")
    bad = [{**ehr.referred("north-01", f"MRNV{i}", BASE), "schema_version": 9} for i in range(3)]
    url = "/v1/admin/dead-letters/replay"
    async with httpx.AsyncClient(base_url=intake.url, timeout=30) as http:
        await http.post("/v1/ehr/events", json={"events": bad}, headers=NORTH)
        for body in ({}, {"limit": 5}, {"dlq_ids": []}, {"dry_run": True}, {"code": None}):
            r = await http.post(url, json=body, headers=ADMIN)
            assert r.status_code == 422, (body, r.text)
            assert "dlq_ids" in r.text
        r = await http.post(url, json={"code": "not_a_code"}, headers=ADMIN)
        assert r.status_code == 422
        r = await http.post(url, json={"code": "unsupported_version", "dry_run": True}, headers=ADMIN)
        assert r.status_code == 200, r.text
        assert r.json()["would_replay"] == 3 and r.json()["replayed"] == 0 and r.json()["dry_run"] is True
        unreplayed = (await http.get("/v1/admin/dead-letters", headers=ADMIN)).json()["dead_letters"]
        assert len(unreplayed) == 3  # a dry run re-drives nothing
        one = unreplayed[0]["dlq_id"]
        r = await http.post(url, json={"dlq_ids": [one]}, headers=ADMIN)
        assert r.json() == {"dry_run": False, "would_replay": 1, "replayed": 1, "dlq_ids": [one]}
    # Still version 9: re-consumed and dead-lettered again as a new letter (2 old + 1 new unreplayed).
    await wait_drained(
        namespace.settings, namespace.settings.group("attune-intake"), [namespace.topic(Topics.EHR_EVENTS)]
    )

    env = {**os.environ, "ATTUNE_INTAKE_URL": intake.url, "ATTUNE_ADMIN_TOKEN": "dev-admin"}
    cli = [sys.executable, "-m", "attune_cli", "dlq", "replay"]
    out = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0  # no filter
    out = subprocess.run(
        [*cli, "--code", "unsupported_version", "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "would re-drive: 3" in out.stdout and "re-driven" not in out.stdout, out
    out = subprocess.run(
        [*cli, "--code", "unsupported_version"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.index("would re-drive: 3") < out.stdout.index("re-driven: 3"), out.stdout
