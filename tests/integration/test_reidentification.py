"""The one re-identification door (contract section 6): GET /v1/clients/{client_ref} on a running intake."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx
import pytest

from attune_shared.ids import EPISODE_REF_PATTERN, client_ref
from attune_shared.topics import Topics
from tests.support.ehr import BASE, Ehr
from tests.support.kafka_io import wait_drained
from tests.support.procs import ServiceProcess

EHR_NORTH = {"Authorization": "Bearer dev-ehr-north"}
EHR_SOUTH = {"Authorization": "Bearer dev-ehr-south"}
LEAD_NORTH = {"Authorization": "Bearer dev-lead-north"}
ADMIN = {"Authorization": "Bearer dev-admin"}
OPS = {"Authorization": "Bearer dev-ops"}
REASON = "contacting the client after a missed safety follow-up"


@pytest.fixture
def intake(namespace):
    proc = ServiceProcess("intake", namespace.env, namespace.logs / "intake.log").start()
    proc.wait_ready()
    yield proc
    assert proc.stop() == 0, proc.tail()


async def test_a_lead_learns_who_a_client_is_and_every_call_is_audited(intake, namespace) -> None:
    north, south = Ehr(source="ehr-north"), Ehr(source="ehr-south")
    events = [
        north.referred("north-01", "MRN-REID-1", BASE),
        north.scheduled("north-01", "MRN-REID-1", BASE, appt="APT-MRN-REID-1-001"),
    ]
    url = f"{intake.url}/v1/ehr/events"
    assert httpx.post(url, json={"events": events}, headers=EHR_NORTH).status_code == 202
    assert (
        httpx.post(url, json=south.referred("south-01", "MRN-REID-2", BASE), headers=EHR_SOUTH).status_code
        == 202
    )
    await wait_drained(
        namespace.settings, namespace.settings.group("attune-intake"), [namespace.topic(Topics.EHR_EVENTS)]
    )
    key = namespace.settings.pseudonym_key
    mine, theirs = client_ref(key, "north-01", "MRN-REID-1"), client_ref(key, "south-01", "MRN-REID-2")
    unknown = client_ref(key, "north-01", "MRN-NEVER-SEEN")

    r = httpx.get(f"{intake.url}/v1/clients/{mine}", params={"reason": REASON}, headers=LEAD_NORTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mrn"] == "MRN-REID-1" and body["clinic_id"] == "north-01" and body["client_ref"] == mine
    assert [e["status"] for e in body["episodes"]] == ["open"]
    assert re.fullmatch(EPISODE_REF_PATTERN, body["episodes"][0]["episode_id"])
    assert r.headers["cache-control"] == "no-store"

    # Another clinic's client and an unknown one look the same: 404, so pseudonyms do not leak.
    for ref in (theirs, unknown):
        r = httpx.get(f"{intake.url}/v1/clients/{ref}", params={"reason": REASON}, headers=LEAD_NORTH)
        assert r.status_code == 404 and "MRN" not in r.text
    # An admin sees every clinic.
    r = httpx.get(f"{intake.url}/v1/clients/{theirs}", params={"reason": REASON}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["mrn"] == "MRN-REID-2"

    # No reason, an empty one, other roles, no token: nothing revealed.
    assert httpx.get(f"{intake.url}/v1/clients/{mine}", headers=LEAD_NORTH).status_code == 422
    blank = httpx.get(f"{intake.url}/v1/clients/{mine}", params={"reason": "      "}, headers=LEAD_NORTH)
    assert blank.status_code == 422
    for headers in (OPS, EHR_NORTH):
        r = httpx.get(f"{intake.url}/v1/clients/{mine}", params={"reason": REASON}, headers=headers)
        assert r.status_code == 403
    assert httpx.get(f"{intake.url}/v1/clients/{mine}", params={"reason": REASON}).status_code == 401

    # The audit: who, which client, when, why, and the outcome of each call that reached the door.
    audit = httpx.get(f"{intake.url}/v1/admin/reidentifications", headers=ADMIN)
    assert audit.status_code == 200, audit.text
    rows = audit.json()["items"]
    seen = sorted((r["who"], r["client_ref"], r["outcome"]) for r in rows)
    assert seen == sorted(
        [
            ("lead-north", mine, "ok"),
            ("lead-north", theirs, "not_found"),
            ("lead-north", unknown, "not_found"),
            ("admin", theirs, "ok"),
        ]
    )
    assert {r["reason"] for r in rows} == {REASON}
    assert all(r["at"] for r in rows)
    # The audit holds no MRN, and only an admin reads it.
    assert "MRN-REID" not in audit.text
    assert httpx.get(f"{intake.url}/v1/admin/reidentifications", headers=LEAD_NORTH).status_code == 403

    # `attune audit list` shows the same rows.
    listed = subprocess.run(
        [sys.executable, "-m", "attune_cli", "audit", "list", "--client-ref", mine],
        env={**os.environ, **namespace.env, "ATTUNE_INTAKE_URL": intake.url, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert mine in listed.stdout and "lead-north" in listed.stdout and "1 row(s)" in listed.stdout
