"""`attune simulate` as the CLI will mount it: options, truth.json and the summary tables."""

import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from typer.testing import CliRunner

from attune_cli.simulator.command import simulate


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("simulate")(simulate)
    app.callback()(lambda: None)  # a group, like attune_cli.main
    return app


def test_dry_run_writes_truth_and_prints_the_summary(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _cli(),
        ["simulate", "--clients", "40", "--weeks", "12", "--seed", "7", "--out", str(tmp_path), "--dry-run"],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["config"] == {
        "clinics": 3,
        "clients": 40,
        "weeks": 12,
        "seed": 7,
        "start": "2026-01-05",
        "source": "ehr-sim",
        "history": False,
    }
    for title in ("Events by type", "Poison records by dead-letter code", "Expected alerts by rule"):
        assert title in result.output
    assert "engagement.dropout-risk" in result.output
    assert "too_large" in result.output


def test_kafka_settings_come_from_the_environment(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls = {}

    async def fake_publish(scenario, via, **kwargs):  # type: ignore[no-untyped-def]
        from attune_cli.simulator import PublishResult

        calls.update(kwargs, via=via)
        return PublishResult(via, sent=len(scenario.records))

    monkeypatch.setattr("attune_cli.simulator.command.publish", fake_publish)
    env = {"KAFKA_BOOTSTRAP_SERVERS": "k1:19092", "ATTUNE_NAME_PREFIX": "t7-", "COLUMNS": "160"}
    args = ["simulate", "--clients", "10", "--weeks", "6", "--out", str(tmp_path), "--rate", "500"]
    result = CliRunner().invoke(_cli(), args, env=env)
    assert result.exit_code == 0, result.output
    assert calls["via"] == "kafka"
    assert calls["bootstrap"] == "k1:19092"
    assert calls["topic"] == "t7-ehr.events.v1"
    assert calls["rate"] == 500.0
    assert "published" in result.output


def test_bad_start_date_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _cli(), ["simulate", "--start", "05/01/2026", "--out", str(tmp_path), "--dry-run"]
    )
    assert result.exit_code == 2


def test_start_today_ends_the_simulation_today(tmp_path: Path) -> None:
    args = [
        "simulate",
        "--clients",
        "10",
        "--weeks",
        "6",
        "--start",
        "today",
        "--out",
        str(tmp_path),
        "--dry-run",
    ]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 0, result.output
    truth = json.loads((tmp_path / "truth.json").read_text())
    as_of = datetime.fromisoformat(truth["as_of"])
    assert as_of.date() == datetime.now(UTC).date()
