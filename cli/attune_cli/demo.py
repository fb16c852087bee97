"""`attune demo`: the whole system on a simulated clinic network, checked against ground truth.

Starts the four services as real processes on the running infrastructure (make demo starts it),
publishes a seeded network's EHR events, waits until every consumer group has drained, then prints
the network report, the alerts by rule and the dead letters by code, each compared with what the
simulator knows must come out. Exit code 0 only when everything matches.

With `--json` the same run prints its progress and tables on stderr and one JSON document on stdout
(`Outcome.to_dict`: the verdict, the comparison with the ground truth, the alerts by rule, the
network report's rows and the timings), also when the run fails before the comparison.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from attune_cli.pipeline_state import drained_lags
from attune_cli.simulator.generate import generate
from attune_cli.simulator.model import Scenario, SimConfig, write_truth
from attune_cli.simulator.publish import publish
from attune_cli.stack import (
    DEFAULT_PORTS,
    ROOT,
    SERVICES,
    ServiceProcess,
    free_port,
    start_stack,
    stop_stack,
)
from attune_shared.kafka_admin import ensure_topics
from attune_shared.settings import ServiceSettings
from attune_shared.topics import Topics

OPS, ADMIN = "dev-ops", "dev-admin"
# Report columns compared with the ground truth: (report column, path in truth.reporting.network).
FIGURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sessions_attended", ("sessions", "attended")),
    ("sessions_missed_no_show", ("sessions", "missed", "no_show")),
    ("sessions_missed_late_cancel", ("sessions", "missed", "late_cancel")),
    ("sessions_cancelled_by_client", ("sessions", "cancelled", "client")),
    ("sessions_cancelled_by_clinician", ("sessions", "cancelled", "clinician")),
    ("episodes_opened", ("episodes", "opened")),
    ("episodes_closed", ("episodes", "closed")),
    ("ruptures_raised", ("ruptures", "raised")),
    ("ruptures_repaired", ("ruptures", "repaired")),
    ("ruptures_unrepaired", ("ruptures", "unrepaired")),
    ("dropout_unilateral", ("dropouts", "unilateral")),
    ("dropout_last_missed", ("dropouts", "last_missed")),
    ("dropout_low_dose", ("dropouts", "low_dose")),
)
SHOWN = (
    "clinic_id",
    "active_clients",
    "sessions_attended",
    "attendance_rate",
    "wai_sr_mean",
    "srs_total_mean",
    "ruptures_raised",
    "repair_rate",
    "alerts_raised",
    "episodes_closed",
    "dropout_unilateral_rate",
)


@dataclass
class Outcome:
    """What the demo found, and whether it matched the ground truth."""

    alerts_expected: int = 0
    alerts_actual: int = 0
    alerts_missing: list[str] = field(default_factory=list)
    alerts_extra: list[str] = field(default_factory=list)
    dead_letters_expected: dict[str, int] = field(default_factory=dict)
    dead_letters_actual: dict[str, int] = field(default_factory=dict)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    report_rows: list[dict[str, Any]] = field(default_factory=list)
    network_report_seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    compared: bool = False  # the comparison ran to the end (a run that failed before it is never ok)
    run: dict[str, Any] = field(default_factory=dict)  # network size, seed, namespace
    report_period: dict[str, str] = field(default_factory=dict)  # {"from": "YYYY-MM", "to": "YYYY-MM"}
    alerts_by_rule: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None  # why the run stopped before its end, if it did

    @property
    def ok(self) -> bool:
        """Everything matched."""
        return (
            self.compared
            and bool(self.figures)
            and not self.alerts_missing
            and not self.alerts_extra
            and self.dead_letters_actual == self.dead_letters_expected
            and all(f["match"] for f in self.figures.values())
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: `ok` and `verdict` first, then every field."""
        verdict = "matches the ground truth" if self.ok else "does not match the ground truth"
        return {"ok": self.ok, "verdict": verdict, **self.__dict__}


def alerts_by_rule(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per rule: alerts raised, still open, and how they ended (resolution, or status while open)."""
    out: dict[str, dict[str, Any]] = {}
    for rule in sorted({a["rule_id"] for a in alerts}):
        mine = [a for a in alerts if a["rule_id"] == rule]
        ends = Counter(a.get("resolution") or a["status"] for a in mine)
        out[rule] = {
            "raised": len(mine),
            "open": sum(1 for a in mine if a["status"] != "resolved"),
            "ended_as": dict(sorted(ends.items())),
        }
    return out


def outcome_json(outcome: Outcome) -> str:
    """The one JSON document `attune demo --json` prints on stdout."""
    return json.dumps(outcome.to_dict(), indent=2, default=str)


def _port(name: str) -> int:
    """The usual port when free (the printed URLs stay the same), else any free one."""
    probe = ServiceProcess(name, {}, None, port=DEFAULT_PORTS[name])
    return free_port() if probe.ready() or _taken(DEFAULT_PORTS[name]) else DEFAULT_PORTS[name]


def _taken(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _get(url: str, token: str, **params: Any) -> Any:
    r = httpx.get(url, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    r.raise_for_status()
    return r.json()


def fetch_alerts(base: str) -> list[dict[str, Any]]:
    """Every alert, through the API's cursor pagination."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = _get(f"{base}/v1/alerts", ADMIN, **params)
        out.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return out


def _alert_key(client_ref: str, rule: str, severity: str, resolution: str | None) -> str:
    return f"{client_ref} {rule} {severity} {resolution or 'open'}"


def compare(
    scenario: Scenario,
    alerts: list[dict[str, Any]],
    dead: dict[str, int],
    network_total: dict[str, Any],
    outcome: Outcome,
) -> None:
    """Fill outcome with the comparison against the scenario's ground truth."""
    expected = Counter(
        _alert_key(c.client_ref, a.rule_id, a.severity, a.resolution)
        for c in scenario.truth.clients
        for a in c.expected_alerts
    )
    actual = Counter(
        _alert_key(a["client_ref"], a["rule_id"], a["severity"], a.get("resolution")) for a in alerts
    )
    outcome.alerts_expected, outcome.alerts_actual = sum(expected.values()), sum(actual.values())
    outcome.alerts_missing = sorted((expected - actual).elements())
    outcome.alerts_extra = sorted((actual - expected).elements())
    outcome.dead_letters_expected = dict(Counter(d.code for d in scenario.truth.dead_letters))
    outcome.dead_letters_actual = dead
    outcome.alerts_by_rule = alerts_by_rule(alerts)
    truth = scenario.truth.reporting["network"]
    for column, path in FIGURES:
        want: Any = truth
        for part in path:
            want = want.get(part, 0) if isinstance(want, dict) else 0
        got = network_total.get(column)
        outcome.figures[column] = {"expected": want, "actual": got, "match": got == want}
    outcome.compared = True


async def wait_settled(settings: ServiceSettings, alerts_url: str, console: Console, timeout: float) -> float:
    """Until every group's lag is zero and the alert count stops changing (the sweep has run)."""
    started = time.monotonic()
    stable, last = 0, -1
    while time.monotonic() - started < timeout:
        lags = await drained_lags(settings)
        count = len(await asyncio.to_thread(fetch_alerts, alerts_url)) if sum(lags.values()) == 0 else -1
        stable = stable + 1 if count == last and count >= 0 else 0
        last = count
        if stable >= 2:
            return time.monotonic() - started
        console.print(f"  waiting for the pipeline: lag {lags}, alerts {max(count, 0)}", highlight=False)
        await asyncio.sleep(3)
    raise TimeoutError(f"the pipeline did not settle within {timeout:.0f}s")


def run_demo(
    *,
    clinics: int,
    clients: int,
    weeks: int,
    seed: int,
    keep_running: bool,
    summary_json: Path | None,
    console: Console,
    json_stdout: bool = False,
) -> Outcome:
    """The whole demo; returns the outcome (outcome.ok tells whether it matched the ground truth).

    The outcome goes to `summary_json` and, with `json_stdout`, to stdout as one document, whatever
    happened (a run that stopped early says why in `error`); `console` should then write to stderr,
    so that the document is all stdout holds.
    """
    outcome = Outcome()
    try:
        _run(
            outcome,
            clinics=clinics,
            clients=clients,
            weeks=weeks,
            seed=seed,
            keep_running=keep_running,
            console=console,
        )
    except BaseException as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if summary_json:
            summary_json.parent.mkdir(parents=True, exist_ok=True)
            summary_json.write_text(outcome_json(outcome))
        if json_stdout:
            sys.stdout.write(outcome_json(outcome) + "\n")
            sys.stdout.flush()
    return outcome


def _run(
    outcome: Outcome,
    *,
    clinics: int,
    clients: int,
    weeks: int,
    seed: int,
    keep_running: bool,
    console: Console,
) -> None:
    # A SIGTERM (CI's timeout, a supervisor) must still stop the services this demo started.
    signal.signal(signal.SIGTERM, _exit_on_term)
    run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    prefix = os.environ.get("ATTUNE_NAME_PREFIX") or f"demo{run_id}_"
    run_dir = ROOT / "var" / "demo" / prefix.rstrip("_")
    settings = ServiceSettings(attune_name_prefix=prefix)
    outcome.run = {"clinics": clinics, "clients": clients, "weeks": weeks, "seed": seed, "namespace": prefix}
    env = {
        "ATTUNE_NAME_PREFIX": prefix,
        "ATTUNE_ALERTS_CLOCK": "event",
        "ATTUNE_ALERTS_SWEEP_SECONDS": "2",
        "ATTUNE_LOG_FORMAT": "json",
        "ATTUNE_REPORTING_GAUGE_REFRESH_S": "5",
    }
    console.rule(f"[bold]Attune demo[/] (namespace {prefix}, logs in {run_dir.relative_to(ROOT)})")
    t0 = time.monotonic()
    created = asyncio.run(ensure_topics(settings))
    console.print(f"topics ready ({len(created)} created)")
    with console.status("starting intake, measures, alerts, reporting and the console ..."):
        procs = start_stack(
            env,
            run_dir / "logs",
            ports={n: _port(n) for n in DEFAULT_PORTS},
            services=(*SERVICES, "console"),
        )
    outcome.timings["services_start_s"] = round(time.monotonic() - t0, 1)
    try:
        scenario = generate(SimConfig(clinics=clinics, clients=clients, weeks=weeks, seed=seed))
        write_truth(scenario, run_dir / "truth.json")
        console.print(
            f"simulated network: {clinics} clinics, {clients} clients, {weeks} weeks, seed {seed}: "
            f"{len(scenario.records)} EHR records ({len(scenario.poison_records)} malformed)"
        )
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        t1 = time.monotonic()
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("publishing to ehr.events.v1", total=len(scenario.records))
            asyncio.run(
                publish(
                    scenario,
                    via="kafka",
                    bootstrap=settings.kafka_bootstrap_servers,
                    topic=settings.topic(Topics.EHR_EVENTS),
                    progress=lambda done, _total: bar.update(task, completed=done),
                )
            )
        outcome.timings["publish_s"] = round(time.monotonic() - t1, 1)
        settle = asyncio.run(wait_settled(settings, procs["alerts"].url, console, timeout=600))
        outcome.timings["drain_s"] = round(settle, 1)

        first = scenario.config.start.strftime("%Y-%m")
        last = (
            scenario.config.as_of.replace(day=1) if scenario.config.as_of.day > 1 else scenario.config.as_of
        ).strftime("%Y-%m")
        last = min(last, datetime.fromisoformat(scenario.truth.as_of).strftime("%Y-%m"))
        outcome.report_period = {"from": first, "to": last}
        t2 = time.monotonic()
        report = _get(
            f"{procs['reporting'].url}/v1/reports/network", OPS, **{"from": first, "to": last, "by": "clinic"}
        )
        outcome.network_report_seconds = round(time.monotonic() - t2, 3)
        outcome.report_rows = report["rows"]
        network_total = next(r for r in report["rows"] if r.get("row_type") == "total")
        alerts = fetch_alerts(procs["alerts"].url)
        dead = _get(f"{procs['intake'].url}/v1/admin/dead-letters", ADMIN, limit=1)["counts_by_code"]
        compare(scenario, alerts, dead, network_total, outcome)
        _print(console, outcome, alerts, procs, first, last)
        if keep_running:
            console.print("[bold]--keep-running[/]: services stay up; Ctrl-C stops them.")
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    finally:
        with console.status("stopping the services ..."):
            codes = stop_stack(procs)
        console.print(f"services stopped: {codes}")
        outcome.timings["total_s"] = round(time.monotonic() - t0, 1)


def _exit_on_term(*_: Any) -> None:
    raise SystemExit(143)


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def _print(
    console: Console,
    o: Outcome,
    alerts: list[dict[str, Any]],
    procs: dict[str, ServiceProcess],
    first: str,
    last: str,
) -> None:
    table = Table(
        *SHOWN,
        title=f"Network report {first}..{last} (role ops; answered in "
        f"{o.network_report_seconds * 1000:.0f} ms)",
    )
    for r in o.report_rows:
        table.add_row(*(_fmt(r.get(c)) if c != "clinic_id" else (r.get(c) or "[b]network[/]") for c in SHOWN))
    console.print(table)

    by_rule = Table("rule", "raised", "open", "resolved as", title="Alerts by rule")
    for rule, counts in alerts_by_rule(alerts).items():
        by_rule.add_row(
            rule,
            str(counts["raised"]),
            str(counts["open"]),
            ", ".join(f"{k} {v}" for k, v in counts["ended_as"].items()),
        )
    console.print(by_rule)

    dl = Table("code", "dead letters", "expected", title="Dead letters by code")
    for code in sorted(set(o.dead_letters_expected) | set(o.dead_letters_actual)):
        dl.add_row(code, str(o.dead_letters_actual.get(code, 0)), str(o.dead_letters_expected.get(code, 0)))
    console.print(dl)

    check = Table("check", "expected", "actual", "match", title="Against the simulator's ground truth")
    check.add_row(
        "alerts (client, rule, severity, resolution)",
        str(o.alerts_expected),
        str(o.alerts_actual),
        "yes"
        if not o.alerts_missing and not o.alerts_extra
        else f"[red]no: {len(o.alerts_missing)} missing, {len(o.alerts_extra)} extra[/]",
    )
    for name, f in o.figures.items():
        check.add_row(name, _fmt(f["expected"]), _fmt(f["actual"]), "yes" if f["match"] else "[red]no[/]")
    console.print(check)
    for line in o.alerts_missing[:10]:
        console.print(f"  [red]missing[/] {line}")
    for line in o.alerts_extra[:10]:
        console.print(f"  [red]extra[/] {line}")

    i, al, rp = procs["intake"].url, procs["alerts"].url, procs["reporting"].url
    console.print(f"""[bold]Where to look next[/] (development tokens; the services stop when the demo ends,
use [b]attune demo --keep-running[/] or [b]make run[/] to explore):
  alerts for a clinical lead   curl -H 'Authorization: Bearer dev-lead-north' {al}/v1/alerts
  network report, CSV          curl -H 'Authorization: Bearer dev-ops' '{rp}/v1/reports/network?from={first}&to={last}&by=clinic&format=csv'
  a clinic by clinician        curl -H 'Authorization: Bearer dev-lead-north' '{rp}/v1/reports/clinics/north-01?by=clinician'
  dead letters (admin)         curl -H 'Authorization: Bearer dev-admin' {i}/v1/admin/dead-letters
  metrics                      {i}/metrics  {procs["measures"].url}/metrics  {al}/metrics  {rp}/metrics
  OpenAPI                      {i}/openapi.json  {al}/openapi.json  {rp}/openapi.json
  AsyncAPI                     docs/asyncapi/*.json
  timings                      {o.timings}""")
    verdict = "[green]matches the ground truth[/]" if o.ok else "[red]DOES NOT match the ground truth[/]"
    console.print(f"[bold]Demo result:[/] {verdict}")
    console.print(
        f"[bold]Console[/] (the leads' inbox and the operations dashboard): {procs['console'].url}  "
        "sign in with dev-lead-north (a lead), dev-ops (operations) or dev-admin "
        "(up while the services run: attune demo --keep-running)"
    )
