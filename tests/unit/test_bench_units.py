"""`attune bench`'s pure parts: CPU of a process tree from /proc (PostgreSQL's postmaster and its
backends), which local store runs, and the by-size figures and verdict."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from attune_cli.bench import procs
from attune_cli.bench.procs import (
    CpuReading,
    cpu_between,
    descendants,
    detect_infra,
    parse_stat,
    tree_cpu,
    tree_ticks,
)
from attune_cli.bench.run import PipelineRun, per_event_ms, size_ratio, sizes_rows, verdict, with_store

HZ = os.sysconf("SC_CLK_TCK")


def stat_line(
    pid: int, ppid: int, own: int, reaped: int = 0, start: int = 100, name: str = "postgres"
) -> str:
    """A /proc/<pid>/stat line: utime = own, cutime = reaped (stime and cstime 0)."""
    fields = ["S", str(ppid), *["0"] * 9, str(own), "0", str(reaped), "0", *["0"] * 4, str(start), "0"]
    return f"{pid} ({name}) {' '.join(fields)}\n"


def write_proc(proc: Path, pid: int, line: str) -> None:
    (proc / str(pid)).mkdir(parents=True, exist_ok=True)
    (proc / str(pid) / "stat").write_text(line)


def test_parse_stat_reads_times_past_a_command_name_with_parentheses() -> None:
    line = "42 (postgres: x) (y) R 7 1 2 3 4 5 6 7 8 9 11 12 13 14 15 16 17 18 999 0"
    st = parse_stat(42, line)
    assert (st.ppid, st.own_ticks, st.reaped_ticks, st.start) == (7, 11 + 12, 13 + 14, 999)


def test_a_tree_counts_the_root_its_reaped_children_and_every_live_descendant() -> None:
    table = {
        st.pid: st
        for st in (
            parse_stat(10, stat_line(10, 1, own=5, reaped=40)),  # postmaster; exited backends: 40
            parse_stat(11, stat_line(11, 10, own=7)),  # a backend
            parse_stat(12, stat_line(12, 10, own=3, reaped=2)),
            parse_stat(13, stat_line(13, 12, own=1)),  # a grandchild
            parse_stat(20, stat_line(20, 1, own=1000)),  # not in the tree
        )
    }
    assert sorted(d.pid for d in descendants(10, table)) == [11, 12, 13]
    assert tree_ticks(table[10], table) == 5 + 40 + 7 + 3 + 2 + 1


def test_tree_cpu_reads_a_proc_folder(tmp_path: Path) -> None:
    write_proc(tmp_path, 10, stat_line(10, 1, own=HZ, reaped=HZ))
    write_proc(tmp_path, 11, stat_line(11, 10, own=2 * HZ))
    (tmp_path / "self").mkdir()  # not a pid: ignored
    reading = tree_cpu(10, tmp_path)
    assert reading is not None
    assert (reading.seconds, reading.processes, reading.start) == (4.0, 2, 100)
    assert tree_cpu(99, tmp_path) is None


def test_a_child_reaped_during_the_reading_is_counted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_proc(tmp_path, 10, stat_line(10, 1, own=0))
    write_proc(tmp_path, 11, stat_line(11, 10, own=HZ))
    real_scan = procs.scan
    calls = {"n": 0}

    def scan_then_reap(proc: Path) -> dict[int, procs.ProcStat]:
        table = real_scan(proc)
        calls["n"] += 1
        if calls["n"] == 1:  # the backend exits and is reaped after it was read: its time moves
            (proc / "11" / "stat").unlink()
            write_proc(proc, 10, stat_line(10, 1, own=0, reaped=HZ))
        return table

    monkeypatch.setattr(procs, "scan", scan_then_reap)
    reading = tree_cpu(10, tmp_path)
    assert reading is not None and reading.seconds == 1.0 and calls["n"] == 2


def test_cpu_between_needs_the_same_process_at_both_readings() -> None:
    first = CpuReading(pid=10, start=100, seconds=2.0, processes=5)
    assert cpu_between(first, CpuReading(10, 100, 5.5, 9)) == 3.5
    assert cpu_between(first, CpuReading(10, 300, 5.5, 9)) is None  # restarted (pid reused)
    assert cpu_between(first, None) is None
    assert cpu_between(None, first) is None


def test_detect_infra_reads_the_pid_files_like_infra_status(tmp_path: Path) -> None:
    proc, run = tmp_path / "proc", tmp_path / "var"
    run.mkdir()
    for pid in (1, 2, 3, 4):
        write_proc(proc, pid, stat_line(pid, 0, own=0))
    (run / "kafka.pid").write_text("1\n")
    assert detect_infra(run, proc).store == ""  # no FerretDB here
    assert detect_infra(run, proc).pids() == {"kafka": 1}

    (run / "ferretdb.pid").write_text("2\n")
    sqlite = detect_infra(run, proc)  # no ferretdb.store: sqlite, as infra.sh says
    assert (sqlite.store, sqlite.postgres, sqlite.label) == ("sqlite", None, "FerretDB on SQLite")

    (run / "ferretdb.store").write_text("postgresql\n")
    (run / "postgres.pid").write_text("3")
    assert detect_infra(run, proc).postgres == 3
    (run / "pg-data").mkdir()
    (run / "pg-data" / "postmaster.pid").write_text("4\n/work/main/var/pg-data\n1700000000\n55432\n")
    pg = detect_infra(run, proc)  # PostgreSQL's own pid file wins
    assert pg.pids() == {"kafka": 1, "ferretdb": 2, "postgres": 4}
    assert "PostgreSQL" in pg.label

    (run / "ferretdb.pid").write_text("77\n")  # not running
    assert detect_infra(run, proc).pids() == {"kafka": 1}


def _run(size: int, eps: float, drained: bool = True, **infra_ms: float) -> PipelineRun:
    return PipelineRun(
        instances=1,
        records=size + 7,
        seconds=round(size / eps, 1) if eps else 0.0,
        events_per_second=eps if drained else 0.0,
        cpu_seconds={"intake": 1.0},
        peak_rss_mb={"intake": 90.0},
        drained=drained,
        cpu_ms_per_event={"intake": 0.5},
        infra_cpu_ms_per_event=infra_ms,
        size=size,
    )


def test_per_event_figures_and_the_store_sum() -> None:
    assert per_event_ms({"intake": 2.0, "alerts": 0.5}, 4000) == {"intake": 0.5, "alerts": 0.125}
    assert per_event_ms({"intake": 2.0}, 0) == {}
    assert with_store({"kafka": 1.0, "ferretdb": 2.0, "postgres": 3.5}) == {
        "kafka": 1.0,
        "ferretdb": 2.0,
        "postgres": 3.5,
        "store": 5.5,
    }
    assert with_store({"kafka": 1.0, "ferretdb": 2.0})["store"] == 2.0
    assert with_store({"kafka": 1.0}) == {"kafka": 1.0}


def test_size_ratio_and_verdict() -> None:
    within = size_ratio([_run(50_000, 700.0), _run(200_000, 630.0)])
    assert (within["ratio"], within["met"], within["smallest"], within["largest"]) == (
        0.9,
        True,
        50_000,
        200_000,
    )
    assert "met" in verdict(within) and "not met" not in verdict(within)
    assert "-10.0%" in verdict(within)

    falls = size_ratio([_run(200_000, 302.0), _run(50_000, 750.0)])  # order given does not matter
    assert falls["met"] is False and falls["ratio"] == pytest.approx(0.403, abs=1e-3)
    assert "not met" in verdict(falls)

    assert size_ratio([_run(50_000, 700.0), _run(200_000, 595.0)])["met"] is True  # exactly 85%
    undrained = size_ratio([_run(50_000, 700.0), _run(200_000, 0.0, drained=False)])
    assert undrained["ratio"] is None and "no verdict" in verdict(undrained)
    assert size_ratio([_run(50_000, 700.0)]) == {}
    assert "one size" in verdict({})


def test_sizes_rows_show_postgres_only_on_that_store() -> None:
    sqlite = sizes_rows([_run(3000, 100.0, kafka=0.1, ferretdb=1.0, store=1.0)])
    labels = [label for label, _ in sqlite]
    assert "CPU ms/event store: total (ferretdb alone)" in labels
    assert not any("postgres" in label for label in labels)
    pg = sizes_rows(
        [
            _run(3000, 100.0, kafka=0.1, ferretdb=1.0, postgres=2.0, store=3.0),
            _run(6000, 95.0, kafka=0.1, ferretdb=1.1, postgres=2.1, store=3.2),
        ]
    )
    rows = dict(pg)
    assert rows["CPU ms/event store: postgres (postmaster + backends)"] == [2.0, 2.1]
    assert rows["CPU ms/event store: total"] == [3.0, 3.2]
    assert rows["events/s"] == [100.0, 95.0]
    assert rows["records"] == [3007.0, 6007.0]


def test_store_counters_per_event() -> None:
    from attune_cli.bench.run import PG_COUNTERS, per_event

    before = dict.fromkeys(PG_COUNTERS, 100.0)
    after = {k: 100.0 + 3 * i * 1000 for i, k in enumerate(PG_COUNTERS)}
    got = per_event(before, after, 1000)
    assert got == {k: 3.0 * i for i, k in enumerate(PG_COUNTERS)}
    assert per_event({}, after, 1000) == {} and per_event(before, after, 0) == {}
