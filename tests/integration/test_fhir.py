"""POST /fhir/r4 on a running intake against real Kafka and the store (contract: "FHIR R4 ingestion")."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from attune_shared.topics import Topics
from tests.support.kafka_io import read_all, wait_drained
from tests.support.procs import ServiceProcess

NORTH = {"Authorization": "Bearer dev-ehr-north", "Content-Type": "application/fhir+json"}
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fhir"
VALID = (
    "patient-example",
    "episodeofcare-example",
    "appointment-example",
    "encounter-example",
    "questionnaireresponse-phq9-lhcforms",
)


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def bundle(*resources: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {
                "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for i, r in enumerate(resources)
        ],
    }


async def _topics_visible(namespace) -> None:
    """A fresh broker can list new topics a moment after creating them; intake checks at start."""
    from attune_shared.kafka_admin import missing_topics

    for _ in range(100):
        if not await missing_topics(namespace.settings):
            return
        await asyncio.sleep(0.2)


@pytest.fixture
def intake(namespace, tmp_path):
    asyncio.run(_topics_visible(namespace))
    config = tmp_path / "fhir.json"
    config.write_text(json.dumps({"sources": {"ehr-north": {"clinics": {"Organization/1": "north-01"}}}}))
    env = {**namespace.env, "ATTUNE_FHIR_CONFIG": str(config)}
    proc = ServiceProcess("intake", env, namespace.logs / "intake.log").start()
    proc.wait_ready()
    yield proc
    assert proc.stop() == 0, proc.tail()


async def _drained(namespace) -> None:
    await wait_drained(
        namespace.settings, namespace.settings.group("attune-intake"), [namespace.topic(Topics.EHR_EVENTS)]
    )


async def test_a_bundle_becomes_envelopes_canonical_events_and_a_dead_letter(intake, namespace) -> None:
    url = f"{intake.url}/fhir/r4"
    bootstrap = namespace.settings.kafka_bootstrap_servers
    sent = bundle(*(fixture(n) for n in VALID), fixture("invalid-qr-out-of-range"))
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(url, content=json.dumps(sent), headers=NORTH)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/fhir+json")
        answer = r.json()
        assert answer["resourceType"] == "Bundle" and answer["type"] == "batch-response"
        statuses = [e["response"]["status"] for e in answer["entry"]]
        assert statuses == ["200 OK"] + ["201 Created"] * 4 + ["422 Unprocessable Entity"]
        issue = answer["entry"][5]["response"]["outcome"]["issue"][0]
        assert issue["expression"] == ["QuestionnaireResponse.item[8].answer[0]"]
        for phi in ("12345", "phq9-example", "Chalmers"):
            assert phi not in r.text

        # Answered means on the inbound topic, keyed clinic_id:mrn like any envelope.
        inbound = await read_all(bootstrap, namespace.topic(Topics.EHR_EVENTS))
        envelopes = [json.loads(x.value) for x in inbound]
        assert [e["event_type"] for e in envelopes] == [
            "client.referred",
            "appointment.scheduled",
            "session.attended",
            "questionnaire.completed",
        ]
        assert {x.key for x in inbound} == {b"north-01:12345"}
        assert envelopes[3]["event_id"] == "fhir:QuestionnaireResponse/phq9-example/_history/1"
        assert envelopes[3]["payload"]["items"] == [1, 2, 0, 3, 1, 0, 2, 0, 0, 1]
        assert envelopes[3]["payload"]["appointment_id"] == "example"

        dlq = await read_all(bootstrap, namespace.topic(Topics.EHR_DLQ))
        letters = [json.loads(d.value) for d in dlq]
        assert [d["error"]["code"] for d in letters] == ["fhir_unusable"]
        assert letters[0]["submitted_by"] == {"name": "ehr-north", "role": "ehr"}
        # A FHIR resource is not an envelope: replaying it onto ehr.events.v1 is refused, saying why.
        admin = {"Authorization": "Bearer dev-admin"}
        for ask in ({"code": "fhir_unusable"}, {"dlq_ids": [letters[0]["dlq_id"]], "dry_run": True}):
            refused = await client.post(f"{intake.url}/v1/admin/dead-letters/replay", json=ask, headers=admin)
            assert refused.status_code == 422 and "new version" in refused.text, refused.text

        await _drained(namespace)
        care = await read_all(bootstrap, namespace.topic(Topics.CARE))
        types = [json.loads(x.value)["event_type"] for x in care]
        assert types.count("session.attended") == 1 and "episode.opened" in types
        refs = {json.loads(x.value)["client_ref"] for x in care}
        assert len(refs) == 1
        # The answer names no pseudonym (a client_ref beside the MRN sent would re-identify).
        assert refs.pop() not in json.dumps(answer) and "cr_" not in json.dumps(answer)
        for x in care:  # no MRN and no EHR-made id leaves intake
            assert b"12345" not in x.value and b"example" not in x.value

        # The same bundle again: nothing new is published.
        again = await client.post(url, content=json.dumps(sent), headers=NORTH)
        assert [e["response"]["status"] for e in again.json()["entry"]][:5] == ["200 OK"] * 5
        assert len(await read_all(bootstrap, namespace.topic(Topics.EHR_EVENTS))) == 4

        # A later bundle refers to what intake already knows (Patient, Encounter -> Appointment).
        gad = fixture("questionnaireresponse-gad7-ordinal") | {
            "encounter": {"reference": "Encounter/example"}
        }
        later = await client.post(url, content=json.dumps(gad), headers=NORTH)
        assert later.json()["entry"][0]["response"]["status"] == "201 Created", later.text
        inbound = await read_all(bootstrap, namespace.topic(Topics.EHR_EVENTS))
        last = json.loads(inbound[-1].value)
        assert last["payload"]["instrument"] == "GAD-7" and last["payload"]["appointment_id"] == "example"
        assert last["payload"]["mrn"] == "12345"

    # intake's own log names neither the MRN nor any id the EHR made.
    log = (namespace.logs / "intake.log").read_text()
    assert "fhir_received" in log
    for phi in ("12345", "phq9-example", "gad7-example", "fhir:", "Patient/example"):
        assert phi not in log


def test_metadata_and_request_errors(intake) -> None:
    url = f"{intake.url}/fhir/r4"
    cap = httpx.get(f"{url}/metadata", headers=NORTH)
    assert cap.status_code == 200 and cap.json()["resourceType"] == "CapabilityStatement"
    assert {r["type"] for r in cap.json()["rest"][0]["resource"]} == {
        "Patient",
        "EpisodeOfCare",
        "Appointment",
        "Encounter",
        "QuestionnaireResponse",
    }
    assert httpx.get(f"{url}/metadata").status_code == 401
    assert httpx.post(url, content=b"{}", headers={"Authorization": "Bearer dev-ops"}).status_code == 403
    assert httpx.post(url, content=b"{nope", headers=NORTH).status_code == 400
    searchset = httpx.post(url, content=json.dumps(bundle(kind="searchset")), headers=NORTH)
    assert searchset.status_code == 400
    assert searchset.json()["issue"][0]["expression"] == ["Bundle.type"]
