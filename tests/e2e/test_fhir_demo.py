"""The demo through FHIR: a small simulated network published as FHIR R4 bundles to intake's
POST /fhir/r4 (`attune simulate --via fhir`) gives the alerts and report figures of the ground truth."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

from rich.console import Console

from attune_cli.demo import ADMIN, OPS, Outcome, _get, compare, fetch_alerts, wait_settled
from attune_cli.simulator.generate import generate
from attune_cli.simulator.model import SimConfig
from attune_cli.stack import SERVICES, free_port, replay_env, start_stack, stop_stack
from attune_shared.kafka_admin import ensure_topics, missing_topics
from attune_shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
NETWORK = {"clinics": 2, "clients": 40, "weeks": 12, "seed": 42}


async def _topics(settings: ServiceSettings) -> None:
    await ensure_topics(settings)
    for _ in range(100):  # a fresh broker lists new topics a moment after creating them
        if not await missing_topics(settings):
            return
        await asyncio.sleep(0.2)


def test_demo_through_fhir_matches_ground_truth(tmp_path: Path) -> None:
    prefix = f"e2efhir{uuid.uuid4().hex[:6]}_"
    settings = ServiceSettings(attune_name_prefix=prefix)
    asyncio.run(_topics(settings))
    env = replay_env(prefix)
    procs = start_stack(env, tmp_path / "logs", ports={n: free_port() for n in SERVICES})
    try:
        cli = [sys.executable, "-m", "attune_cli", "simulate", "--via", "fhir", "--out", str(tmp_path)]
        cli += [f"--{k}={v}" for k, v in NETWORK.items()]
        cli += ["--http-url", procs["intake"].url]
        run = subprocess.run(
            cli, cwd=ROOT, env={**os.environ, "COLUMNS": "200"}, capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert " 0 unusable" in run.stdout, run.stdout[-2000:]

        console = Console(file=sys.stderr)
        asyncio.run(
            wait_settled(
                settings, procs["alerts"].url, console, timeout=300, reporting_urls=[procs["reporting"].url]
            )
        )
        scenario = generate(SimConfig(**NETWORK))
        first = scenario.config.start.strftime("%Y-%m")
        as_of = scenario.config.as_of
        last = (as_of.replace(day=1) if as_of.day > 1 else as_of).strftime("%Y-%m")
        last = min(last, datetime.fromisoformat(scenario.truth.as_of).strftime("%Y-%m"))
        report = _get(
            f"{procs['reporting'].url}/v1/reports/network", OPS, **{"from": first, "to": last, "by": "clinic"}
        )
        total = next(r for r in report["rows"] if r.get("row_type") == "total")
        dead = _get(f"{procs['intake'].url}/v1/admin/dead-letters", ADMIN, limit=1)["counts_by_code"]
        outcome = Outcome()
        compare(scenario, fetch_alerts(procs["alerts"].url), dead, total, outcome)
    finally:
        stop_stack(procs)

    assert outcome.alerts_expected > 0
    assert outcome.alerts_missing == [] and outcome.alerts_extra == [], outcome
    mismatched = {k: v for k, v in outcome.figures.items() if not v["match"]}
    assert mismatched == {}
    # Poison records are not FHIR (the simulator skips them): not one FHIR resource was unusable.
    assert dead == {}
    print(
        f"\ne2e (FHIR): {outcome.alerts_actual} alerts = {outcome.alerts_expected} expected; "
        f"figures {len(outcome.figures)} match"
    )
