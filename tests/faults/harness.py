"""A seeded scenario driven through the real stack, with faults injected between slices of the stream.

Every run gets its own name prefix (topics, consumer groups, databases), starts the four services as
real processes, publishes the scenario's records in slices with a hook between them (the fault), waits
until every group has drained and the alerts have settled, and takes a Snapshot of what came out:
alerts, alert events, dead letters, the network report and the number of documents per collection.
A fault run passes when its snapshot equals the no-fault run's and matches the ground truth.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import MongoClient

from attune_cli.demo import OPS, Outcome, compare, fetch_alerts, wait_settled
from attune_cli.simulator.generate import generate
from attune_cli.simulator.model import OutboundRecord, Scenario, SimConfig
from attune_cli.simulator.publish import publish
from attune_cli.stack import ROOT, SERVICES, ServiceProcess
from attune_shared.kafka_admin import TOPICS, ensure_topics
from attune_shared.settings import ServiceSettings
from attune_shared.topics import Topics
from tests.support.kafka_io import read_all

# Small enough that eight runs fit CI's time, large enough to hold every rule and dead-letter code.
CONFIG = SimConfig(clinics=3, clients=60, weeks=12, seed=7)
SLICES = 5
# Collections whose size depends on timing, not on the input: API audit entries, leases, dirty marks,
# webhook deliveries (only the webhook run has receivers), escalation claims.
VOLATILE = ("audit", "locks", "dirty", "deliveries", "claims")


def scenario() -> Scenario:
    """The seeded scenario every fault run replays."""
    return generate(CONFIG)


@dataclass
class Snapshot:
    """What one run produced, in a form two runs can be compared by."""

    alerts: Counter[str]
    alert_ids: dict[str, str]  # alert id -> what the alert says (client, rule, severity, resolution)
    alert_events: Counter[str]
    alert_event_bodies: dict[str, str]  # event id -> the event as published, less its processing times
    alert_event_copies: int
    all_alert_event_ids: set[str]
    dead_letters: dict[str, int]
    figures: dict[str, Any]
    documents: dict[str, int]
    outcome: Outcome

    def id_differences(self, other: Snapshot) -> dict[str, Any]:
        """Alert ids, alert event ids and event bytes that differ from `other` (asserted by `check`: the
        same input gives the same ids and bytes whatever the batch boundaries, restarts and replica
        counts; docs/reliability.md, "Alert ids and alert events do not depend on timing")."""
        diffs: dict[str, Any] = {}
        if set(self.alert_ids) != set(other.alert_ids):
            diffs["alert_ids"] = {
                "missing": sorted(
                    f"{i} ({other.alert_ids[i]})" for i in set(other.alert_ids) - set(self.alert_ids)
                ),
                "extra": sorted(
                    f"{i} ({self.alert_ids[i]})" for i in set(self.alert_ids) - set(other.alert_ids)
                ),
            }
        if self.all_alert_event_ids != other.all_alert_event_ids:
            diffs["alert_event_ids"] = {
                "missing": sorted(other.all_alert_event_ids - self.all_alert_event_ids)[:10],
                "extra": sorted(self.all_alert_event_ids - other.all_alert_event_ids)[:10],
            }
        changed = {
            i: (body, self.alert_event_bodies[i])
            for i, body in other.alert_event_bodies.items()
            if i in self.alert_event_bodies and self.alert_event_bodies[i] != body
        }
        if changed:
            diffs["alert_event_bodies"] = dict(list(changed.items())[:3])
        unequal_copies = sorted(k for k in self.alert_event_bodies if "#" in k)
        if unequal_copies:  # a redelivered copy whose bytes differ from the first copy's (see _bodies)
            diffs["alert_event_copies_unequal"] = unequal_copies[:5]
        return diffs

    def differences(self, other: Snapshot, *, extra_dead: Counter[str] | None = None) -> dict[str, Any]:
        """What differs from `other` (the no-fault run); `extra_dead` are dead letters this run added."""
        want_dead = Counter(other.dead_letters) + (extra_dead or Counter())
        diffs: dict[str, Any] = {}
        if self.alerts != other.alerts:
            diffs["alerts"] = {"missing": other.alerts - self.alerts, "extra": self.alerts - other.alerts}
        if self.alert_events != other.alert_events:
            diffs["alert_events"] = {
                "missing": other.alert_events - self.alert_events,
                "extra": self.alert_events - other.alert_events,
            }
        if Counter(self.dead_letters) != want_dead:
            diffs["dead_letters"] = {"expected": dict(want_dead), "actual": self.dead_letters}
        if self.figures != other.figures:
            diffs["figures"] = {
                k: (other.figures.get(k), self.figures.get(k))
                for k in set(self.figures) | set(other.figures)
                if self.figures.get(k) != other.figures.get(k)
            }
        dead_docs = {"intake/dead_letters": sum((extra_dead or Counter()).values())}
        for name in set(self.documents) | set(other.documents):
            want = other.documents.get(name, 0) + dead_docs.get(name, 0)
            if self.documents.get(name, 0) != want:
                diffs.setdefault("documents", {})[name] = (want, self.documents.get(name, 0))
        return diffs


@dataclass
class StackRun:
    """One isolated run of the four services over the scenario."""

    name: str
    logs: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    prefix: str = field(default_factory=lambda: f"f{uuid.uuid4().hex[:7]}_")
    procs: dict[str, list[ServiceProcess]] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)  # what the run did, for the report

    def __post_init__(self) -> None:
        self.settings = ServiceSettings(attune_name_prefix=self.prefix)
        self.env = {
            "ATTUNE_NAME_PREFIX": self.prefix,
            "ATTUNE_ALERTS_CLOCK": "event",
            "ATTUNE_ALERTS_SWEEP_SECONDS": "2",
            "ATTUNE_LOG_FORMAT": "json",
            "ATTUNE_REPORTING_GAUGE_REFRESH_S": "5",
            "ATTUNE_BATCH_TIMEOUT_MS": "50",
            **self.env_extra,
        }

    # ------------------------------------------------------------------ processes

    def start(self) -> StackRun:
        """Create the topics and start one instance of every service."""
        asyncio.run(ensure_topics(self.settings))
        for name in SERVICES:
            self.add(name)
        return self

    def add(self, name: str) -> ServiceProcess:
        """Start one more instance of a service and wait until it is ready."""
        n = len(self.procs.setdefault(name, []))
        proc = ServiceProcess(name, self.env, self.logs / f"{name}-{n}.log").start()
        self.procs[name].append(proc)
        proc.wait_ready(timeout=90)
        return proc

    def signal(self, name: str, sig: int, index: int = 0) -> int | None:
        """Send a signal to one instance and wait for its exit code."""
        code = self.procs[name][index].kill(sig)
        self.note(f"{name}[{index}] got signal {sig}: exit {code}")
        return code

    def restart(self, name: str, index: int = 0) -> None:
        """Start a stopped instance again (same log file, new process)."""
        self.procs[name][index].start().wait_ready(timeout=90)
        self.note(f"{name}[{index}] restarted")

    def live(self, name: str) -> ServiceProcess:
        """Any running instance of a service."""
        for p in self.procs[name]:
            if p.proc is not None and p.proc.poll() is None:
                return p
        raise RuntimeError(f"no {name} instance is running")

    def running(self) -> str:
        """How many of the started processes still run, e.g. "4 of 4"."""
        procs = [p for ps in self.procs.values() for p in ps]
        alive = sum(1 for p in procs if p.proc is not None and p.proc.poll() is None)
        return f"{alive} of {len(procs)}"

    def note(self, text: str) -> None:
        """Remember (and print) what the run did."""
        self.events.append(text)
        print(f"[{self.name}] {text}", flush=True)

    # ------------------------------------------------------------------ the stream

    def publish(self, scenario: Scenario, records: Sequence[OutboundRecord]) -> None:
        """Publish records to the inbound topic exactly as an EHR would (retrying while the broker is away)."""
        part = replace(scenario, records=tuple(records))
        deadline = time.monotonic() + 120
        while True:
            try:
                asyncio.run(
                    publish(
                        part,
                        via="kafka",
                        bootstrap=self.settings.kafka_bootstrap_servers,
                        topic=self.settings.topic(Topics.EHR_EVENTS),
                    )
                )
                return
            except Exception as exc:  # the broker may be restarting: an EHR would retry too
                if time.monotonic() > deadline:
                    raise
                self.note(f"publish retry after {type(exc).__name__}")
                time.sleep(2)

    def drive(
        self,
        scenario: Scenario,
        hooks: dict[int, Callable[[StackRun], None]] | None = None,
        extra: Sequence[OutboundRecord] = (),
        pause_s: float = 2.0,
    ) -> None:
        """Publish the scenario in SLICES slices (with `extra` records spread among them); after
        slice i, wait `pause_s` so the services are busy, then run hooks[i] (the fault)."""
        records = list(scenario.records)
        size = -(-len(records) // SLICES)
        slices = [records[i : i + size] for i in range(0, len(records), size)]
        for i, rec in enumerate(extra):
            slices[i % len(slices)].insert(len(slices[i % len(slices)]) // 2, rec)
        for i, part in enumerate(slices):
            self.publish(scenario, part)
            if hooks and i in hooks:
                time.sleep(pause_s)
                hooks[i](self)

    def settle(self, timeout: float = 200) -> float:
        """Wait until every group has drained and the alert count is stable.

        The wait ends well inside the test's own timeout, so a run that never settles fails with what
        is stuck (each group's lag, each service's last warnings) instead of being cut off blind.
        """
        from rich.console import Console

        quiet = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - the demo's progress lines are noise here
        try:
            reporting = [
                p.url for p in self.procs.get("reporting", []) if p.proc is not None and p.proc.poll() is None
            ]
            return asyncio.run(
                wait_settled(
                    self.settings, self.live("alerts").url, quiet, timeout=timeout, reporting_urls=reporting
                )
            )
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{self.diagnosis()}") from None

    def diagnosis(self) -> str:
        """Each group's lag, which processes run, and the last warnings and errors of every log."""
        from attune_cli.pipeline_state import drained_lags

        lines = [f"[{self.name}] did: {self.events}; running {self.running()}"]
        try:
            lines.append(f"lag per group: {asyncio.run(drained_lags(self.settings))}")
        except Exception as exc:  # the broker itself may be what is stuck
            lines.append(f"lag unknown: {exc!r}")
        for procs in self.procs.values():
            for p in procs:
                if p.log_path is None or not p.log_path.exists():
                    continue
                tail = [
                    line
                    for line in p.log_path.read_text(errors="replace").splitlines()
                    if '"level": "warning"' in line or '"level": "error"' in line
                ][-8:]
                lines.append(f"--- {p.log_path.name}: last warnings and errors")
                lines.extend(t[:400] for t in tail)
        return "\n".join(lines)

    # ------------------------------------------------------------------ what came out

    def snapshot(self, scenario: Scenario) -> Snapshot:
        """Everything the run produced, read through the APIs, the alerts topic and the store."""
        alerts = fetch_alerts(self.live("alerts").url)
        intake = self.live("intake").url
        dead = _get(f"{intake}/v1/admin/dead-letters", "dev-admin", limit=1)["counts_by_code"]
        first = scenario.config.start.strftime("%Y-%m")
        last = scenario.config.as_of.strftime("%Y-%m")
        report = _get(
            f"{self.live('reporting').url}/v1/reports/network",
            OPS,
            **{"from": first, "to": last, "by": "clinic"},
        )
        total = next(r for r in report["rows"] if r.get("row_type") == "total")
        outcome = Outcome()
        compare(scenario, alerts, dead, total, outcome)
        events = [
            json.loads(r.value)
            for r in asyncio.run(
                read_all(self.settings.kafka_bootstrap_servers, self.settings.topic(Topics.ALERTS))
            )
        ]
        ids = [e["event_id"] for e in events]
        # Alerts and alert events are compared by id and by what they say: the same input gives the
        # same alert ids, event ids and event bytes in every run, except the times of processing (the
        # wall clock's: occurred_at, raised_at, resolved_at, acknowledged_at). docs/reliability.md,
        # "Alert ids and alert events do not depend on timing".
        return Snapshot(
            alerts=Counter(
                f"{a['client_ref']} {a['rule_id']} {a['severity']} {a.get('resolution')}" for a in alerts
            ),
            alert_ids={
                a["alert_id"]: f"{a['client_ref']} {a['rule_id']} {a['severity']} {a.get('resolution')}"
                for a in alerts
            },
            alert_events=Counter(
                f"{e['alert']['client_ref']} {e['alert']['rule_id']} {e['event_type']} "
                f"{e['alert']['severity']} {e['alert']['status']} {e['alert']['resolution']}"
                for e in {e["event_id"]: e for e in events}.values()
            ),
            alert_event_bodies=_bodies(events),
            all_alert_event_ids=set(ids),
            alert_event_copies=len(ids) - len(set(ids)),
            dead_letters=dict(dead),
            figures={k: v for k, v in total.items() if not k.startswith(("median_time", "acknowledged"))},
            documents=self.documents(),
            outcome=outcome,
        )

    def documents(self) -> dict[str, int]:
        """Documents per service and collection (reporting's per-cell collections summed by kind)."""
        out: Counter[str] = Counter()
        with MongoClient(
            self.settings.mongodb_uri.get_secret_value(), serverSelectionTimeoutMS=5000
        ) as client:
            for service in SERVICES:
                db = client[f"{self.prefix}attune_{service}"]
                for coll in db.list_collection_names():
                    if any(v in coll for v in VOLATILE):
                        continue
                    out[f"{service}/{coll.split('.')[0]}"] += db[coll].count_documents({})
        return dict(out)

    def stop(self) -> dict[str, list[int | None]]:
        """Stop every instance (SIGTERM once), then drop the run's databases and topics."""
        codes: dict[str, list[int | None]] = {}
        for name, procs in self.procs.items():
            for p in procs:
                if p.proc is not None and p.proc.poll() is None:
                    p.proc.send_signal(15)
            codes[name] = [p.wait_exit() for p in procs]
        with MongoClient(
            self.settings.mongodb_uri.get_secret_value(), serverSelectionTimeoutMS=5000
        ) as client:
            for db in client.list_database_names():
                if db.startswith(self.prefix):
                    client.drop_database(db)
        asyncio.run(_delete_topics(self.settings))
        return codes


async def _delete_topics(settings: ServiceSettings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=10000)
    await admin.start()
    try:
        await admin.delete_topics([settings.topic(t) for t in TOPICS])
    except Exception:  # cleanup is best effort; the names are unique per run
        pass
    finally:
        await admin.close()


def _without_processing_times(event: dict[str, Any]) -> str:
    """An alert event as JSON (keys in order), less the wall-clock times of its processing."""
    alert = {
        k: v for k, v in event["alert"].items() if k not in ("raised_at", "resolved_at", "acknowledged_at")
    }
    return json.dumps(
        {**{k: v for k, v in event.items() if k != "occurred_at"}, "alert": alert}, sort_keys=True
    )


def _get(url: str, token: str, **params: Any) -> Any:
    r = httpx.get(url, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    r.raise_for_status()
    return r.json()


def infra(command: str, component: str) -> None:
    """deploy/infra.sh start|stop kafka|ferretdb (the local broker or store alone)."""
    subprocess.run([str(ROOT / "deploy" / "infra.sh"), command, component], check=True, timeout=120)


def ready(proc: ServiceProcess) -> int | None:
    """The HTTP status of /readyz (None when it does not answer)."""
    try:
        return httpx.get(f"{proc.url}/readyz", timeout=5).status_code
    except httpx.HTTPError:
        return None


def _bodies(events: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Each alert event's body (less its processing times) by event id; every redelivered copy of an
    event must have the same bytes as the first, or the copies are named apart (`id#n`) and differ
    from the no-fault run's."""
    bodies: dict[str, str] = {}
    for e in events:
        body = _without_processing_times(e)
        first = bodies.setdefault(e["event_id"], body)
        if body != first:
            bodies[f"{e['event_id']}#{sum(k.startswith(e['event_id']) for k in bodies)}"] = body
    return bodies


# Results of the fault scenarios by name ("pass" or what failed), and the alert id drift each showed
# against the no-fault run (empty: byte-identical), for the terminal summary (tests/faults/conftest.py).
RESULTS: dict[str, str] = {}
DRIFT: dict[str, dict[str, Any]] = {}


def truth_report(snap: Snapshot) -> str:
    """What a run got wrong against the ground truth, briefly."""
    o = snap.outcome
    bad = {k: v for k, v in o.figures.items() if not v["match"]}
    return f"missing {o.alerts_missing[:5]} extra {o.alerts_extra[:5]} dead {o.dead_letters_actual} figures {bad}"


def check(name: str, run: StackRun, snap: Snapshot, base: Snapshot, **kw: Any) -> None:
    """Assert a fault run matches the no-fault run and the ground truth, and print what it did."""
    diffs = snap.differences(base, **kw)
    drift = DRIFT[name] = snap.id_differences(base)
    if drift:
        print(f"\n[{name}] ID DRIFT: {drift}")
    truth = truth_report(snap) if not snap.outcome.ok and "extra_dead" not in kw else ""
    RESULTS[name] = "pass" if not diffs and not truth and not drift else f"FAIL {diffs} {truth}"
    print(
        f"\n[{name}] {len(snap.alert_ids)} alerts, {len(snap.all_alert_event_ids)} alert events "
        f"({snap.alert_event_copies} redelivered copies), dead letters {snap.dead_letters}; "
        f"did: {run.events}"
    )
    assert diffs == {}, diffs
    assert drift == {}, f"alert ids, event ids or bytes differ from the no-fault run: {drift}"
    assert snap.outcome.alerts_missing == [] and snap.outcome.alerts_extra == [], truth_report(snap)


def run_scenario(
    name: str, tmp: Path, world: Scenario, hooks: dict[int, Any], **kw: Any
) -> tuple[StackRun, Snapshot]:
    run = StackRun(name, tmp, env_extra=kw.pop("env", {})).start()
    try:
        run.drive(world, hooks, **kw)
        run.settle()
        snap = run.snapshot(world)
        run.note(f"running at the end: {run.running()}")
        return run, snap
    finally:
        run.stop()
