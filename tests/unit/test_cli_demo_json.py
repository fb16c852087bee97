"""`attune demo --json`: progress on stderr, one JSON document on stdout, even when the run fails.

The demo's infrastructure (topics, service processes, the broker, the HTTP APIs) is replaced by fakes
that answer exactly what the simulator's ground truth expects, so the real command, the real
comparison and the real printing run without Kafka or a store.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from attune_cli import demo as demo_module
from attune_cli.main import app
from attune_cli.simulator.generate import generate
from attune_cli.simulator.model import Scenario, SimConfig
from attune_measures.domain.trajectories import TrajectoryModel

SIZE = ("--clinics", "1", "--clients", "12", "--weeks", "8", "--seed", "3")


def _truth_alerts(scenario: Scenario) -> list[dict[str, Any]]:
    return [
        {
            "client_ref": c.client_ref,
            "rule_id": a.rule_id,
            "severity": a.severity,
            "resolution": a.resolution,
            "status": "resolved" if a.resolution else "open",
        }
        for c in scenario.truth.clients
        for a in c.expected_alerts
    ]


def _network_total(scenario: Scenario) -> dict[str, Any]:
    row: dict[str, Any] = {"row_type": "total", "clinic_id": None}
    for column, path in demo_module.FIGURES:
        value: Any = scenario.truth.reporting["network"]
        for part in path:
            value = value.get(part, 0) if isinstance(value, dict) else 0
        row[column] = value
    return row


def _equity_rows(scenario: Scenario, by: str) -> list[dict[str, Any]]:
    equity = scenario.truth.equity
    rows = [{"row_type": "row", "value": v, **figures} for v, figures in equity["by"][by].items()]
    return [*rows, {"row_type": "total", "value": None, **equity["total"]}]


def _refit(scenario: Scenario) -> dict[str, Any]:
    """measures' refit answer, with the models the simulator fitted."""
    models = scenario.truth.trajectories["models"]
    items = []
    for name in ("ORS", "PHQ-9", "GAD-7"):
        model = None
        if name in models:
            m = TrajectoryModel.from_dict(models[name])
            lines = [
                {"quantile": q, "intercept": c[0], "b_intake": c[1], "b_log_s": c[2]}
                for q, c in zip(m.quantiles, m.coefficients, strict=True)
            ]
            model = {"version": m.version, "episodes": m.episodes, "rows": m.rows, "coefficients": lines}
        items.append({"instrument": name, "model": model})
    return {"items": items}


@pytest.fixture
def fake_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """Everything run_demo reaches outside this process, answered from the scenario's ground truth."""
    seen: dict[str, Any] = {}
    real_generate = generate

    def fake_generate(config: SimConfig) -> Scenario:
        seen["scenario"] = real_generate(config)
        return seen["scenario"]

    async def no_topics(_settings: Any) -> list[str]:
        return []

    async def fake_publish(scenario: Scenario, **kw: Any) -> None:
        kw["progress"](len(scenario.records), len(scenario.records))

    async def settled(*_a: Any, **_kw: Any) -> float:
        return 0.1

    def fake_get(url: str, _token: str, **params: Any) -> Any:
        if url.endswith("/v1/reports/network"):
            return {"rows": [_network_total(seen["scenario"])]}
        if url.endswith("/v1/reports/equity"):
            return {"rows": _equity_rows(seen["scenario"], params["by"])}
        counts: dict[str, int] = {}
        for d in seen["scenario"].truth.dead_letters:
            counts[d.code] = counts.get(d.code, 0) + 1
        return {"counts_by_code": counts}

    procs = {n: SimpleNamespace(url=f"http://127.0.0.1:1/{n}") for n in (*demo_module.SERVICES, "console")}
    monkeypatch.setattr(signal, "signal", lambda *_a: None)  # the demo's SIGTERM handler stays out of pytest
    monkeypatch.setattr(demo_module, "ensure_topics", no_topics)
    monkeypatch.setattr(demo_module, "_port", lambda _name: 1)
    monkeypatch.setattr(demo_module, "start_stack", lambda *_a, **_kw: procs)
    monkeypatch.setattr(demo_module, "stop_stack", lambda _procs: {n: 0 for n in _procs})
    monkeypatch.setattr(demo_module, "generate", fake_generate)
    monkeypatch.setattr(demo_module, "write_truth", lambda *_a: None)
    monkeypatch.setattr(demo_module, "publish", fake_publish)
    monkeypatch.setattr(demo_module, "wait_settled", settled)
    monkeypatch.setattr(demo_module, "_get", fake_get)
    monkeypatch.setattr(demo_module, "_post", lambda _url, _token: _refit(seen["scenario"]))
    monkeypatch.setattr(demo_module, "fetch_alerts", lambda _url: _truth_alerts(seen["scenario"]))
    monkeypatch.setenv("ATTUNE_NAME_PREFIX", "demojsontest_")
    return seen


def test_json_puts_one_document_on_stdout_and_progress_on_stderr(fake_stack: dict[str, Any]) -> None:
    result = CliRunner().invoke(app, ["demo", *SIZE, "--json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)  # the whole of stdout is one JSON document
    scenario = fake_stack["scenario"]
    assert document["ok"] is True
    assert document["verdict"] == "matches the ground truth"
    assert document["compared"] is True and document["error"] is None
    assert document["run"] == {
        "clinics": 1,
        "clients": 12,
        "weeks": 8,
        "seed": 3,
        "namespace": "demojsontest_",
    }
    assert document["alerts_expected"] == document["alerts_actual"] == len(_truth_alerts(scenario))
    assert set(document["figures"]) == {column for column, _ in demo_module.FIGURES}
    assert all(f["match"] for f in document["figures"].values())
    assert sum(r["raised"] for r in document["alerts_by_rule"].values()) == document["alerts_actual"]
    assert document["report_rows"][0]["row_type"] == "total"
    assert set(document["report_period"]) == {"from", "to"}
    assert {"services_start_s", "publish_s", "drain_s", "total_s", "refit_s"} <= set(document["timings"])
    # the history, the models measures fitted on it, not-on-track and the equity view are compared too
    assert document["history"]["records"] == len(scenario.history) > 0
    assert set(document["trajectories"]) == {"ORS", "PHQ-9", "GAD-7"}
    assert all(t["match"] for t in document["trajectories"].values())
    assert set(document["not_on_track"]) == {"expected", "raised", "matched"}
    assert set(document["equity"]["by"]) == {"language", "interpreter", "age_band", "modality"}
    assert document["equity"]["compared"] > 0 and document["equity"]["mismatched"] == []
    # The human output is all there, on stderr.
    assert "Against the simulator's ground truth" in result.stderr
    assert "Demo result:" in result.stderr


def test_a_figure_of_the_equity_view_that_differs_fails_the_demo(
    fake_stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_get = demo_module._get

    def one_off(url: str, token: str, **params: Any) -> Any:
        answer = real_get(url, token, **params)
        if url.endswith("/v1/reports/equity") and params["by"] == "interpreter":
            answer["rows"][0]["sessions_attended"] += 1
        return answer

    monkeypatch.setattr(demo_module, "_get", one_off)
    result = CliRunner().invoke(app, ["demo", *SIZE, "--json"])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert [(m["by"], m["value"], m["figure"]) for m in document["equity"]["mismatched"]] == [
        ("interpreter", "yes", "sessions_attended")
    ]


def test_json_reports_a_failed_run_too(fake_stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    async def never_settles(*_a: Any, **_kw: Any) -> float:
        raise TimeoutError("the pipeline did not settle within 600s")

    monkeypatch.setattr(demo_module, "wait_settled", never_settles)
    result = CliRunner().invoke(app, ["demo", *SIZE, "--json"])
    assert result.exit_code != 0
    document = json.loads(result.stdout)
    assert document["ok"] is False and document["compared"] is False
    assert document["verdict"] == "does not match the ground truth"
    assert document["error"] == "TimeoutError: the pipeline did not settle within 600s"


def test_without_json_the_tables_stay_on_stdout(fake_stack: dict[str, Any]) -> None:
    result = CliRunner().invoke(app, ["demo", *SIZE])
    assert result.exit_code == 0, result.output
    assert "Against the simulator's ground truth" in result.stdout
    assert not result.stdout.lstrip().startswith("{")
