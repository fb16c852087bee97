"""`attune soak`'s pure parts: whether a series stayed flat, whether the lag came back after each fault,
the fault rotation, the network's size, and the /proc readings."""

from __future__ import annotations

import os
from pathlib import Path

from attune_cli.soak import (
    MIB,
    Tolerance,
    fault_plan,
    fd_change_by_kind,
    fd_kinds,
    judge_flat,
    judge_recovery,
    network_size,
    open_fds,
    pss_bytes,
    rss_bytes,
)

RSS = Tolerance(rel=0.20, abs=16 * MIB)


def test_a_steady_series_with_noise_is_flat() -> None:
    values = [200 * MIB + (i % 5) * MIB for i in range(60)]
    f = judge_flat(values, RSS)
    assert f.flat is True
    assert f.samples == 54  # 10 % warm-up left out
    assert f.first_median is not None and f.last_median is not None


def test_a_leak_is_not_flat() -> None:
    # 200 MiB growing by 2 MiB a sample: the last third's median is far beyond 20 % + 16 MiB
    values = [200 * MIB + 2 * MIB * i for i in range(60)]
    f = judge_flat(values, RSS)
    assert f.flat is False
    assert f.growth is not None and f.growth > 0.2


def test_growth_just_inside_and_just_outside_the_tolerance() -> None:
    first, last = 100.0, 100.0 * 1.2 + 16
    inside = [first] * 10 + [last] * 10
    outside = [first] * 10 + [last + 1] * 10
    tol = Tolerance(rel=0.20, abs=16)
    assert judge_flat(inside, tol, warmup=0).flat is True
    assert judge_flat(outside, tol, warmup=0).flat is False


def test_shrinking_is_flat() -> None:
    assert judge_flat([300.0] * 10 + [100.0] * 10, Tolerance(0, 0), warmup=0).flat is True


def test_warm_up_growth_is_left_out() -> None:
    # a service that grows while it warms up (the first third) and then stays level
    values = [50.0 + 15 * i for i in range(10)] + [200.0] * 20
    assert judge_flat(values, Tolerance(rel=0.05, abs=0), warmup=0.3).flat is True
    assert judge_flat(values, Tolerance(rel=0.05, abs=0), warmup=0).flat is False


def test_samples_of_a_process_that_was_not_running_are_left_out() -> None:
    values: list[float | None] = [10.0, None, 10.0, None] * 10
    f = judge_flat(values, Tolerance(0, 0), warmup=0)
    assert f.samples == 20 and f.flat is True


def test_too_few_samples_give_no_verdict() -> None:
    f = judge_flat([1.0, 2.0, 3.0], Tolerance(0, 0))
    assert f.flat is None and f.first_median is None


def test_lag_back_to_about_zero_after_each_fault() -> None:
    lag = [(0.0, 5), (10.0, 400), (20.0, 900), (30.0, 40), (40.0, 3), (50.0, 700), (60.0, 600), (70.0, 10)]
    faults = [("sigkill intake", 8.0, 15.0), ("kafka sigkill", 45.0, 55.0)]
    first, second = judge_recovery(lag, faults, threshold=50, end=80.0)
    assert first.recovered and first.recovered_after_s == 15.0 and first.peak_lag == 900
    assert second.recovered and second.recovered_after_s == 15.0 and second.peak_lag == 700


def test_a_fault_the_lag_never_came_back_from_before_the_next_one() -> None:
    lag = [(0.0, 0), (10.0, 500), (20.0, 500), (30.0, 500), (40.0, 0)]
    faults = [("store stopped 15 s", 5.0, 20.0), ("sigkill alerts", 35.0, 38.0)]
    first, second = judge_recovery(lag, faults, threshold=50, end=45.0)
    assert not first.recovered and first.recovered_after_s is None  # 0 only after the next fault began
    assert second.recovered


def test_lag_unknown_while_the_broker_is_away_is_skipped() -> None:
    lag: list[tuple[float, int | None]] = [(0.0, 0), (5.0, None), (10.0, None), (15.0, 20)]
    (r,) = judge_recovery(lag, [("kafka restart", 2.0, 12.0)], threshold=50, end=20.0)
    assert r.recovered and r.recovered_after_s == 3.0 and r.peak_lag == 20


def test_a_consumer_that_runs_behind_under_load_is_back_at_its_level_before_the_fault() -> None:
    # reporting runs ~200 records behind on a loaded machine: back once it is back there, not at 50
    lag = [(0.0, 180), (20.0, 220), (40.0, 200), (65.0, 900), (80.0, 600), (95.0, 210), (110.0, 190)]
    (r,) = judge_recovery(lag, [("store stopped 15 s", 60.0, 75.0)], threshold=50, end=120.0)
    assert r.before == 200 and r.back_to == 200
    assert r.recovered and r.recovered_after_s == 35.0  # 210 > 200 at 95 s; 190 at 110 s
    (strict,) = judge_recovery(lag, [("store stopped 15 s", 60.0, 75.0)], threshold=50, end=105.0)
    assert not strict.recovered


def test_lag_below_the_threshold_during_the_fault_does_not_count_as_recovery() -> None:
    lag = [(0.0, 0), (5.0, 0), (25.0, 300)]
    (r,) = judge_recovery(lag, [("store stopped 15 s", 1.0, 20.0)], threshold=50, end=30.0)
    assert not r.recovered


def test_the_faults_rotate_through_services_broker_and_store() -> None:
    plan = fault_plan(12)
    assert plan[:6] == [
        "sigkill intake",
        "kafka sigkill",
        "store stopped 15 s",
        "sigkill measures",
        "kafka restart",
        "store stopped 15 s",
    ]
    assert {p for p in plan if p.startswith("sigkill")} == {
        "sigkill intake",
        "sigkill measures",
        "sigkill alerts",
        "sigkill reporting",
    }


def test_the_network_is_sized_to_the_rate_and_the_duration() -> None:
    small, large = network_size(10, 3), network_size(10, 30)
    assert small.history and large.history
    # records are about 3 per client-week: 30 minutes at 10/s is 18,000 records
    assert 16_000 <= large.clients * large.weeks * 3 <= 20_000
    assert large.clients > small.clients and 3 <= small.clinics <= large.clinics <= 50


def test_proc_readings_of_this_process() -> None:
    me = os.getpid()
    rss = rss_bytes(me)
    assert rss is not None and rss > MIB
    pss = pss_bytes(me)
    assert pss is not None and pss > 0
    fds = open_fds(me)
    assert fds is not None and fds >= 3
    with open(os.devnull) as _:
        assert open_fds(me) == fds + 1


def test_open_files_by_kind_name_a_tcp_connection_by_its_remote_port() -> None:
    import socket

    me = os.getpid()
    before = fd_kinds(me)
    assert before is not None
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client, open(os.devnull) as _:
            peer, _addr = server.accept()
            with peer:
                kinds = fd_kinds(me)
                assert kinds is not None
                assert kinds.get(f"tcp:{port}", 0) == before.get(f"tcp:{port}", 0) + 1  # the client end
                assert kinds.get(f"tcp:in:{port}", 0) == 1  # the end it accepted, by its own port
                assert kinds.get("tcp:listen", 0) == before.get("tcp:listen", 0) + 1
                assert kinds.get("file", 0) == before.get("file", 0) + 1
                assert client.fileno() > 0


def test_fd_change_by_kind_names_what_grew_between_the_first_and_last_thirds() -> None:
    steady = {"tcp:9092": 3, "file": 2}
    grown = {"tcp:9092": 3, "file": 2, "tcp:27017": 5}
    series = [None, *[steady] * 10, *[grown] * 10]
    assert fd_change_by_kind(series) == {"tcp:27017": (0, 5)}
    assert fd_change_by_kind([steady] * 20) == {}
    assert fd_change_by_kind([steady]) == {}  # too few to judge


def test_proc_readings_of_a_process_that_is_gone(tmp_path: Path) -> None:
    assert rss_bytes(12345, proc=tmp_path) is None
    assert pss_bytes(12345, proc=tmp_path) is None
    assert open_fds(12345, proc=tmp_path) is None
