"""Fuzzing every HTTP API with Schemathesis (issue 22), against the services as real processes.

One Schemathesis run per API and per role that may use it, from each service's own /openapi.json, with
every check (server errors, undocumented status codes and media types, response schemas, negative data
rejected, positive data accepted, missing and ignored auth, unsupported methods, and the stateful checks
over the links Schemathesis infers), every phase (examples, coverage, fuzzing, stateful), a fixed seed in
deterministic mode and a small example budget, so a run is repeatable and the whole file stays near a
minute or two on two cores.

Two allowances, both from the contract rather than from what the code happens to do:
- POST /v1/ehr/events answers 202 for events that break the envelope schema: each is dead-lettered and
  listed in `rejected` (contract section 3), so 202 counts as "rejecting" negative data there.
- 400 counts as a refusal of data the schema allows: some rules are not expressible in JSON Schema (a
  month range that runs backwards or too far, a paging cursor this API did not give out).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from attune_shared.topics import Topics
from tests.support.kafka_io import produce
from tests.support.procs import ServiceProcess, start_stack, stop_stack

MAX_EXAMPLES = 50
OPERATIONS = r"^/(healthz|readyz|metrics)$"

# (service, role's dev token, the paths that role may use)
RUNS = [
    ("intake", "dev-ehr-north", r"^/v1/ehr/"),
    ("intake", "dev-admin", r"^/v1/(admin|clients)/"),
    ("intake", "dev-lead-north", r"^/v1/clients/"),
    ("alerts", "dev-lead-north", r"^/v1/alerts"),
    ("alerts", "dev-admin", r"^/v1/alerts"),
    ("reporting", "dev-lead-north", r"^/v1/reports/"),
    ("reporting", "dev-ops", r"^/v1/reports/"),
    ("reporting", "dev-admin", r"^/v1/reports/"),
    ("measures", "dev-lead-north", r"^/v1/((episodes|clinicians)/|trajectories$)"),
    ("measures", "dev-ops", r"^/v1/trajectories$"),
    ("measures", "dev-admin", r"^/v1/((episodes|clinicians)/|trajectories$|admin/trajectories/)"),
]

CONFIG = """
[checks]
positive_data_acceptance.expected-statuses = ["2XX", "400", "401", "403", "404", "409", "5XX"]
"""
INGESTION = """
[[operations]]
include-name = "POST /v1/ehr/events"
checks.negative_data_rejection.expected-statuses = [202, 400, 401, 403, 404, 413, 422]
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServiceProcess]]:
    """The four services on an isolated name prefix, with a few alerts to read and change and an
    episode's scores to read."""
    import uuid

    from attune_shared.kafka_admin import ensure_topics
    from attune_shared.settings import ServiceSettings

    prefix = f"fz{uuid.uuid4().hex[:8]}_"
    settings = ServiceSettings(attune_name_prefix=prefix)
    asyncio.run(ensure_topics(settings))
    asyncio.run(_seed_alerts(settings))
    asyncio.run(_seed_responses(settings))
    env = {
        "ATTUNE_NAME_PREFIX": prefix,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "MONGODB_URI": settings.mongodb_uri.get_secret_value(),
        "ATTUNE_BATCH_TIMEOUT_MS": "50",
    }
    logs = tmp_path_factory.mktemp("fuzz-logs")
    procs = start_stack(env, logs, services=("intake", "measures", "alerts", "reporting"))
    try:
        yield procs
    finally:
        codes = stop_stack(procs)
        asyncio.run(_drop(settings, prefix))
        assert set(codes.values()) == {0}, {n: p.tail() for n, p in procs.items()}


async def _seed_alerts(settings) -> None:
    from tests.unit.alerts_service.builders import Client, encode, week

    clients = [Client(clinic="north-01", mrn=f"FZ{i}", episode=f"ep_fz{i}") for i in range(3)]
    clients.append(Client(clinic="south-01", mrn="FZS", episode="ep_fzs"))
    records = [encode(c.phq9(f"q-{c.episode}", item9=2, at=week(i))) for i, c in enumerate(clients)]
    await produce(settings.kafka_bootstrap_servers, settings.topic(Topics.MEASURES), records)


async def _seed_responses(settings) -> None:
    """Scores for measures to serve: the episode and clinician its OpenAPI document gives as examples
    (so the examples phase reads a real series and caseload), and one of south-01."""
    from datetime import UTC, datetime, timedelta

    from attune_shared.events import ResponseSubmitted
    from attune_shared.ids import client_ref, derived_id
    from tests.support.ids import as_episode, ev, rs

    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    answers = [("WAI-SR", [4] * 12), ("ORS", [5, 6, 5, 6]), ("PSQ", [1, 3, 4])]
    records = []
    for clinic, episode, weeks in (
        ("north-01", "ep_7K2QXW4M5N6P7Q2R3S4T5U6V7W", 4),
        ("south-01", "fz-south", 1),
    ):
        ref = client_ref(b"fuzz", clinic, f"FZ-{clinic}")
        for week_no in range(weeks):
            for instrument, items in answers:
                label = f"{episode}-{instrument}-{week_no}"
                event = ResponseSubmitted(
                    event_id=derived_id("fuzz", label),
                    occurred_at=start + timedelta(weeks=week_no),
                    source="ehr-fuzz",
                    source_event_id=ev(label),
                    clinic_id=clinic,
                    client_ref=ref,
                    episode_id=as_episode(episode),
                    response_id=rs(label),
                    status="completed",
                    instrument=instrument,  # type: ignore[arg-type]
                    respondent="client",
                    clinician_id="c-17",
                    items=items,
                )
                records.append((ref.encode(), event.model_dump_json().encode()))
    await produce(settings.kafka_bootstrap_servers, settings.topic(Topics.CARE), records)


async def _drop(settings, prefix: str) -> None:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_uri.get_secret_value())
    try:
        for name in await client.list_database_names():
            if name.startswith(prefix):
                await client.drop_database(name)
    finally:
        await client.close()


def _summary(text: str) -> dict[str, int]:
    """The figures of Schemathesis' closing summary ("Test cases: N generated, N passed ...")."""
    lines = text.splitlines()
    at = next((i for i, x in enumerate(lines) if x.strip().startswith("Test cases:")), None)
    if at is None:
        return {}
    tail = " ".join(lines[at : at + 2])
    return {what: int(n) for n, what in re.findall(r"(\d+) ([a-z]+)", tail)}


@pytest.mark.parametrize(("service", "token", "paths"), RUNS, ids=[f"{s}-{t[4:]}" for s, t, _ in RUNS])
def test_fuzz(stack: dict[str, ServiceProcess], tmp_path: Path, service: str, token: str, paths: str) -> None:
    config = tmp_path / "schemathesis.toml"
    extra = {"ehr": INGESTION}
    config.write_text(CONFIG + "".join(v for k, v in extra.items() if k in paths))
    url = stack[service].url
    started = time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "run",
            f"{url}/openapi.json",
            "--checks",
            "all",
            "--generation-deterministic",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--workers",
            "1",
            "--no-color",
            "--continue-on-failure",
            "--header",
            f"Authorization: Bearer {token}",
            "--include-path-regex",
            f"{paths}|{OPERATIONS}",
            "--request-timeout",
            "20",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path / "report"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    figures = _summary(out.stdout)
    record = {"service": service, "token": token, "seconds": round(time.monotonic() - started, 1), **figures}
    print(json.dumps(record))  # figures for the log (pytest -s)
    assert out.returncode == 0, out.stdout[-12000:] + out.stderr[-3000:]
    assert figures.get("generated", 0) > 0 and not figures.get("failed"), out.stdout[-6000:]
