"""The CLI keeps its tables' columns when its output is piped (CI logs, `| tee`)."""

from __future__ import annotations

import io

import pytest
from rich.table import Table

from attune_cli import output


def test_piped_output_keeps_wide_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr("sys.stdout", io.StringIO())  # not a terminal
    console = output.make_console()
    assert console.width == output.PIPED_WIDTH
    table = Table("client_ref", "action taken", "clinician", "acknowledged at", "resolution")
    table.add_row("cr_" + "A" * 26, "acknowledged", "c-north-01-3", "2026-12-07T10:00:00Z", "addressed")
    with console.capture() as captured:
        console.print(table)
    assert (
        "client_ref" in captured.get() and "acknowledged at" in captured.get() and "…" not in captured.get()
    )


def test_columns_decides_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert output.make_console().width == 100


def test_stderr_console_leaves_stdout_alone(capsys: pytest.CaptureFixture[str]) -> None:
    console = output.make_console(stderr=True)
    console.print("progress")
    captured = capsys.readouterr()
    assert captured.out == "" and "progress" in captured.err
