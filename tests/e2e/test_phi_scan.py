"""PHI stays in intake (contract section 6), checked on the whole stack as real processes.

A simulated network whose EHR builds its ids from the MRN (`APT-MRN100075-001`, `QR-MRN100043-0008`,
as real EHRs often do) runs through the four services. Then everything that lies beyond intake is
read: every topic but the inbound one and its dead letters, every collection of every database but
intake's (the audit trails of alerts and measures among them), every log line of every service
(intake's included: logs leave the PHI zone), every API answer a lead or an ops token gets from alerts
and reporting, every answer of measures' read API (each clinician's caseload and the series of every
episode a caseload or an alert names, asked by each lead, an admin and ops), and every service's
/metrics. No MRN and no identifier the EHR made (event, appointment and response ids) may appear
anywhere. The scan shows it can fail: a known MRN or EHR id put into the measures answers and audit
rows it read is found.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from attune_cli.pipeline_state import drained_lags
from attune_cli.simulator.generate import generate
from attune_cli.simulator.model import SimConfig
from attune_cli.simulator.publish import publish
from attune_shared.kafka_admin import ensure_topics
from attune_shared.settings import ServiceSettings
from attune_shared.topics import Topics
from tests.support.kafka_io import read_all
from tests.support.procs import start_stack, stop_stack

TOKEN = re.compile(r"[A-Za-z0-9_.:\-]+")
PART = re.compile(r"[A-Za-z0-9]+")
LEADS_AND_OPS = ("dev-lead-north", "dev-lead-south", "dev-ops")
# measures' API is for leads and admins: an admin sees every clinic, so every episode; ops is refused.
MEASURES_READERS = ("dev-lead-north", "dev-lead-south", "dev-admin", "dev-ops")


def _sent(records: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """The records the EHR sent that are JSON objects (the simulator sends a few malformed ones too)."""
    for rec in records:
        try:
            doc = json.loads(rec.value)
        except ValueError:
            continue
        if isinstance(doc, dict):
            yield doc


def ehr_identifiers(records: Iterable[Any]) -> tuple[set[str], set[str]]:
    """The MRNs and the EHR-made ids (event, appointment, response) in the records the EHR sent."""
    mrns: set[str] = set()
    ids: set[str] = set()
    for doc in _sent(records):
        if isinstance(doc.get("event_id"), str):
            ids.add(doc["event_id"])
        payload = doc.get("payload")
        if isinstance(payload, dict):
            if isinstance(payload.get("mrn"), str):
                mrns.add(payload["mrn"])
            for field in ("appointment_id", "response_id"):
                if isinstance(payload.get(field), str):
                    ids.add(payload[field])
    return mrns, ids


def clinicians(records: Iterable[Any]) -> set[str]:
    """Every clinician the EHR named (staff ids, which pass beyond intake)."""
    out: set[str] = set()
    for doc in _sent(records):
        payload = doc.get("payload")
        if isinstance(payload, dict) and isinstance(payload.get("clinician_id"), str):
            out.add(payload["clinician_id"])
    return out


class Scanner:
    """Counts, per place, the texts that hold an MRN or an EHR id (whole, or an MRN inside a longer id)."""

    def __init__(self, mrns: set[str], ids: set[str]) -> None:
        self.mrns, self.ids = mrns, ids
        self.hits: Counter[str] = Counter()
        self.scanned: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    def found(self, text: str) -> str | None:
        for token in set(TOKEN.findall(text)):
            if token in self.ids or token in self.mrns:
                return token
            for part in PART.findall(token):
                if part in self.mrns:
                    return token
        return None

    def scan(self, place: str, texts: Iterable[str]) -> None:
        self.hits.setdefault(place, 0)
        for text in texts:
            self.scanned[place] += 1
            hit = self.found(text)
            if hit is not None:
                self.hits[place] += 1
                self.examples.setdefault(place, f"{hit!r} in {text[:300]!r}")

    def table(self) -> str:
        rows = [f"{'place':<58} {'scanned':>8} {'hits':>6}"]
        rows += [f"{p:<58} {self.scanned[p]:>8} {self.hits[p]:>6}" for p in sorted(self.hits)]
        return "\n".join(rows)


def _pages(base: str, token: str) -> Iterator[dict[str, Any]]:
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        r = httpx.get(f"{base}/v1/alerts", params=params, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code in (200, 403), r.text
        if r.status_code == 403:
            return
        yield {"text": r.text, "json": r.json()}
        cursor = r.json().get("next_cursor")
        if not cursor:
            return


def api_answers(
    procs: dict[str, Any], clinics: list[str], first: str, last: str
) -> Iterator[tuple[str, str]]:
    """(place, body) of every answer a lead or ops token gets from the alerts and reporting APIs."""
    alerts, reporting = procs["alerts"].url, procs["reporting"].url
    for token in LEADS_AND_OPS:
        auth = {"Authorization": f"Bearer {token}"}
        for page in _pages(alerts, token):
            yield f"api alerts list ({token})", page["text"]
            for item in page["json"]["items"]:
                one = httpx.get(f"{alerts}/v1/alerts/{item['alert_id']}", headers=auth)
                yield f"api alert detail ({token})", one.text
        reports = [("network", "/v1/reports/network", ("clinic", "modality", "month"))]
        reports += [
            ("clinic", f"/v1/reports/clinics/{c}", ("month", "clinician", "modality")) for c in clinics
        ]
        for kind, path, bys in reports:
            for by in bys:
                for fmt in ("json", "csv"):
                    params = {"from": first, "to": last, "by": by, "format": fmt}
                    r = httpx.get(f"{reporting}{path}", params=params, headers=auth)
                    yield f"api {kind} report ({token})", r.text


def measures_answers(
    base: str, staff: Iterable[str], episodes: Iterable[str]
) -> Iterator[tuple[str, httpx.Response]]:
    """(place, answer) of measures' read API for every reader: the caseload of every clinician, then the
    series of every episode given (alerts') or named by a caseload (200 in the reader's clinics, else 404;
    403 for ops)."""
    found = set(episodes)
    for token in MEASURES_READERS:
        auth = {"Authorization": f"Bearer {token}"}
        for clinician in sorted(staff):
            r = httpx.get(f"{base}/v1/clinicians/{clinician}/caseload", params={"limit": 500}, headers=auth)
            assert r.status_code in (200, 403), r.text
            if r.status_code == 200:
                assert not r.json()["truncated"], r.text[:300]
                found.update(item["episode_id"] for item in r.json()["items"])
            yield f"api measures caseload ({token})", r
    for token in MEASURES_READERS:
        auth = {"Authorization": f"Bearer {token}"}
        for episode in sorted(found):
            r = httpx.get(f"{base}/v1/episodes/{episode}/series", headers=auth)
            assert r.status_code in (200, 403, 404), r.text
            yield f"api measures series ({token})", r


def metrics_answers(procs: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(place, body) of every service's /metrics."""
    for name, proc in procs.items():
        yield f"metrics {name}", httpx.get(f"{proc.url}/metrics").text


async def _wait_drained(settings: ServiceSettings, timeout: float = 300) -> None:
    started, quiet = time.monotonic(), 0
    while time.monotonic() - started < timeout:
        lags = await drained_lags(settings)
        quiet = quiet + 1 if sum(lags.values()) == 0 else 0
        if quiet >= 3:
            return
        await asyncio.sleep(2)
    raise AssertionError(f"the pipeline did not drain within {timeout}s: {lags}")


async def _topic_texts(settings: ServiceSettings) -> dict[str, list[str]]:
    out = {}
    for name in (Topics.CARE, Topics.MEASURES, Topics.ALERTS, Topics.MEASURES_DLQ):
        records = await read_all(settings.kafka_bootstrap_servers, settings.topic(name))
        out[name] = [
            (r.key or b"").decode("utf-8", "replace") + " " + (r.value or b"").decode("utf-8", "replace")
            for r in records
        ]
    return out


async def _database_texts(settings: ServiceSettings, prefix: str) -> dict[str, list[str]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri.get_secret_value())
    out: dict[str, list[str]] = {}
    try:
        for db_name in await client.list_database_names():
            if not db_name.startswith(prefix) or db_name.endswith("attune_intake"):
                continue
            db = client[db_name]
            for coll in await db.list_collection_names():
                docs = await db[coll].find({}).to_list()
                out[f"{db_name.removeprefix(prefix)}.{coll}"] = [json.dumps(d, default=str) for d in docs]
    finally:
        await client.close()
    return out


def test_no_mrn_and_no_ehr_identifier_beyond_intake(tmp_path: Path) -> None:
    prefix = f"phi{uuid.uuid4().hex[:6]}_"
    settings = ServiceSettings(attune_name_prefix=prefix)
    asyncio.run(ensure_topics(settings))
    scenario = generate(SimConfig(clinics=3, clients=60, weeks=12, seed=11))
    mrns, ids = ehr_identifiers(scenario.records)
    # The EHR under test builds its ids from the MRN, the case that leaked before.
    assert len(mrns) >= 60 and any("MRN" in i for i in ids)

    env = {
        "ATTUNE_NAME_PREFIX": prefix,
        "ATTUNE_ALERTS_CLOCK": "event",
        "ATTUNE_ALERTS_SWEEP_SECONDS": "2",
        "ATTUNE_LOG_FORMAT": "json",
        "ATTUNE_LOG_LEVEL": "debug",
        "ATTUNE_BATCH_TIMEOUT_MS": "50",
    }
    logs = tmp_path / "logs"
    procs = start_stack({**os.environ, **env}, logs)
    try:
        asyncio.run(
            publish(
                scenario,
                via="kafka",
                bootstrap=settings.kafka_bootstrap_servers,
                topic=settings.topic(Topics.EHR_EVENTS),
            )
        )
        asyncio.run(_wait_drained(settings))
        time.sleep(5)  # one more sweep and one more materialization after the last record
        scanner = Scanner(mrns, ids)
        clinics = sorted({json.loads(r.value)["clinic_id"] for r in scenario.records if r.event_type})
        first = scenario.config.start.strftime("%Y-%m")
        last = scenario.config.as_of.strftime("%Y-%m")
        answers: dict[str, list[str]] = {}
        for place, body in api_answers(procs, clinics, first, last):
            answers.setdefault(place, []).append(body)
        alerted = {
            item["episode_id"]
            for place, bodies in answers.items()
            if place.startswith("api alerts list")
            for body in bodies
            for item in json.loads(body)["items"]
        }
        statuses: Counter[tuple[str, int]] = Counter()
        charted: dict[str, set[str]] = {}  # the episodes each reader got a series of
        for place, r in measures_answers(procs["measures"].url, clinicians(scenario.records), alerted):
            answers.setdefault(place, []).append(r.text)
            statuses[place, r.status_code] += 1
            if r.status_code == 200 and "series" in place:
                charted.setdefault(place, set()).add(r.json()["episode_id"])
        for place, body in metrics_answers(procs):
            answers.setdefault(place, []).append(body)
        for place, bodies in answers.items():
            scanner.scan(place, bodies)
        for topic, texts in asyncio.run(_topic_texts(settings)).items():
            scanner.scan(f"topic {topic}", texts)
        databases = asyncio.run(_database_texts(settings, prefix))
        for coll, texts in databases.items():
            scanner.scan(f"db {coll}", texts)
    finally:
        stop_stack(procs)
    for log in sorted(logs.glob("*.log")):
        scanner.scan(f"log {log.stem}", log.read_text(errors="replace").splitlines())
    print("\nPHI scan, hits per place:\n" + scanner.table())

    assert scanner.scanned[f"topic {Topics.CARE}"] > 1000 and scanner.scanned[f"topic {Topics.ALERTS}"] > 0
    assert any(p.startswith("db ") for p in scanner.scanned) and scanner.scanned["log intake"] > 0
    assert scanner.scanned["api alert detail (dev-lead-north)"] > 0
    assert all('"escalation_due_at"' in b for b in answers["api alerts list (dev-lead-north)"])
    # measures' answers cover what it holds: the admin read every episode with a scored response, each
    # lead its own clinic's (and got 404 for the others'), ops was refused; every read was audited.
    held = {json.loads(t)["episode_id"] for t in databases["attune_measures.responses"]}
    assert len(held) >= 50 and charted["api measures series (dev-admin)"] == held, statuses
    for lead in ("dev-lead-north", "dev-lead-south"):
        assert statuses[f"api measures series ({lead})", 200] > 0, statuses
        assert statuses[f"api measures series ({lead})", 404] > 0, statuses
        assert statuses[f"api measures caseload ({lead})", 200] == len(clinicians(scenario.records))
    assert not any(code != 403 for place, code in statuses if place.endswith("(dev-ops)")), statuses
    assert len(databases["attune_measures.audit"]) == sum(statuses.values())
    assert sum(scanner.hits.values()) == 0, scanner.examples

    # The scan can fail: an MRN, an EHR id built from one, and an MRN inside a longer token, put into a
    # series, a caseload and an audit row it read, are each found.
    mrn, ehr_id = sorted(mrns)[0], sorted(i for i in ids if "MRN" in i)[0]
    series = next(json.loads(b) for b in answers["api measures series (dev-admin)"] if '"series"' in b)
    caseload = next(
        json.loads(b) for b in answers["api measures caseload (dev-admin)"] if '"episode_id"' in b
    )
    audit_row = json.loads(databases["attune_measures.audit"][0])
    series["client_ref"] = mrn
    caseload["items"][0]["episode_id"] = ehr_id
    audit_row["episode_id"] = f"ep_{mrn}"
    probe = Scanner(mrns, ids)
    probe.scan("injected", [json.dumps(d) for d in (series, caseload, audit_row)])
    assert probe.hits["injected"] == 3, probe.examples
