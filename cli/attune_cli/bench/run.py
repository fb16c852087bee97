"""`attune bench`: the pipeline's throughput, alert latency, memory and scale-out on the real stack,
beside the raw limit and a naive design measured in the same run on the same data.

Every figure is printed and written to bench/results/<time>.json with the machine's core count and the
git revision. Nothing here asserts: targets are compared and reported, met or not.

`--events` given more than once drains the pipeline once per size, smallest first, each on its own
topics and databases (the previous size's are dropped first), and prints a table of the sizes side by
side with the largest size's throughput as a share of the smallest's. `--only-throughput` runs the
drains alone (no raw limit, naive baseline, latency or scale-out run).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Console
from rich.table import Table

from attune_cli.bench.baselines import naive_baseline, raw_limit
from attune_cli.bench.chain import ChainRun, drop_chain, four_stage_chain
from attune_cli.bench.procs import (
    LocalInfra,
    detect_infra,
    infra_cpu_between,
    infra_readings,
    run_dir,
    with_store,
)
from attune_cli.pipeline_state import drained_lags
from attune_cli.simulator.generate import generate
from attune_cli.simulator.model import Scenario, SimConfig
from attune_cli.simulator.publish import publish
from attune_cli.stack import ROOT, SERVICES, ServiceProcess
from attune_shared.kafka_admin import ensure_topics
from attune_shared.settings import ServiceSettings
from attune_shared.topics import Topics

RECORDS_PER_CLIENT_WEEK = 2.7  # what the simulator emits on average (sessions, questionnaires, noise)
TARGETS = {  # issue 21's, and issue 15's size ratio
    "throughput_eps": 3000.0,  # at TARGET_RECORDS records or more
    "throughput_vs_chain": 0.5,
    "throughput_vs_naive": 20.0,
    "alert_latency_p99_ms": 250.0,  # at TARGET_LATENCY_RATE events/s
    "peak_rss_mb": 150.0,  # per service, at TARGET_RECORDS records or more
    "cpu_us_per_event": 100.0,  # per service
    "throughput_largest_vs_smallest": 0.85,  # issue 15: at 200k records within 15% of 50k
}
TARGET_RECORDS = 200_000
TARGET_LATENCY_RATE = 500.0
DEFAULT_RATES = (100.0, 500.0, 2000.0)
RSS_SAMPLE_SECONDS = 0.5
PROFILE_RATE = 50  # py-spy samples per second of each service (--profile)


@dataclass
class PipelineRun:
    """One drain of the inbound topic through the four services."""

    instances: int
    records: int
    seconds: float
    events_per_second: float
    cpu_seconds: dict[str, float]
    peak_rss_mb: dict[str, float]
    drained: bool = True
    lag_at_end: dict[str, int] = field(default_factory=dict)
    infra_cpu_seconds: dict[str, float] = field(default_factory=dict)  # the local broker and store
    # CPU milliseconds per inbound record, from the unrounded seconds: each service, and the broker
    # (kafka), ferretdb, postgres (on that store) and store (ferretdb + postgres)
    cpu_ms_per_event: dict[str, float] = field(default_factory=dict)
    infra_cpu_ms_per_event: dict[str, float] = field(default_factory=dict)
    size: int = 0  # the --events it was asked for (records is what the network came out with)
    # On the PostgreSQL store: what PostgreSQL did per inbound record (pg_stat_database of FerretDB's
    # database): transactions (FerretDB runs each statement in one) and rows read, written
    store_ops_per_event: dict[str, float] = field(default_factory=dict)
    # The same CPU per inbound record in microseconds (issue 21), from the unrounded seconds
    cpu_us_per_event: dict[str, float] = field(default_factory=dict)
    infra_cpu_us_per_event: dict[str, float] = field(default_factory=dict)
    # Each service's resident memory in the last half of the drain: the median of its samples (MB;
    # instances: the largest), sampled every RSS_SAMPLE_SECONDS from the first publish
    steady_rss_mb: dict[str, float] = field(default_factory=dict)
    rss_samples: int = 0
    # --profile: py-spy flame graphs (SVG, relative to the repository) per service instance; the
    # drain's figures then include py-spy's overhead
    profiles: dict[str, str] = field(default_factory=dict)


@dataclass
class LatencyRun:
    """Alert latency of one paced run: publish to alert, milliseconds."""

    rate: float
    records: int
    alerts: int
    ms: dict[str, float]  # p50, p95, p99, max
    drained: bool = True


@dataclass
class Results:
    """Everything one `attune bench` measured."""

    started_at: str
    git_revision: str
    cores: int
    records: int
    network: dict[str, Any]
    pipeline: PipelineRun | None = None
    raw_limit_eps: float = 0.0
    naive_eps: float = 0.0
    naive_records: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    latency_alerts: int = 0
    latency_rate: float = 0.0
    scale_out: PipelineRun | None = None
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    store: str = ""  # postgresql, or "" (no local FerretDB); earlier results may say sqlite
    sizes: list[PipelineRun] = field(default_factory=list)  # one drain per --events, smallest first
    size_ratio: dict[str, Any] = field(default_factory=dict)  # largest size's events/s / smallest's
    # The bare four-stage chain on the same records (issue 21) and the pipeline's events/s over its
    chain: ChainRun | None = None
    pipeline_vs_chain: float | None = None
    # Alert latency at each --rate (latency_ms / latency_alerts / latency_rate keep the one at
    # TARGET_LATENCY_RATE when it ran, else the last rate's)
    latency: list[LatencyRun] = field(default_factory=list)


BENCH_PREFIX = "bench"  # every database and topic a bench run creates starts with it
# PostgreSQL's counters of FerretDB's database, read before and after a drain (the PostgreSQL store).
PG_COUNTERS = ("xact_commit", "tup_returned", "tup_fetched", "tup_inserted", "tup_updated", "tup_deleted")
PG_LABELS = {
    "xact_commit": "transactions",
    "tup_returned": "rows scanned",
    "tup_fetched": "rows fetched by index",
    "tup_inserted": "rows inserted",
    "tup_updated": "rows updated",
    "tup_deleted": "rows deleted",
}


def pg_counters(infra: LocalInfra) -> dict[str, float]:
    """PostgreSQL's cumulative counters of FerretDB's database; empty when the store is not PostgreSQL
    or they cannot be read (the figures are then left out, never guessed)."""
    if infra.store != "postgresql":
        return {}
    query = f"SELECT {', '.join(PG_COUNTERS)} FROM pg_stat_database WHERE datname = 'ferretdb'"
    try:
        out = subprocess.run(
            [str(ROOT / "deploy" / "infra.sh"), "psql", "-Atc", query],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        values = [float(v) for v in out.stdout.strip().split("|")]
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}
    return dict(zip(PG_COUNTERS, values, strict=True)) if len(values) == len(PG_COUNTERS) else {}


def per_event(before: dict[str, float], after: dict[str, float], records: int) -> dict[str, float]:
    """Counter deltas per inbound record (empty when either reading is missing)."""
    if not before or not after or not records:
        return {}
    return {k: round((after[k] - before[k]) / records, 2) for k in PG_COUNTERS if k in before and k in after}


async def _clean(settings: ServiceSettings, console: Console) -> None:
    """Drop the databases and topics of bench runs (this one's at the end, an interrupted one's at the
    start), so repeated runs do not fill the disk or slow the store down. Only names the bench made."""
    from aiokafka.admin import AIOKafkaAdminClient
    from pymongo import AsyncMongoClient

    from attune_shared.kafka import aiokafka_kwargs

    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri.get_secret_value())
    try:
        dbs = [d for d in await mongo.list_database_names() if d.startswith(BENCH_PREFIX)]
        for name in dbs:
            await mongo.drop_database(name)
    finally:
        await mongo.close()
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings), request_timeout_ms=30000)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(BENCH_PREFIX)]
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()
    if dbs or topics:
        console.print(f"cleaned up {len(dbs)} bench database(s) and {len(topics)} bench topic(s)")


def network_for(
    events: int, weeks: int, seed: int, per_client_week: float = RECORDS_PER_CLIENT_WEEK
) -> SimConfig:
    """A seeded network sized for about `events` inbound records."""
    clients = max(10, math.ceil(events / (weeks * per_client_week)))
    return SimConfig(clinics=max(3, min(50, clients // 60)), clients=clients, weeks=weeks, seed=seed)


def scenario_for(events: int, weeks: int, seed: int) -> tuple[SimConfig, Scenario]:
    """A seeded network of at least `events` inbound records: the simulator's yield per client varies
    with the seed, so a network that came out short is made again with more clients."""
    config = network_for(events, weeks, seed)
    scenario = generate(config)
    for _ in range(5):
        if len(scenario.records) >= events:
            break
        per_client_week = len(scenario.records) / (config.clients * weeks)
        config = network_for(math.ceil(events * 1.01), weeks, seed, per_client_week)
        scenario = generate(config)
    return config, scenario


def _proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds, peak RSS in MB) of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return cpu, peak


def rss_mb(pid: int) -> float | None:
    """Resident memory of a live process in MB (VmRSS), None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def steady_rss(samples: Sequence[tuple[float, float]], start: float, end: float) -> float | None:
    """The median of the (time, MB) samples taken in the last half of [start, end]; None without any."""
    half = start + (end - start) / 2
    tail = [mb for at, mb in samples if half <= at <= end]
    return round(statistics.median(tail), 1) if tail else None


def steady_by_service(
    samples: dict[str, list[tuple[float, float]]], names: dict[str, str], start: float, end: float
) -> dict[str, float]:
    """Each service's steady RSS: the largest of its instances' (`names` maps an instance to its service)."""
    out: dict[str, float] = {}
    for key, values in samples.items():
        steady = steady_rss(values, start, end)
        if steady is not None:
            out[names[key]] = max(out.get(names[key], 0.0), steady)
    return out


class RssSampler:
    """Samples the resident memory of some processes every `every` seconds, in a thread."""

    def __init__(self, pids: dict[str, int], every: float = RSS_SAMPLE_SECONDS) -> None:
        self.pids, self.every = pids, every
        self.samples: dict[str, list[tuple[float, float]]] = {key: [] for key in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            now = time.monotonic()
            for key, pid in self.pids.items():
                mb = rss_mb(pid)
                if mb is not None:
                    self.samples[key].append((now, mb))
            if self._stop.wait(self.every):
                return


def py_spy() -> Path:
    """The py-spy executable (a dev dependency: `uv sync` installs it beside this Python)."""
    import shutil
    import sys

    here = Path(sys.executable).parent / "py-spy"
    found = here if here.exists() else (Path(p) if (p := shutil.which("py-spy")) else None)
    if found is None:
        raise RuntimeError("--profile needs py-spy: `uv sync` installs it (a dev dependency)")
    return found


class Profiler:
    """`py-spy record` of each process until stopped: SIGINT makes py-spy write its flame graph.
    py-spy attaches with ptrace (root, or CAP_SYS_PTRACE / kernel.yama.ptrace_scope 0)."""

    def __init__(self, pids: dict[str, int], out_prefix: Path, logs: Path) -> None:
        self.pids, self.out_prefix, self.logs = pids, out_prefix, logs
        self.procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}

    def __enter__(self) -> Profiler:
        exe = py_spy()
        self.out_prefix.parent.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        for key, pid in self.pids.items():
            svg = self.out_prefix.with_name(f"{self.out_prefix.name}-{key}.svg")
            log = (self.logs / f"py-spy-{key}.log").open("ab")
            cmd = [str(exe), "record", "--pid", str(pid), "--output", str(svg), "--format", "flamegraph"]
            cmd += ["--rate", str(PROFILE_RATE)]
            self.procs[key] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), svg)
        return self

    def __exit__(self, *_: Any) -> None:
        for proc, _svg in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc, _svg in self.procs.values():
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def written(self) -> dict[str, str]:
        """The flame graphs py-spy wrote, by process, relative to the repository when inside it."""
        out = {}
        for key, (_proc, svg) in self.procs.items():
            if svg.exists() and svg.stat().st_size:
                out[key] = str(svg.relative_to(ROOT)) if svg.is_relative_to(ROOT) else str(svg)
        return out


def _env(prefix: str) -> dict[str, str]:
    return {
        "ATTUNE_NAME_PREFIX": prefix,
        "ATTUNE_ALERTS_CLOCK": "event",
        "ATTUNE_ALERTS_SWEEP_SECONDS": "5",
        "ATTUNE_LOG_FORMAT": "json",
        "ATTUNE_LOG_LEVEL": "warning",
        "ATTUNE_BATCH_TIMEOUT_MS": "20",
    }


class Stack:
    """The four services (n instances each) in their own namespace."""

    def __init__(self, prefix: str, instances: int, logs: Path) -> None:
        self.prefix = prefix
        self.settings = ServiceSettings(attune_name_prefix=prefix)
        self.procs = [
            ServiceProcess(name, _env(prefix), logs / f"{name}-{i}.log")
            for name in SERVICES
            for i in range(instances)
        ]

    def __enter__(self) -> Stack:
        asyncio.run(ensure_topics(self.settings))
        try:
            for p in self.procs:
                p.start()
            for p in self.procs:
                p.wait_ready(timeout=120)
        except BaseException:
            self.__exit__()  # a service that did not come up: stop the others, leave nothing running
            raise
        return self

    def __exit__(self, *_: Any) -> None:
        for p in self.procs:
            if p.proc is not None and p.proc.poll() is None:
                p.proc.send_signal(15)
        for p in self.procs:
            p.wait_exit()

    def stats(self) -> dict[str, tuple[float, float]]:
        """CPU seconds and peak RSS per service (instances summed / maxed)."""
        out: dict[str, tuple[float, float]] = {}
        for p in self.procs:
            assert p.proc is not None
            cpu, rss = _proc_stats(p.proc.pid)
            seen = out.get(p.name, (0.0, 0.0))
            out[p.name] = (seen[0] + cpu, max(seen[1], rss))
        return out

    def pids(self) -> dict[str, int]:
        """The services' processes by name (name-i with several instances)."""
        several = len(self.procs) > len(SERVICES)
        out: dict[str, int] = {}
        seen: dict[str, int] = defaultdict(int)
        for p in self.procs:
            assert p.proc is not None
            out[f"{p.name}-{seen[p.name]}" if several else p.name] = p.proc.pid
            seen[p.name] += 1
        return out

    def url(self, name: str) -> str:
        """Base URL of the first instance of a service."""
        return next(p.url for p in self.procs if p.name == name)


def _publish(scenario: Scenario, settings: ServiceSettings, rate: float | None = None) -> None:
    asyncio.run(
        publish(
            scenario,
            via="kafka",
            bootstrap=settings.kafka_bootstrap_servers,
            topic=settings.topic(Topics.EHR_EVENTS),
            rate=rate,
        )
    )


class NotDrained(TimeoutError):
    """The pipeline still had lag when the drain's time was up."""

    def __init__(self, timeout: float, lags: dict[str, int]) -> None:
        super().__init__(f"the pipeline did not drain within {timeout:.0f}s (lag {lags})")
        self.lags = lags


def _wait_drained(settings: ServiceSettings, console: Console, timeout: float) -> float:
    """Block until every consumer group's lag is zero; returns the monotonic time it was seen."""
    deadline = time.monotonic() + timeout
    last_print = 0.0
    lags: dict[str, int] = {}
    while time.monotonic() < deadline:
        lags = asyncio.run(drained_lags(settings))
        if sum(lags.values()) == 0:
            return time.monotonic()
        if time.monotonic() - last_print > 10:
            console.print(f"  lag {lags}", highlight=False)
            last_print = time.monotonic()
        time.sleep(0.5)
    raise NotDrained(timeout, lags)


def per_event_ms(cpu_seconds: dict[str, float], records: int) -> dict[str, float]:
    """CPU milliseconds per inbound record of each process (group)."""
    return {n: round(1000 * s / records, 3) for n, s in cpu_seconds.items()} if records else {}


def per_event_us(cpu_seconds: dict[str, float], records: int) -> dict[str, float]:
    """CPU microseconds per inbound record of each process (group)."""
    return {n: round(1e6 * s / records, 1) for n, s in cpu_seconds.items()} if records else {}


def pipeline_run(
    scenario: Scenario,
    instances: int,
    logs: Path,
    console: Console,
    timeout: float,
    infra: LocalInfra | None = None,
    profile_to: Path | None = None,
) -> tuple[PipelineRun, ServiceSettings]:
    """Publish every record as fast as possible; time until every group has drained. With
    `profile_to`, py-spy records each service meanwhile into `<profile_to>-<service>.svg`."""
    infra = infra or detect_infra(run_dir(ROOT))
    prefix = f"{BENCH_PREFIX}{datetime.now(UTC).strftime('%H%M%S')}x{instances}_"
    run_logs = logs / prefix.rstrip("_")
    with Stack(prefix, instances, run_logs) as stack:
        pids = stack.pids()
        names = {key: p.name for key, p in zip(pids, stack.procs, strict=True)}
        before, infra_before, pg_before = stack.stats(), infra_readings(infra), pg_counters(infra)
        console.print(f"publishing {len(scenario.records)} records ({instances} instance(s) per service) ...")
        profiler = Profiler(pids, profile_to, run_logs) if profile_to else None
        with RssSampler(pids) as sampler, profiler or contextlib.nullcontext():
            started = time.monotonic()
            _publish(scenario, stack.settings)
            console.print(
                f"  published in {time.monotonic() - started:.1f}s; waiting for every group to drain"
            )
            lags: dict[str, int] = {}
            try:
                done = _wait_drained(stack.settings, console, timeout)
            except NotDrained as exc:  # report what was measured, marked as not drained
                console.print(f"[red]{exc}[/]", highlight=False)
                done, lags = time.monotonic(), exc.lags
            after, infra_after = stack.stats(), infra_readings(infra)
        time.sleep(1.5)  # PostgreSQL's backends report their counters at most once a second
        pg_after = pg_counters(infra)
    seconds = done - started
    records = len(scenario.records)
    cpu = {n: after[n][0] - before[n][0] for n in after}
    infra_cpu = infra_cpu_between(infra_before, infra_after)
    run = PipelineRun(
        instances=instances,
        records=len(scenario.records),
        seconds=round(seconds, 1),
        events_per_second=0.0 if lags else round(len(scenario.records) / seconds, 1),
        cpu_seconds={n: round(v, 1) for n, v in cpu.items()},
        peak_rss_mb={n: round(after[n][1], 1) for n in after},
        drained=not lags,
        lag_at_end=lags,
        infra_cpu_seconds={n: round(v, 1) for n, v in infra_cpu.items()},
        cpu_ms_per_event=per_event_ms(cpu, records),
        infra_cpu_ms_per_event=per_event_ms(with_store(infra_cpu), records),
        store_ops_per_event=per_event(pg_before, pg_after, records),
        cpu_us_per_event=per_event_us(cpu, records),
        infra_cpu_us_per_event=per_event_us(with_store(infra_cpu), records),
        steady_rss_mb=steady_by_service(sampler.samples, names, started, done),
        rss_samples=max((len(v) for v in sampler.samples.values()), default=0),
        profiles=profiler.written() if profiler else {},
    )
    return run, stack.settings


async def _records(settings: ServiceSettings, topic: str) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        parts = [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        out: list[Any] = []
        while any([await consumer.position(tp) < end for tp, end in ends.items()]):
            for recs in (await consumer.getmany(timeout_ms=1000, max_records=5000)).values():
                out.extend(recs)
        return out
    finally:
        await consumer.stop()


def alert_latency(
    scenario: Scenario, rate: float, logs: Path, console: Console, timeout: float = 1800
) -> tuple[list[float], int, bool]:
    """Milliseconds from an inbound record's publish to its alert on clinic.alerts.v1 (paced
    publishing); the records published and whether the pipeline drained them in time."""
    prefix = f"{BENCH_PREFIX}lat{datetime.now(UTC).strftime('%H%M%S')}r{rate:.0f}_"
    drained = True
    with Stack(prefix, 1, logs / prefix.rstrip("_")) as stack:
        console.print(f"alert latency: publishing {len(scenario.records)} records at {rate:.0f}/s ...")
        _publish(scenario, stack.settings, rate=rate)
        try:
            _wait_drained(stack.settings, console, timeout=timeout)
        except NotDrained as exc:  # the alerts that did arrive still have their latencies
            console.print(f"[red]{exc}[/]", highlight=False)
            drained = False
        inbound = asyncio.run(_records(stack.settings, stack.settings.topic(Topics.EHR_EVENTS)))
        alerts = asyncio.run(_records(stack.settings, stack.settings.topic(Topics.ALERTS)))
    # The record that triggers an alert: a response (by response_id) or an appointment outcome.
    sent: dict[tuple[str, str], int] = {}
    for r in inbound:
        try:
            doc = json.loads(r.value)
            payload = doc["payload"]
        except (ValueError, KeyError, TypeError):
            continue
        for field_name in ("response_id", "appointment_id"):
            ident = payload.get(field_name)
            if isinstance(ident, str) and doc.get("event_type") != "appointment.scheduled":
                sent.setdefault((field_name, ident), r.timestamp)
    expected: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for c in scenario.truth.clients:
        for a in sorted(c.expected_alerts, key=lambda a: a.raised_at):
            expected[(c.client_ref, a.rule_id)].append(a)
    raised: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for r in sorted(alerts, key=lambda r: r.timestamp):
        ev = json.loads(r.value)
        if ev["event_type"] == "alert.raised":
            raised[(ev["alert"]["client_ref"], ev["alert"]["rule_id"])].append(r)
    latencies: list[float] = []
    for key, records in raised.items():
        for rec, truth in zip(records, expected.get(key, []), strict=False):
            if "inactivity" in truth.criteria:
                continue  # raised by the periodic sweep, not by an inbound record
            kind = "response_id" if truth.trigger_kind == "response" else "appointment_id"
            at = sent.get((kind, truth.trigger))
            if at is not None:
                latencies.append(max(0.0, rec.timestamp - at))
    return latencies, len(scenario.records), drained


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    qs = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else [values[0]] * 99
    return {
        "p50": round(qs[49], 1),
        "p95": round(qs[94], 1),
        "p99": round(qs[98], 1),
        "max": round(max(values), 1),
    }


def run_bench(
    *,
    events: int | Sequence[int],
    weeks: int,
    seed: int,
    latency_events: int,
    rate: float | Sequence[float] = DEFAULT_RATES,
    scale_out: bool,
    naive_seconds: float,
    timeout: float,
    console: Console,
    only_throughput: bool = False,
    latency_seconds: float = 120.0,
    chain: bool = True,
    profile: bool = False,
    grow: str = "clients",
) -> Results:
    """The whole benchmark; prints the table and writes the JSON results file.

    One size and not `only_throughput`: the classic run (one drain, then the comparisons). Several
    sizes, or `only_throughput`: one drain per size, smallest first, then (unless `only_throughput`)
    the comparisons on the largest size's network, and the table of the sizes. `profile`: py-spy
    flame graphs of each service during the largest drain, under bench/results/. `grow`: "clients"
    sizes each network for its size over `weeks`; "weeks" keeps the smallest size's network (clinics,
    clients, seed) and runs it over proportionally more weeks, so only the data grows, not the number
    of clients a batch of records spreads over."""
    if grow not in ("clients", "weeks"):
        raise ValueError(f"grow must be clients or weeks, not {grow!r}")
    sizes = sorted({events} if isinstance(events, int) else set(events))
    if not sizes:
        raise ValueError("no --events size to run")
    rates = sorted({rate} if isinstance(rate, (int, float)) else set(rate))
    if profile:
        py_spy()  # fail before the first drain, not after it
    by_size = len(sizes) > 1 or only_throughput
    logs = ROOT / "var" / "bench"
    revision = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    infra = detect_infra(run_dir(ROOT))
    console.rule(
        f"[bold]attune bench[/] ({os.cpu_count()} cores, revision {revision or '?'}, store: {infra.label})"
    )
    base = ServiceSettings()
    asyncio.run(_clean(base, console))  # what an interrupted run left
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    stamp = started_at.replace(":", "").replace("-", "")
    results_dir = ROOT / "bench" / "results"
    runs: list[PipelineRun] = []
    first: SimConfig | None = None  # the smallest size's network
    for i, size in enumerate(sizes):
        if i:  # the previous size's topics and databases, so each size starts on an equal store
            asyncio.run(_clean(base, console))
        t = time.monotonic()
        if grow == "weeks" and first is not None:
            longer = round(weeks * size / sizes[0])
            if longer > 104:
                raise ValueError(
                    f"--grow weeks: {size} records need {longer} weeks of the network; at most 104"
                )
            config = replace(first, weeks=longer)
            scenario = generate(config)
        else:
            config, scenario = scenario_for(size, weeks, seed)
        first = first or config
        console.print(
            f"{f'size {size}: ' if by_size else ''}"
            f"network: {config.clinics} clinics, {config.clients} clients, {config.weeks} weeks, seed {seed}: "
            f"{len(scenario.records)} records (generated in {time.monotonic() - t:.1f}s)"
        )
        largest = i == len(sizes) - 1
        profile_to = results_dir / f"{stamp}-profile-{size}" if profile and largest else None
        run, settings = pipeline_run(scenario, 1, logs, console, timeout, infra, profile_to)
        run.size = size
        runs.append(run)
        console.print(f"  pipeline: {run.events_per_second} events/s")
    res = Results(
        started_at=started_at,
        git_revision=revision,
        cores=os.cpu_count() or 0,
        records=len(scenario.records),
        network={
            "clinics": config.clinics,
            "clients": config.clients,
            "weeks": config.weeks,
            "seed": seed,
            "grow": grow,
        },
        pipeline=runs[-1],
        store=infra.store,
    )
    if by_size:
        res.sizes, res.size_ratio = runs, size_ratio(runs)

    if not only_throughput:
        _comparisons(
            res,
            scenario,
            settings,
            infra=infra,
            latency_events=latency_events,
            latency_seconds=latency_seconds,
            rates=rates,
            chain=chain,
            scale_out=scale_out,
            naive_seconds=naive_seconds,
            timeout=timeout,
            seed=seed,
            logs=logs,
            console=console,
        )
    res.targets = judge_targets(res)
    if not only_throughput:
        _print(res, console)
    if by_size:
        _print_sizes(res, infra, console, only_throughput)
    if only_throughput:
        _print_targets(res, console)
    out = results_dir / f"{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(asdict(res), indent=2) + "\n")
    console.print(f"results written to {out.relative_to(ROOT)}")
    asyncio.run(_clean(base, console))
    return res


def _comparisons(
    res: Results,
    scenario: Scenario,
    settings: ServiceSettings,
    *,
    infra: LocalInfra,
    latency_events: int,
    latency_seconds: float,
    rates: Sequence[float],
    chain: bool,
    scale_out: bool,
    naive_seconds: float,
    timeout: float,
    seed: int,
    logs: Path,
    console: Console,
) -> None:
    """The raw limit and the naive baseline on the drained inbound topic, the four-stage chain on
    the same records, the paced latency runs and the scale-out run (on the same network)."""
    inbound = settings.topic(Topics.EHR_EVENTS)
    raw = asyncio.run(
        raw_limit(settings, inbound, len(scenario.records), f"{settings.attune_name_prefix}raw")
    )
    res.raw_limit_eps = round(raw.per_second, 1)
    console.print(f"  raw limit: {res.raw_limit_eps} events/s")
    naive = asyncio.run(
        naive_baseline(
            settings, inbound, len(scenario.records), f"{settings.attune_name_prefix}naive", naive_seconds
        )
    )
    res.naive_eps, res.naive_records = round(naive.per_second, 1), naive.records
    console.print(
        f"  naive baseline: {res.naive_eps} events/s ({naive.records} records in {naive.seconds:.0f}s)"
    )

    if chain:
        prefix = settings.attune_name_prefix
        console.print(f"four-stage chain: publishing {len(scenario.records)} records ...")
        try:
            res.chain = asyncio.run(
                four_stage_chain(
                    settings,
                    scenario,
                    prefix,
                    max_records=settings.attune_batch_max_records,
                    timeout_ms=int(_env(prefix)["ATTUNE_BATCH_TIMEOUT_MS"]),
                    timeout=timeout,
                    infra=infra,
                )
            )
        finally:
            asyncio.run(drop_chain(settings, prefix))
        res.pipeline_vs_chain = vs_chain(res.pipeline, res.chain)
        console.print(
            f"  four-stage chain: {res.chain.events_per_second} events/s"
            if res.chain.drained
            else f"  [red]four-stage chain did not finish: {res.chain.error}[/]"
        )

    for rate in rates:
        count = latency_records(latency_events, rate, latency_seconds)
        _, lat_scenario = scenario_for(count, 12, seed + 1)
        values, published, drained = alert_latency(lat_scenario, rate, logs, console, timeout)
        res.latency.append(LatencyRun(rate, published, len(values), _percentiles(values), drained))
    kept = next((r for r in res.latency if r.rate == TARGET_LATENCY_RATE), None) or (
        res.latency[-1] if res.latency else None
    )
    if kept is not None:
        res.latency_ms, res.latency_alerts, res.latency_rate = kept.ms, kept.alerts, kept.rate

    if scale_out:
        res.scale_out, _ = pipeline_run(scenario, 2, logs, console, timeout, infra)


def latency_records(latency_events: int, rate: float, latency_seconds: float) -> int:
    """Records of one paced run: --latency-events, at most `latency_seconds` of publishing at `rate`
    (never fewer than 1,000, so a slow rate still raises alerts)."""
    return max(1000, min(latency_events, math.ceil(rate * latency_seconds)))


def vs_chain(pipeline: PipelineRun | None, chain: ChainRun | None) -> float | None:
    """The pipeline's events/s over the chain's (None unless both drained)."""
    if not pipeline or not chain or not pipeline.drained or not chain.drained or not chain.events_per_second:
        return None
    return round(pipeline.events_per_second / chain.events_per_second, 3)


def size_ratio(runs: Sequence[PipelineRun]) -> dict[str, Any]:
    """The largest size's events/s as a share of the smallest's (issue 15: at least 0.85); empty for
    fewer than two sizes, `ratio` and `met` None when either drain did not finish."""
    if len(runs) < 2:
        return {}
    small = min(runs, key=lambda r: (r.size or r.records, r.records))
    large = max(runs, key=lambda r: (r.size or r.records, r.records))
    out: dict[str, Any] = {
        "smallest": small.size or small.records,
        "largest": large.size or large.records,
        "smallest_eps": small.events_per_second,
        "largest_eps": large.events_per_second,
        "floor": TARGETS["throughput_largest_vs_smallest"],
        "ratio": None,
        "met": None,
    }
    if small.drained and large.drained and small.events_per_second > 0:
        ratio = large.events_per_second / small.events_per_second
        out["ratio"], out["met"] = round(ratio, 3), ratio >= out["floor"]
    return out


def verdict(ratio: dict[str, Any]) -> str:
    """One line: is the largest size's throughput within 15% of the smallest's?"""
    if not ratio:
        return "one size only: no throughput ratio"
    small, large = f"{ratio['smallest']:,}", f"{ratio['largest']:,}"
    if ratio["ratio"] is None:
        return f"[red]no verdict[/]: the drain of {small} or of {large} records did not finish"
    change = ratio["ratio"] - 1
    allowed = f"{1 - ratio['floor']:.0%}"
    head = (
        f"throughput at {large}: {ratio['largest_eps']} events/s, {ratio['ratio']:.3f} x "
        f"{ratio['smallest_eps']} at {small} ({change:+.1%})"
    )
    if ratio["met"]:
        return f"{head}: within {allowed} of {small}: [green]met[/]"
    return f"{head}: more than {allowed} slower than at {small}: [red]not met[/]"


def _size_target(ratio: dict[str, Any]) -> dict[str, dict[str, Any]]:
    if not ratio:
        return {}
    name = f"throughput at {ratio['largest']:,} within {1 - ratio['floor']:.0%} of {ratio['smallest']:,}"
    return {name: {"value": ratio["ratio"], "met": bool(ratio["met"])}}


def _target(value: Any, met: bool | None, limit: float, **extra: Any) -> dict[str, Any]:
    return {"value": value, "met": met, "limit": limit, **extra}


def _worst(figures: dict[str, float]) -> tuple[str, float] | None:
    return max(figures.items(), key=lambda kv: kv[1]) if figures else None


def judge_targets(res: Results) -> dict[str, dict[str, Any]]:
    """Issue 21's targets (and issue 15's size ratio) with the value measured and met or not; `met` is
    None (not judged, with a `note`) when the run did not measure it: a smaller network than the
    target's, no chain, naive or 500 events/s run. Figures only: nothing asserts on them."""
    p = res.pipeline
    out: dict[str, dict[str, Any]] = {}
    big = p is not None and p.records >= TARGET_RECORDS
    small_note = {} if big else {"note": f"judged at {TARGET_RECORDS:,} records or more"}

    eps = p.events_per_second if p and p.drained else None
    floor = TARGETS["throughput_eps"]
    out[f"throughput >= {floor:,.0f} events/s at {TARGET_RECORDS:,} records"] = _target(
        eps, (eps is not None and eps >= floor) if big else None, floor, **small_note
    )

    floor = TARGETS["throughput_vs_chain"]
    ratio = res.pipeline_vs_chain
    out[f"throughput >= {floor} x the four-stage chain"] = _target(
        ratio,
        None if ratio is None else ratio >= floor,
        floor,
        **({} if ratio is not None else {"note": "no drained chain and pipeline in this run"}),
    )

    floor = TARGETS["throughput_vs_naive"]
    vs_naive = round(eps / res.naive_eps, 2) if eps is not None and res.naive_eps else None
    out[f"throughput >= {floor:.0f} x the naive baseline"] = _target(
        vs_naive,
        None if vs_naive is None else vs_naive >= floor,
        floor,
        **({} if vs_naive is not None else {"note": "no naive baseline or drained pipeline"}),
    )

    ceiling = TARGETS["alert_latency_p99_ms"]
    at = next((r for r in res.latency if r.rate == TARGET_LATENCY_RATE), None)
    p99 = at.ms.get("p99") if at else None
    out[f"alert latency p99 <= {ceiling:.0f} ms at {TARGET_LATENCY_RATE:.0f} events/s"] = _target(
        p99,
        None if p99 is None else p99 <= ceiling,
        ceiling,
        **({} if p99 is not None else {"note": f"no alerts measured at {TARGET_LATENCY_RATE:.0f}/s"}),
    )

    ceiling = TARGETS["peak_rss_mb"]
    worst = _worst(p.peak_rss_mb) if p else None
    out[f"peak RSS <= {ceiling:.0f} MB per service at {TARGET_RECORDS:,} records"] = _target(
        worst[1] if worst else None,
        (worst[1] <= ceiling) if worst and big else None,
        ceiling,
        **({"worst": worst[0]} if worst else {}),
        **small_note,
    )

    ceiling = TARGETS["cpu_us_per_event"]
    worst = _worst(p.cpu_us_per_event) if p else None
    out[f"CPU <= {ceiling:.0f} us per inbound event per service"] = _target(
        worst[1] if worst else None,
        (worst[1] <= ceiling) if worst else None,
        ceiling,
        **({"worst": worst[0]} if worst else {"note": "no CPU figures"}),
    )
    return {**out, **_size_target(res.size_ratio)}


def met_cell(t: dict[str, Any]) -> str:
    """yes / no / not judged (why)."""
    if t["met"] is None:
        return f"not judged ({t['note']})" if t.get("note") else "not judged"
    return "[green]yes[/]" if t["met"] else "[red]no[/]"


def value_cell(t: dict[str, Any]) -> str:
    """The measured value, with the worst service when the target is per service."""
    if t["value"] is None:
        return "-"
    return f"{t['value']} ({t['worst']})" if t.get("worst") else str(t["value"])


def _joined(figures: dict[str, float], unit: str = "") -> str:
    return ", ".join(f"{k} {v:g}{unit}" for k, v in figures.items()) or "-"


def _cpu_us(p: PipelineRun) -> str:
    infra = {k: v for k, v in p.infra_cpu_us_per_event.items() if k in ("kafka", "store")}
    return _joined({**p.cpu_us_per_event, **{"broker" if k == "kafka" else k: v for k, v in infra.items()}})


def report_rows(res: Results) -> list[tuple[str, str]]:
    """The rows of the printed table (measure, figure)."""
    rows: list[tuple[str, str]] = []
    p = res.pipeline
    if p:
        rows.append(
            (
                "pipeline throughput (1 instance each)",
                f"{p.events_per_second} events/s ({p.seconds}s)"
                if p.drained
                else f"not drained in {p.seconds}s; lag left {p.lag_at_end}",
            )
        )
        if p.cpu_us_per_event:
            rows.append(("  CPU us per inbound event (services, broker, store)", _cpu_us(p)))
        rows.append(("  CPU seconds per service", _joined(p.cpu_seconds)))
        if p.infra_cpu_seconds:
            rows.append(("  CPU seconds of the local broker and store", _joined(p.infra_cpu_seconds)))
        rows.append(("  peak RSS per service (MB)", _joined(p.peak_rss_mb)))
        if p.steady_rss_mb:
            rows.append(
                ("  steady RSS per service (MB, median of the drain's last half)", _joined(p.steady_rss_mb))
            )
        if p.profiles:
            rows.append(("  py-spy flame graphs (this drain ran profiled)", ", ".join(p.profiles.values())))
    c = res.chain
    if c:
        head = "four-stage chain (consume, insert_many, produce acks=all, commit)"
        if c.drained:
            ratio = f"; pipeline / chain {res.pipeline_vs_chain}" if res.pipeline_vs_chain is not None else ""
            rows.append((head, f"{c.events_per_second} events/s ({c.seconds}s){ratio}"))
            infra = {("broker" if k == "kafka" else k): v for k, v in c.infra_cpu_us_per_event.items()}
            infra = {k: v for k, v in infra.items() if k in ("broker", "store")}
            rows.append(("  chain CPU us per inbound event", _joined({**c.cpu_us_per_event, **infra})))
            rows.append(("  chain peak RSS per stage (MB)", _joined(c.peak_rss_mb)))
        else:
            rows.append((head, f"did not finish: {c.error}"))
    if res.raw_limit_eps:
        rows.append(
            ("raw limit (aiokafka + insert_many, one hop, no logic)", f"{res.raw_limit_eps} events/s")
        )
    if res.naive_eps:
        rows.append(("naive baseline (per-message validate, insert, commit)", f"{res.naive_eps} events/s"))
    for lat in res.latency:
        rows.append(
            (
                f"alert latency at {lat.rate:.0f} events/s ({lat.records:,} records, {lat.alerts} alerts)",
                (_joined(lat.ms, " ms") if lat.ms else "no alerts matched")
                + ("" if lat.drained else " (not drained in time)"),
            )
        )
    if res.scale_out and p and p.events_per_second:
        share = res.scale_out.events_per_second / p.events_per_second
        rows.append(
            (
                "scale-out (2 instances each)",
                f"{res.scale_out.events_per_second} events/s ({share:.2f} x one)",
            )
        )
    return rows


def _print(res: Results, console: Console) -> None:
    table = Table(
        "measure", "figure", title=f"attune bench: {res.records} inbound records, {res.cores} cores"
    )
    for name, figure in report_rows(res):
        table.add_row(name, figure)
    console.print(table)
    _print_targets(res, console)


def _print_targets(res: Results, console: Console) -> None:
    targets = Table("target", "value", "met", title="Targets (issue 21; figures, never asserted)")
    for name, t in res.targets.items():
        targets.add_row(name, value_cell(t), met_cell(t))
    console.print(targets)


def _ratio_cell(first: float | None, last: float | None) -> str:
    return f"{last / first:.2f}" if first and last is not None else "-"


def sizes_rows(runs: Sequence[PipelineRun]) -> list[tuple[str, list[float | None]]]:
    """The rows of the sizes table: a label and one figure per run (None: not measured)."""
    services = [n for n in SERVICES if any(n in r.cpu_ms_per_event for r in runs)]
    infra = [
        n
        for n in ("kafka", "ferretdb", "postgres", "store")
        if any(n in r.infra_cpu_ms_per_event for r in runs)
    ]
    label = {
        "kafka": "broker (kafka)",
        "ferretdb": "store: ferretdb",
        "postgres": "store: postgres (postmaster + backends)",
        "store": "store: total" if "postgres" in infra else "store: total (ferretdb alone)",
    }
    rows: list[tuple[str, list[float | None]]] = [
        ("records", [float(r.records) for r in runs]),
        ("seconds", [r.seconds for r in runs]),
        ("events/s", [r.events_per_second if r.drained else None for r in runs]),
    ]
    rows += [
        (f"CPU us/event {n}", [_us(r.cpu_us_per_event, r.cpu_ms_per_event, n) for r in runs])
        for n in services
    ]
    rows += [
        (
            f"CPU us/event {label[n]}",
            [_us(r.infra_cpu_us_per_event, r.infra_cpu_ms_per_event, n) for r in runs],
        )
        for n in infra
    ]
    rows += [
        (f"PostgreSQL {PG_LABELS[k]}/event", [r.store_ops_per_event.get(k) for r in runs])
        for k in PG_COUNTERS
        if any(k in r.store_ops_per_event for r in runs)
    ]
    rows += [(f"peak RSS MB {n}", [r.peak_rss_mb.get(n) for r in runs]) for n in services]
    rows += [
        (f"steady RSS MB {n}", [r.steady_rss_mb.get(n) for r in runs])
        for n in services
        if any(n in r.steady_rss_mb for r in runs)
    ]
    return rows


def _us(us: dict[str, float], ms: dict[str, float], name: str) -> float | None:
    """Microseconds per event: the µs figure, else the ms one (results from before the µs fields)."""
    if name in us:
        return us[name]
    return round(1000 * ms[name], 1) if name in ms else None


def _print_sizes(res: Results, infra: LocalInfra, console: Console, only_throughput: bool) -> None:
    runs = res.sizes
    title = f"attune bench: throughput by size, {infra.label}, {res.cores} cores (1 instance each)"
    table = Table("measure", *(f"{r.size:,}" for r in runs), title=title)
    if len(runs) > 1:
        table.add_column(f"{runs[-1].size:,} / {runs[0].size:,}")
    for name, values in sizes_rows(runs):
        cells = []
        for r, v in zip(runs, values, strict=True):
            if v is None:
                cells.append(f"not drained (lag {sum(r.lag_at_end.values())})" if name == "events/s" else "-")
            elif name == "records":
                cells.append(f"{int(v):,}")
            elif name.startswith("CPU"):
                cells.append(f"{v:.1f}")
            else:
                cells.append(f"{v}")
        if len(runs) > 1:
            cells.append(_ratio_cell(values[0], values[-1]))
        table.add_row(name, *cells)
    console.print(table)
    console.print(verdict(res.size_ratio), highlight=False)
    if only_throughput:
        console.print("(--only-throughput: no raw limit, naive baseline, latency or scale-out run)")
