"""The whole stack as real processes on a simulated network, checked against the simulator's ground truth.

This runs `attune demo` exactly as `make demo` does (the infrastructure `make test` started), with the
default network and its history (so measures fits expected trajectories and outcome.not-on-track
fires), and reads both its printed report and its JSON summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from attune_cli.simulator.generate import generate
from attune_cli.simulator.model import SimConfig

ROOT = Path(__file__).resolve().parents[2]


def test_demo_matches_ground_truth(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    prefix = f"e2e{uuid.uuid4().hex[:6]}_"
    env = {**os.environ, "CI": "true", "ATTUNE_NAME_PREFIX": prefix, "COLUMNS": "200"}
    run = subprocess.run(
        [sys.executable, "-m", "attune_cli", "demo", "--summary-json", str(summary)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    printed = run.stdout + run.stderr
    print(printed[-6000:])
    assert summary.exists(), printed[-3000:]
    outcome = json.loads(summary.read_text())
    assert outcome["compared"], printed[-3000:]
    assert outcome["alerts_missing"] == [] and outcome["alerts_extra"] == [], outcome
    assert outcome["dead_letters_actual"] == outcome["dead_letters_expected"]
    mismatched = {k: v for k, v in outcome["figures"].items() if not v["match"]}
    assert mismatched == {}
    # measures fitted, on the history, the models the simulator fitted with the same function
    assert set(outcome["trajectories"]) == {"ORS", "PHQ-9", "GAD-7"}
    assert all(t["match"] and t["actual"] for t in outcome["trajectories"].values()), outcome["trajectories"]
    # outcome.not-on-track: raised for exactly the clients the truth says, ending as it says
    not_on_track = outcome["not_on_track"]
    assert not_on_track["expected"] > 0
    assert not_on_track["matched"] == not_on_track["expected"] == not_on_track["raised"], not_on_track
    # the equity view: every figure of every stratum and total of the four breakdowns compared
    equity = outcome["equity"]
    assert set(equity["by"]) == {"language", "interpreter", "age_band", "modality"}
    assert all(b["figures"] > 0 for b in equity["by"].values())
    assert equity["compared"] > 500 and equity["mismatched"] == [], equity["mismatched"][:10]
    assert run.returncode == 0 and outcome["ok"]

    # The scenario covers every rule and every dead-letter code, and the printed report says so.
    truth = generate(SimConfig(history=True)).truth
    rules = {a.rule_id for c in truth.clients for a in c.expected_alerts}
    assert rules == {
        "safety.phq9-item9",
        "alliance.rupture",
        "outcome.deterioration",
        "engagement.dropout-risk",
        "outcome.not-on-track",
    }
    assert set(outcome["dead_letters_expected"]) == {
        "invalid_json",
        "not_an_object",
        "schema_violation",
        "unknown_event_type",
        "unsupported_version",
        "too_large",
    }
    network = truth.reporting["network"]
    assert "Network report" in printed and "Demo result: matches the ground truth" in printed
    assert "Expected trajectories measures fitted on the history" in printed and "Equity view" in printed
    assert str(network["sessions"]["attended"]) in printed
    print(
        f"\ne2e: {outcome['alerts_actual']} alerts = {outcome['alerts_expected']} expected "
        f"(not on track {not_on_track}); equity figures compared {equity['compared']}; dead letters "
        f"{outcome['dead_letters_actual']}; timings {outcome['timings']}"
    )
