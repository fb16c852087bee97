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
    lost = detect_infra(run, proc)  # FerretDB runs, its postmaster is not found: said in red
    assert (lost.store, lost.postgres) == ("postgresql", None) and "postmaster not found" in lost.label

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
    assert "CPU us/event store: total (ferretdb alone)" in labels
    assert not any("postgres" in label for label in labels)
    pg = sizes_rows(
        [
            _run(3000, 100.0, kafka=0.1, ferretdb=1.0, postgres=2.0, store=3.0),
            _run(6000, 95.0, kafka=0.1, ferretdb=1.1, postgres=2.1, store=3.2),
        ]
    )
    rows = dict(pg)
    # runs with the milliseconds alone (results from before the microsecond fields) shown in µs
    assert rows["CPU us/event store: postgres (postmaster + backends)"] == [2000.0, 2100.0]
    assert rows["CPU us/event store: total"] == [3000.0, 3200.0]
    assert rows["CPU us/event intake"] == [500.0, 500.0]
    assert rows["events/s"] == [100.0, 95.0]
    assert rows["records"] == [3007.0, 6007.0]


def test_store_counters_per_event() -> None:
    from attune_cli.bench.run import PG_COUNTERS, per_event

    before = dict.fromkeys(PG_COUNTERS, 100.0)
    after = {k: 100.0 + 3 * i * 1000 for i, k in enumerate(PG_COUNTERS)}
    got = per_event(before, after, 1000)
    assert got == {k: 3.0 * i for i, k in enumerate(PG_COUNTERS)}
    assert per_event({}, after, 1000) == {} and per_event(before, after, 0) == {}


def test_steady_rss_is_the_median_of_the_last_half_of_the_drain() -> None:
    from attune_cli.bench.run import steady_by_service, steady_rss

    # a drain from t=100 to t=200: the first half climbs, the second half holds near 120 MB
    samples = [(100.0, 50.0), (140.0, 300.0), (150.0, 118.0), (170.0, 125.0), (190.0, 120.0), (260.0, 10.0)]
    assert steady_rss(samples, 100.0, 200.0) == 120.0  # 300 (first half) and 10 (after the end) left out
    assert steady_rss([(150.0, 1.0), (160.0, 2.0)], 100.0, 200.0) == 1.5
    assert steady_rss(samples[:2], 100.0, 200.0) is None  # nothing in the last half
    by_service = steady_by_service(
        {"alerts-0": [(180.0, 90.0)], "alerts-1": [(180.0, 110.0)], "intake": [(120.0, 70.0)]},
        {"alerts-0": "alerts", "alerts-1": "alerts", "intake": "intake"},
        100.0,
        200.0,
    )
    assert by_service == {"alerts": 110.0}  # the larger instance; intake has no sample in the last half


def test_latency_records_are_capped_by_the_publishing_time() -> None:
    from attune_cli.bench.run import latency_records

    assert latency_records(40_000, 100.0, 120.0) == 12_000
    assert latency_records(40_000, 500.0, 120.0) == 40_000
    assert latency_records(40_000, 2.0, 120.0) == 1000  # never fewer than 1,000


def _results(**kw: object) -> object:
    from attune_cli.bench.run import Results

    base: dict[str, object] = {
        "started_at": "x",
        "git_revision": "r",
        "cores": 2,
        "records": 0,
        "network": {},
    }
    return Results(**{**base, **kw})  # type: ignore[arg-type]


def _full_run(records: int, eps: float, rss: dict[str, float], us: dict[str, float]) -> PipelineRun:
    run = _run(records, eps)
    run.records, run.peak_rss_mb, run.cpu_us_per_event = records, rss, us
    return run


def test_targets_are_judged_with_their_values_and_left_unjudged_without_the_figures() -> None:
    from attune_cli.bench.chain import ChainRun
    from attune_cli.bench.run import LatencyRun, Results, judge_targets, met_cell, value_cell, vs_chain

    pipeline = _full_run(
        200_852, 3100.0, {"intake": 90.0, "measures": 160.0}, {"intake": 80.0, "measures": 99.5}
    )
    chain = ChainRun(records=200_852, seconds=40.0, events_per_second=5000.0)
    res = _results(
        pipeline=pipeline,
        chain=chain,
        pipeline_vs_chain=vs_chain(pipeline, chain),
        naive_eps=150.0,
        latency=[
            LatencyRun(100.0, 12_000, 50, {"p50": 90.0, "p99": 120.0}),
            LatencyRun(500.0, 40_000, 600, {"p50": 110.0, "p99": 260.0}),
        ],
    )
    assert isinstance(res, Results)
    got = judge_targets(res)
    by_start = {name.split(" at ")[0].split(" per ")[0]: t for name, t in got.items()}
    assert by_start["throughput >= 3,000 events/s"] == {"value": 3100.0, "met": True, "limit": 3000.0}
    assert by_start["throughput >= 0.5 x the four-stage chain"]["value"] == 0.62
    assert by_start["throughput >= 0.5 x the four-stage chain"]["met"] is True
    assert by_start["throughput >= 20 x the naive baseline"]["value"] == 20.67
    assert by_start["throughput >= 20 x the naive baseline"]["met"] is True
    assert by_start["alert latency p99 <= 250 ms"]["value"] == 260.0  # the 500/s run, not the 100/s one
    assert by_start["alert latency p99 <= 250 ms"]["met"] is False
    rss = by_start["peak RSS <= 150 MB"]
    assert (rss["value"], rss["worst"], rss["met"]) == (160.0, "measures", False)
    cpu = by_start["CPU <= 100 us"]
    assert (cpu["value"], cpu["worst"], cpu["met"]) == (99.5, "measures", True)
    assert value_cell(cpu) == "99.5 (measures)" and "yes" in met_cell(cpu) and "no" in met_cell(rss)

    small = _full_run(5007, 400.0, {"intake": 90.0}, {"intake": 300.0})
    got = judge_targets(_results(pipeline=small))  # type: ignore[arg-type]
    eps = next(t for name, t in got.items() if name.startswith("throughput >= 3,000"))
    assert eps["value"] == 400.0 and eps["met"] is None and "200,000" in met_cell(eps)
    chain_target = next(t for name, t in got.items() if "chain" in name)
    assert chain_target["met"] is None and chain_target["value"] is None and value_cell(chain_target) == "-"
    assert next(t for name, t in got.items() if name.startswith("peak RSS"))["met"] is None
    assert next(t for name, t in got.items() if name.startswith("alert latency"))["met"] is None
    assert next(t for name, t in got.items() if name.startswith("CPU"))["met"] is False  # judged at any size


def test_pipeline_over_chain_needs_both_drained() -> None:
    from attune_cli.bench.chain import ChainRun
    from attune_cli.bench.run import vs_chain

    chain = ChainRun(records=1000, seconds=1.0, events_per_second=1000.0)
    assert vs_chain(_run(1000, 250.0), chain) == 0.25
    assert vs_chain(_run(1000, 250.0, drained=False), chain) is None
    assert (
        vs_chain(_run(1000, 250.0), ChainRun(records=1000, seconds=0.0, events_per_second=0.0, drained=False))
        is None
    )
    assert vs_chain(None, chain) is None


def test_the_chain_stores_a_record_as_its_json_object_or_its_bytes() -> None:
    from attune_cli.bench.chain import chain_names, raw_document

    assert raw_document(b'{"event_id": "e1", "payload": {"a": 1}}') == {"event_id": "e1", "payload": {"a": 1}}
    assert raw_document(b"not json") == {"v": b"not json"}
    assert raw_document(b"[1, 2]") == {"v": b"[1, 2]"}  # not an object
    assert raw_document(b'{"_id": 1}') == {"v": b'{"_id": 1}'}  # the store's key stays the store's
    assert raw_document(None) == {"v": None}
    topics, dbs = chain_names("bench1x1_")
    assert topics == ["bench1x1_chain.in", *(f"bench1x1_chain.{i}" for i in range(1, 5))]
    assert dbs == [f"bench1x1_chain{i}" for i in range(1, 5)]
    assert all(name.startswith("bench") for name in topics + dbs)  # _clean drops what a crash left


def test_report_rows_show_microseconds_steady_rss_chain_and_each_rate() -> None:
    from attune_cli.bench.chain import ChainRun
    from attune_cli.bench.run import LatencyRun, report_rows

    pipeline = _full_run(5007, 400.0, {"intake": 90.0}, {"intake": 312.5})
    pipeline.infra_cpu_us_per_event = {"kafka": 40.0, "ferretdb": 900.0, "postgres": 600.0, "store": 1500.0}
    pipeline.steady_rss_mb = {"intake": 85.5}
    chain = ChainRun(records=5007, seconds=2.0, events_per_second=2503.5, cpu_us_per_event={"stage1": 20.0})
    res = _results(
        pipeline=pipeline,
        chain=chain,
        pipeline_vs_chain=0.16,
        latency=[
            LatencyRun(100.0, 2000, 9, {"p50": 80.0, "p99": 95.5}),
            LatencyRun(500.0, 2000, 0, {}, False),
        ],
    )
    rows = dict(report_rows(res))  # type: ignore[arg-type]
    assert (
        rows["  CPU us per inbound event (services, broker, store)"] == "intake 312.5, broker 40, store 1500"
    )
    assert rows["  steady RSS per service (MB, median of the drain's last half)"] == "intake 85.5"
    chain_row = next(v for k, v in rows.items() if k.startswith("four-stage chain"))
    assert chain_row == "2503.5 events/s (2.0s); pipeline / chain 0.16"
    assert rows["alert latency at 100 events/s (2,000 records, 9 alerts)"] == "p50 80 ms, p99 95.5 ms"
    assert (
        rows["alert latency at 500 events/s (2,000 records, 0 alerts)"]
        == "no alerts matched (not drained in time)"
    )
