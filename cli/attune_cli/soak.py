"""`attune soak`: the four services under a paced, realistic load for a long while, a fault every few
minutes, their memory, open files and consumer lag sampled, and a verdict on whether they stayed flat.

The load: the simulator's network, sized so that publishing it at `--rate` records per second takes
`--minutes`, published in order at that rate (the default, 10 records/s, is a 50-clinic network of
about 15,000 clients in its busy hours, about 0.5 records/s, sped up 20 times). Before it, the
network's history is published, drained and refitted on, as in the demo.

The faults, one every `--fault-every` minutes, in rotation: SIGKILL a service and start it again 3 s
later (intake, measures, alerts, reporting in turn); SIGKILL the Kafka broker and start it again, or
stop and start it cleanly (in turn); stop the store (FerretDB) for 15 s. They use `deploy/infra.sh`,
so the environment that started the infrastructure (ATTUNE_RUN_DIR, ATTUNE_*_PORT,
KAFKA_BOOTSTRAP_SERVERS, MONGODB_URI) must be this command's too: a second stack beside the default
one works the same way.

Every `--sample-every` seconds: each service's RSS and open file descriptors (/proc/PID/status and
/proc/PID/fd; the descriptors also by kind, TCP connections by remote port, so that the report can say
which kind grew), each consumer group's lag, the broker's RSS and the store's (FerretDB's RSS plus the
PSS of the PostgreSQL cluster's processes: their RSS would count the shared buffers once per process).

The verdict (`judge_flat`, `judge_recovery`): after a warm-up, the median of the last third of the
samples against the median of the first third, within a stated tolerance (only growth counts); after
each fault, the total lag back to about 0 (at most `--lag-threshold` records) before the next fault;
and, once everything has drained, the outputs complete: alerts, dead letters and the network report's
figures equal to the simulator's ground truth (nothing lost, nothing doubled), as in the demo. The
report is printed and written to bench/results/soak-<time>.json. Exit code 0 only when all of it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import statistics
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from attune_cli.bench.procs import PROC, descendants, detect_infra, run_dir, scan
from attune_cli.demo import (
    ADMIN,
    OPS,
    Outcome,
    _get,
    _history,
    compare,
    fetch_alerts,
    wait_settled,
)
from attune_cli.pipeline_state import GROUPS, drained_lags
from attune_cli.simulator.generate import generate
from attune_cli.simulator.model import OutboundRecord, Scenario, SimConfig, write_truth
from attune_cli.stack import ROOT, SERVICES, ServiceProcess, replay_env, start_stack, stop_stack
from attune_shared.kafka_admin import ensure_topics
from attune_shared.settings import ServiceSettings
from attune_shared.topics import Topics

RESULTS = ROOT / "bench" / "results"
WEEKS = 16
RECORDS_PER_CLIENT_WEEK = 3.0  # what the simulator emits on average (about 19,000 for 400 clients, 16 weeks)
STORE_OUTAGE_S = 15.0
WARMUP = 0.1  # the share of the samples left out at the start of every series
MIB = 1024 * 1024


# ---------------------------------------------------------------------- the judgement (pure)


@dataclass(frozen=True)
class Tolerance:
    """How much a series may grow and still be flat: `rel` of the first third's median plus `abs`."""

    rel: float
    abs: float

    def __str__(self) -> str:
        extra = f"{self.abs / MIB:.0f} MiB" if self.abs >= MIB else f"{self.abs:g}"
        return f"{self.rel:.0%} + {extra}"

    def allows(self, first: float, last: float) -> bool:
        """True when `last` is at most `first` grown by the tolerance."""
        return last <= first * (1 + self.rel) + self.abs


# RSS may grow by 20 % + 16 MiB (allocator arenas, caches warming), open files by 8.
SERVICE_RSS = Tolerance(rel=0.20, abs=16 * MIB)
SERVICE_FDS = Tolerance(rel=0.0, abs=8)
# The broker is a JVM (its heap fills towards -Xmx before a collection gives it back); the store
# is a PostgreSQL cluster whose processes touch more of the shared buffers as the data grows.
INFRA_RSS = Tolerance(rel=0.30, abs=64 * MIB)


@dataclass(frozen=True)
class Flatness:
    """One series judged: the first and last third's medians after warm-up, and the verdict."""

    samples: int
    first_median: float | None
    last_median: float | None
    growth: float | None  # last / first - 1
    flat: bool | None  # None: too few samples to say
    tolerance: dict[str, float]


def judge_flat(
    values: Sequence[float | None], tolerance: Tolerance, *, warmup: float = WARMUP, minimum: int = 6
) -> Flatness:
    """Is a series flat? Samples that are None (the process was not running) are left out; of the
    rest the first `warmup` fraction is warm-up; the median of the last third of what remains must be
    within `tolerance` of the first third's. Fewer than `minimum` samples after warm-up: no verdict."""
    present = [float(v) for v in values if v is not None]
    kept = present[int(len(present) * warmup) :]
    if len(kept) < minimum:
        return Flatness(len(kept), None, None, None, None, asdict(tolerance))
    third = len(kept) // 3
    first = statistics.median(kept[:third])
    last = statistics.median(kept[-third:])
    growth = (last / first - 1) if first else None
    return Flatness(len(kept), first, last, growth, tolerance.allows(first, last), asdict(tolerance))


@dataclass(frozen=True)
class Recovery:
    """After one fault: how long until the total lag was back to about 0, and whether in time."""

    fault: str
    at_s: float
    ended_s: float
    before: int | None  # the total lag's median in the minute before the fault
    back_to: int  # what counts as back: the threshold, or the level before the fault if higher
    peak_lag: int | None
    recovered_after_s: float | None  # from the fault's end; None: not back to about 0 in time
    recovered: bool


def judge_recovery(
    lag: Sequence[tuple[float, int | None]],
    faults: Sequence[tuple[str, float, float]],
    *,
    threshold: int,
    end: float,
    before_s: float = 60.0,
) -> list[Recovery]:
    """For each fault (name, start, end; seconds into the run) the first lag sample at or after its
    end with a total lag of at most `threshold`, or of the level before the fault when that was
    higher (a consumer that always runs some records behind under load is back when it is back
    there); it must come before the next fault starts (the last fault: before `end`). Samples of
    None (the broker did not answer) are skipped."""
    out: list[Recovery] = []
    for i, (name, started, ended) in enumerate(faults):
        limit = faults[i + 1][1] if i + 1 < len(faults) else end
        earlier = [v for t, v in lag if v is not None and started - before_s <= t < started]
        level = int(statistics.median(earlier)) if earlier else None
        back_to = max(threshold, level or 0)
        window = [(t, v) for t, v in lag if v is not None and started <= t <= limit]
        peak = max((v for _, v in window), default=None)
        back = next((t for t, v in window if t >= ended and v <= back_to), None)
        out.append(
            Recovery(
                fault=name,
                at_s=round(started, 1),
                ended_s=round(ended, 1),
                before=level,
                back_to=back_to,
                peak_lag=peak,
                recovered_after_s=None if back is None else round(back - ended, 1),
                recovered=back is not None,
            )
        )
    return out


def fault_plan(count: int) -> list[str]:
    """The faults in rotation: a service SIGKILLed, the broker (SIGKILL or a clean restart, in turn),
    the store stopped; the services and the broker's two kinds take turns."""
    plan = []
    for i in range(count):
        kind, turn = i % 3, i // 3
        if kind == 0:
            plan.append(f"sigkill {SERVICES[turn % len(SERVICES)]}")
        elif kind == 1:
            plan.append("kafka sigkill" if turn % 2 == 0 else "kafka restart")
        else:
            plan.append(f"store stopped {STORE_OUTAGE_S:.0f} s")
    return plan


def network_size(rate: float, minutes: float) -> SimConfig:
    """A network whose records, published at `rate`, take about `minutes`: WEEKS weeks, about 40
    clients a clinic (3 to 50 clinics)."""
    records = rate * minutes * 60
    clients = max(20, math.ceil(records / (RECORDS_PER_CLIENT_WEEK * WEEKS)))
    clinics = min(50, max(3, clients // 40))
    return SimConfig(clinics=clinics, clients=clients, weeks=WEEKS, history=True)


# ---------------------------------------------------------------------- /proc readings


def rss_bytes(pid: int, proc: Path = PROC) -> int | None:
    """VmRSS of a process in bytes (None when it is not running)."""
    try:
        for line in (proc / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def pss_bytes(pid: int, proc: Path = PROC) -> int | None:
    """Pss of a process in bytes (shared pages divided among those sharing them), else its RSS."""
    try:
        for line in (proc / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return rss_bytes(pid, proc)


def open_fds(pid: int, proc: Path = PROC) -> int | None:
    """Open file descriptors of a process (None when it is not running or not readable)."""
    try:
        return len(os.listdir(proc / str(pid) / "fd"))
    except OSError:
        return None


def _tcp_sockets(proc: Path) -> dict[str, tuple[int, int, bool]]:
    """Socket inode -> (local port, remote port, listening) of the TCP sockets /proc/PID/net lists."""
    out: dict[str, tuple[int, int, bool]] = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10:
                continue
            local, remote = (int(cols[i].rsplit(":", 1)[-1], 16) for i in (1, 2))
            out[cols[9]] = (local, remote, cols[3] == "0A")
    return out


def fd_kinds(pid: int, proc: Path = PROC) -> dict[str, int] | None:
    """A process's open file descriptors by kind: TCP connections it opened by remote port (so a
    growing pool says whose it is: the broker's, the store's, a webhook receiver's), connections it
    accepted by its own port (`tcp:in:<port>`), listening sockets, other sockets, pipes, anonymous
    inodes (epoll, eventfd) and files. None when not readable."""
    try:
        links = []
        for fd in os.listdir(proc / str(pid) / "fd"):
            with contextlib.suppress(OSError):
                links.append(os.readlink(proc / str(pid) / "fd" / fd))
    except OSError:
        return None
    own = [link[8:-1] for link in links if link.startswith("socket:[")]
    tcp = _tcp_sockets(proc / str(pid)) if own else {}
    listening = {tcp[i][0] for i in own if i in tcp and tcp[i][2]}
    kinds: dict[str, int] = {}
    for link in links:
        if link.startswith("socket:["):
            found = tcp.get(link[8:-1])
            if found is None:
                kind = "socket"
            elif found[2]:
                kind = "tcp:listen"
            elif found[0] in listening:
                kind = f"tcp:in:{found[0]}"
            else:
                kind = f"tcp:{found[1]}"
        elif link.startswith("pipe:"):
            kind = "pipe"
        elif link.startswith("anon_inode:"):
            kind = "anon:" + link[11:].strip("[]")
        else:
            kind = "file"
        kinds[kind] = kinds.get(kind, 0) + 1
    return dict(sorted(kinds.items()))


def tree_pss(pid: int, proc: Path = PROC) -> int | None:
    """PSS of a process and all its live descendants."""
    own = pss_bytes(pid, proc)
    if own is None:
        return None
    table = scan(proc)
    return own + sum(pss_bytes(d.pid, proc) or 0 for d in descendants(pid, table))


# ---------------------------------------------------------------------- the run


@dataclass
class Sample:
    """One reading: seconds into the soak, per service RSS and fds, per group lag, broker and store."""

    t: float
    rss: dict[str, int | None]
    fds: dict[str, int | None]
    lag: dict[str, int] | None
    kafka_rss: int | None
    store_rss: int | None
    fd_kinds: dict[str, dict[str, int] | None] = field(default_factory=dict)

    @property
    def total_lag(self) -> int | None:
        return None if self.lag is None else sum(self.lag.values())


@dataclass
class SoakRun:
    """The state of one soak run, shared by the publisher, the sampler and the fault thread."""

    settings: ServiceSettings
    procs: dict[str, ServiceProcess]
    run_folder: Path
    started: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    faults: list[tuple[str, float, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    resent: int = 0  # records sent again after the broker failed to acknowledge them
    stop: threading.Event = field(default_factory=threading.Event)

    def now(self) -> float:
        return time.monotonic() - self.started

    def note(self, text: str, console: Console) -> None:
        self.notes.append(f"{self.now():7.1f}s {text}")
        console.print(f"[dim]{self.now():7.1f}s[/] {text}", highlight=False)

    def sample(self) -> Sample:
        infra = detect_infra(self.run_folder)
        pids = {n: p.proc.pid for n, p in self.procs.items() if p.proc is not None and p.proc.poll() is None}
        try:
            lag: dict[str, int] | None = asyncio.run(asyncio.wait_for(drained_lags(self.settings), 15))
        except Exception:  # the broker may be the fault right now
            lag = None
        store = None
        if infra.ferretdb is not None:
            store = (rss_bytes(infra.ferretdb) or 0) + (
                (tree_pss(infra.postgres) or 0) if infra.postgres is not None else 0
            )
        return Sample(
            t=round(self.now(), 1),
            rss={n: rss_bytes(pids[n]) if n in pids else None for n in self.procs},
            fds={n: open_fds(pids[n]) if n in pids else None for n in self.procs},
            fd_kinds={n: fd_kinds(pids[n]) if n in pids else None for n in self.procs},
            lag=lag,
            kafka_rss=None if infra.kafka is None else _tree_rss(infra.kafka),
            store_rss=store,
        )


def _tree_rss(pid: int) -> int | None:
    own = rss_bytes(pid)
    if own is None:
        return None
    return own + sum(rss_bytes(d.pid) or 0 for d in descendants(pid, scan()))


def infra_sh(command: str, component: str) -> None:
    """deploy/infra.sh stop|start|kill kafka|ferretdb, in this command's environment."""
    subprocess.run([str(ROOT / "deploy" / "infra.sh"), command, component], check=True, timeout=180)


def inject(run: SoakRun, fault: str, console: Console) -> None:
    """Do one fault of `fault_plan` and bring the component back."""
    if fault.startswith("sigkill "):
        name = fault.split()[1]
        proc = run.procs[name]
        proc.kill(signal.SIGKILL)
        time.sleep(3)
        proc.start().wait_ready(timeout=120)
    elif fault == "kafka sigkill":
        infra_sh("kill", "kafka")
        time.sleep(3)
        infra_sh("start", "kafka")
    elif fault == "kafka restart":
        infra_sh("stop", "kafka")
        time.sleep(3)
        infra_sh("start", "kafka")
    elif fault.startswith("store stopped"):
        infra_sh("stop", "ferretdb")
        time.sleep(STORE_OUTAGE_S)
        infra_sh("start", "ferretdb")
    else:
        raise ValueError(f"unknown fault {fault!r}")


async def publish_paced(
    records: Sequence[OutboundRecord],
    bootstrap: str,
    topic: str,
    rate: float,
    on_resend: Callable[[int], None],
    stop: threading.Event,
) -> int:
    """Publish in order at `rate` records/s as an EHR would: acks=all, idempotent; when the broker
    goes away, wait and send again from the first record it has not acknowledged (in order, so each
    key's order is kept; a record whose acknowledgement alone was lost is sent twice, and intake drops
    the copy by its event id). Returns how many were acknowledged."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    started = time.monotonic()
    first_unacked = 0
    while first_unacked < len(records) and not stop.is_set():
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=10,
            request_timeout_ms=120_000,
            max_request_size=4 * 1024 * 1024,
            client_id="attune-soak",
        )
        pending: deque[asyncio.Future[Any]] = deque()
        index = first_unacked
        try:
            await producer.start()
            while index < len(records) and not stop.is_set():
                ahead = started + index / rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(min(ahead, 1.0))
                else:
                    record = records[index]
                    pending.append(await producer.send(topic, record.value, key=record.key))
                    index += 1
                while pending and pending[0].done():
                    pending.popleft().result()
                    first_unacked += 1
            while pending:
                await pending.popleft()
                first_unacked += 1
        except (KafkaError, OSError):
            on_resend(index - first_unacked)  # sent, not acknowledged: sent again from first_unacked
            await asyncio.sleep(2)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 30)
    return first_unacked


def run_soak(
    *,
    minutes: float,
    rate: float,
    fault_every: float,
    sample_every: float,
    lag_threshold: int | None,
    seed: int,
    settle_timeout: float,
    console: Console,
) -> dict[str, Any]:
    """The whole soak; returns the report (also written to bench/results/soak-<time>.json)."""
    signal.signal(signal.SIGTERM, _exit_on_term)
    # The broker's faults are announced as they happen; the clients' reconnect chatter is noise here.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    prefix = os.environ.get("ATTUNE_NAME_PREFIX") or f"soak{stamp.replace('-', '')}_"
    folder = run_dir(ROOT)
    logs = folder / "soak" / prefix.rstrip("_")
    settings = ServiceSettings(attune_name_prefix=prefix)
    threshold = lag_threshold if lag_threshold is not None else max(50, int(5 * rate))
    cfg = replace(network_size(rate, minutes), seed=seed)
    scenario = generate(cfg)
    write_truth(scenario, logs / "truth.json")
    console.rule(
        f"[bold]Attune soak[/]: {minutes:g} min at {rate:g} records/s, a fault every {fault_every:g} min "
        f"(namespace {prefix}, logs in {logs})"
    )
    console.print(
        f"network: {cfg.clinics} clinics, {cfg.clients} clients, {cfg.weeks} weeks, seed {cfg.seed}: "
        f"{len(scenario.records)} records after a history of {len(scenario.history)}; "
        f"Kafka {settings.kafka_bootstrap_servers}, infrastructure folder {folder}"
    )
    asyncio.run(ensure_topics(settings))
    env = replay_env(prefix)
    procs = start_stack(env, logs / "logs")
    run = SoakRun(settings, procs, folder)
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {
            "minutes": minutes,
            "rate_per_s": rate,
            "fault_every_min": fault_every,
            "sample_every_s": sample_every,
            "lag_threshold": threshold,
            "flatness": f"median of the last third against the first third, after a warm-up of "
            f"{WARMUP:.0%} of the samples; growth allowed: service RSS {SERVICE_RSS}, service fds "
            f"{SERVICE_FDS}, broker and store RSS {INFRA_RSS}",
            "network": {"clinics": cfg.clinics, "clients": cfg.clients, "weeks": cfg.weeks, "seed": cfg.seed},
            "records": len(scenario.records),
            "history_records": len(scenario.history),
            "namespace": prefix,
            "kafka": settings.kafka_bootstrap_servers,
        },
    }
    outcome = Outcome()
    try:
        _history(scenario, settings, procs, console, outcome, ())
        run.started = time.monotonic()
        _soak(run, scenario, rate, minutes, fault_every, sample_every, console)
        console.print("publishing done; waiting until every group has drained ...")
        report["drain_s"] = round(
            asyncio.run(
                wait_settled(
                    settings,
                    procs["alerts"].url,
                    console,
                    settle_timeout,
                    reporting_urls=[procs["reporting"].url],
                )
            ),
            1,
        )
        _outputs(scenario, procs, outcome)
    except BaseException as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
        report["error"] = outcome.error
        if not isinstance(exc, Exception):
            raise
    finally:
        run.stop.set()
        codes = stop_stack(procs)
        report["exit_codes"] = codes
        report.update(judge(run, threshold, outcome))
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"soak-{stamp}.json"
        path.write_text(json.dumps(report, indent=2, default=str))
        show(report, console)
        console.print(f"report written to {path.relative_to(ROOT)}")
    return report


def _soak(
    run: SoakRun,
    scenario: Scenario,
    rate: float,
    minutes: float,
    fault_every: float,
    sample_every: float,
    console: Console,
) -> None:
    """Publish at `rate` while the sampler reads every `sample_every` s and a fault lands every
    `fault_every` minutes."""
    sent = {"n": 0}
    publish_error: list[BaseException] = []

    def publisher() -> None:
        try:
            sent["n"] = asyncio.run(
                publish_paced(
                    scenario.records,
                    run.settings.kafka_bootstrap_servers,
                    run.settings.topic(Topics.EHR_EVENTS),
                    rate,
                    lambda n: setattr(run, "resent", run.resent + n),
                    run.stop,
                )
            )
        except BaseException as exc:  # reported by the main thread
            publish_error.append(exc)

    def sampler() -> None:
        while not run.stop.is_set():
            began = time.monotonic()
            with contextlib.suppress(Exception):
                run.samples.append(run.sample())
            run.stop.wait(max(0.0, sample_every - (time.monotonic() - began)))

    threads = [threading.Thread(target=publisher, daemon=True), threading.Thread(target=sampler, daemon=True)]
    for th in threads:
        th.start()
    count = max(0, math.ceil(minutes / fault_every) - 1)
    plan = fault_plan(count)
    run.note(f"publishing {len(scenario.records)} records at {rate:g}/s; faults planned: {plan}", console)
    for i, fault in enumerate(plan):
        at = (i + 1) * fault_every * 60
        while run.now() < at and threads[0].is_alive():
            time.sleep(0.5)
        if not threads[0].is_alive():
            break
        began = run.now()
        run.note(f"fault {i + 1}/{len(plan)}: {fault}", console)
        inject(run, fault, console)
        run.faults.append((fault, began, run.now()))
        run.note(f"fault {i + 1} over after {run.now() - began:.1f}s", console)
    threads[0].join()
    if publish_error:
        raise publish_error[0]
    run.note(f"published {sent['n']} records ({run.resent} sent again after a broker failure)", console)
    # Keep sampling through the drain: the last fault's recovery is judged until the drain ends.


def _outputs(scenario: Scenario, procs: dict[str, ServiceProcess], outcome: Outcome) -> None:
    """The outputs against the simulator's ground truth, as the demo compares them."""
    first = scenario.config.start.strftime("%Y-%m")
    last = (
        scenario.config.as_of.replace(day=1) if scenario.config.as_of.day > 1 else scenario.config.as_of
    ).strftime("%Y-%m")
    last = min(last, datetime.fromisoformat(scenario.truth.as_of).strftime("%Y-%m"))
    report = _get(
        f"{procs['reporting'].url}/v1/reports/network", OPS, **{"from": first, "to": last, "by": "clinic"}
    )
    total = next(r for r in report["rows"] if r.get("row_type") == "total")
    alerts = fetch_alerts(procs["alerts"].url)
    dead = _get(f"{procs['intake'].url}/v1/admin/dead-letters", ADMIN, limit=1)["counts_by_code"]
    compare(scenario, alerts, dead, total, outcome)


def judge(run: SoakRun, threshold: int, outcome: Outcome) -> dict[str, Any]:
    """The report's verdicts: flatness of each series, recovery after each fault, completeness."""
    samples = run.samples
    flat: dict[str, Any] = {}
    for name in run.procs:
        flat[f"{name} rss"] = asdict(judge_flat([s.rss.get(name) for s in samples], SERVICE_RSS))
        flat[f"{name} fds"] = asdict(judge_flat([s.fds.get(name) for s in samples], SERVICE_FDS))
    flat["kafka rss"] = asdict(judge_flat([s.kafka_rss for s in samples], INFRA_RSS))
    fd_change = {name: fd_change_by_kind([s.fd_kinds.get(name) for s in samples]) for name in run.procs}
    flat["store rss"] = asdict(judge_flat([s.store_rss for s in samples], INFRA_RSS))
    end = samples[-1].t if samples else run.now()
    recoveries = judge_recovery(
        [(s.t, s.total_lag) for s in samples], run.faults, threshold=threshold, end=end
    )
    lag_end = next((s.lag for s in reversed(samples) if s.lag is not None), None)
    complete = outcome.ok and outcome.error is None
    verdict = {
        "flat": all(v["flat"] is not False for v in flat.values()),
        "undecided": sorted(k for k, v in flat.items() if v["flat"] is None),
        "recovered_after_every_fault": all(r.recovered for r in recoveries),
        "outputs_complete": complete,
    }
    verdict["ok"] = bool(
        verdict["flat"]
        and not verdict["undecided"]  # a series too short to judge is not shown flat
        and verdict["recovered_after_every_fault"]
        and complete
        and run.faults
        and samples
    )
    return {
        "verdict": verdict,
        "flatness": flat,
        "faults": [asdict(r) for r in recoveries],
        "fd_change_by_kind": fd_change,
        "lag_at_end": lag_end,
        "resent_records": run.resent,
        "outputs": {
            "alerts_expected": outcome.alerts_expected,
            "alerts_actual": outcome.alerts_actual,
            "alerts_missing": outcome.alerts_missing,
            "alerts_extra": outcome.alerts_extra,
            "dead_letters_expected": outcome.dead_letters_expected,
            "dead_letters_actual": outcome.dead_letters_actual,
            "figures_matched": sum(1 for f in outcome.figures.values() if f["match"]),
            "figures_compared": len(outcome.figures),
            "figures_differing": {k: f for k, f in outcome.figures.items() if not f["match"]},
            "trajectories_matched": all(t["match"] for t in outcome.trajectories.values()),
            "error": outcome.error,
        },
        "notes": run.notes,
        "samples": [asdict(s) for s in samples],
    }


def fd_change_by_kind(series: Sequence[dict[str, int] | None]) -> dict[str, tuple[float, float]]:
    """Each kind of descriptor whose median differs between the first and the last third of the
    samples (after the warm-up, as judge_flat): what grew or shrank, as (first, last)."""
    known = [k for k in series if k is not None]
    start = int(len(known) * WARMUP)
    body = known[start:]
    third = len(body) // 3
    if third == 0:
        return {}
    first, last = body[:third], body[-third:]
    out: dict[str, tuple[float, float]] = {}
    for kind in sorted({k for sample in body for k in sample}):
        a = statistics.median(sample.get(kind, 0) for sample in first)
        b = statistics.median(sample.get(kind, 0) for sample in last)
        if a != b:
            out[kind] = (a, b)
    return out


def _mib(v: float | None) -> str:
    return "—" if v is None else f"{v / MIB:.0f} MiB"


def show(report: dict[str, Any], console: Console) -> None:
    """The printed tables."""
    table = Table(
        "series",
        "samples",
        "first third (median)",
        "last third (median)",
        "growth",
        "flat",
        title="Stayed flat?",
    )
    for name, f in report["flatness"].items():
        fmt = _mib if "rss" in name else (lambda v: "—" if v is None else f"{v:.0f}")
        growth = "—" if f["growth"] is None else f"{f['growth'] * 100:+.1f} %"
        mark = {True: "yes", False: "[red]no[/]", None: "too few samples"}[f["flat"]]
        table.add_row(name, str(f["samples"]), fmt(f["first_median"]), fmt(f["last_median"]), growth, mark)
    console.print(table)
    changed = {n: c for n, c in report.get("fd_change_by_kind", {}).items() if c}
    for name, kinds in changed.items():
        console.print(
            f"{name}: open files that changed, first third → last third (median): "
            + ", ".join(f"{k} {a:g} → {b:g}" for k, (a, b) in kinds.items()),
            highlight=False,
        )
    faults = Table(
        "fault",
        "at",
        "took",
        "lag before",
        "peak lag",
        "back (≤ threshold or lag before) after",
        "recovered",
        title=f"Faults (lag threshold {report['config']['lag_threshold']} records; lag before: median of the "
        "minute before the fault)",
    )
    for r in report["faults"]:
        faults.add_row(
            r["fault"],
            f"{r['at_s']:.0f} s",
            f"{r['ended_s'] - r['at_s']:.1f} s",
            "—" if r["before"] is None else str(r["before"]),
            "—" if r["peak_lag"] is None else str(r["peak_lag"]),
            "—" if r["recovered_after_s"] is None else f"{r['recovered_after_s']:.0f} s",
            "yes" if r["recovered"] else "[red]no[/]",
        )
    console.print(faults)
    o = report["outputs"]
    out = Table("check", "expected", "actual", title="Outputs against the simulator's ground truth")
    out.add_row(
        "alerts (client, rule, severity, resolution)", str(o["alerts_expected"]), str(o["alerts_actual"])
    )
    out.add_row("  missing / extra", "0 / 0", f"{len(o['alerts_missing'])} / {len(o['alerts_extra'])}")
    out.add_row("dead letters by code", str(o["dead_letters_expected"]), str(o["dead_letters_actual"]))
    out.add_row("network report figures matching", str(o["figures_compared"]), str(o["figures_matched"]))
    console.print(out)
    v = report["verdict"]
    console.print(
        f"lag at the end: {report['lag_at_end']}; records sent again after a broker failure: "
        f"{report['resent_records']}; drain after publishing: {report.get('drain_s', '—')} s"
    )
    if report.get("error"):
        console.print(f"[red]the run stopped early: {report['error']}[/]")
    words = (
        f"flat {'yes' if v['flat'] else 'NO'}, recovered after every fault "
        f"{'yes' if v['recovered_after_every_fault'] else 'NO'}, outputs complete "
        f"{'yes' if v['outputs_complete'] else 'NO'}"
    )
    console.print(f"[bold]Soak result:[/] {'[green]' if v['ok'] else '[red]'}{words}[/]")


def _exit_on_term(*_: Any) -> None:
    raise SystemExit(143)


__all__ = [
    "GROUPS",
    "Flatness",
    "Recovery",
    "Tolerance",
    "fault_plan",
    "judge_flat",
    "judge_recovery",
    "network_size",
    "run_soak",
]
