"""`attune demo`: the whole system on a simulated clinic network, checked against ground truth.

Starts the four services as real processes on the running infrastructure (make demo starts it),
publishes the simulated network's history (closed episodes before the period), waits until it has
drained and asks measures to refit its expected trajectories on it (POST /v1/admin/trajectories/refit,
compared with the models the simulator fitted with the same function on the same scores), then
publishes the period's EHR events, waits until every consumer group has drained, and prints the
network report, the alerts by rule (outcome.not-on-track among them), the dead letters by code and
the equity view (every breakdown, as admin, so no figure is suppressed), each compared with what the
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
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from attune_cli.pipeline_state import drained_lags
from attune_cli.simulator.equity import COUNTS as EQUITY_COUNTS
from attune_cli.simulator.equity import DIMENSIONS as EQUITY_BY
from attune_cli.simulator.equity import MEANS as EQUITY_MEANS
from attune_cli.simulator.generate import generate
from attune_cli.simulator.model import Scenario, SimConfig, write_truth
from attune_cli.simulator.publish import publish
from attune_cli.stack import (
    DEFAULT_PORTS,
    ROOT,
    SERVICES,
    ServiceProcess,
    free_port,
    replay_env,
    start_stack,
    stop_stack,
)
from attune_measures.domain.trajectories import TrajectoryModel
from attune_shared.kafka_admin import ensure_topics
from attune_shared.settings import ServiceSettings
from attune_shared.topics import Topics

OPS, ADMIN = "dev-ops", "dev-admin"
NOT_ON_TRACK = "outcome.not-on-track"
MEAN_TOLERANCE = 0.5e-4 + 1e-9  # a mean matches to the report's 4 decimals (sums may add in another order)
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
    # outcome.not-on-track: {"expected", "raised", "matched"} (client, rule, severity, resolution)
    not_on_track: dict[str, int] = field(default_factory=dict)
    # The history and the models measures fitted on it, per instrument against the simulator's fit.
    history: dict[str, Any] = field(default_factory=dict)
    trajectories: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The equity view: figures compared per breakdown, and every mismatch (by, value, figure, ...).
    equity: dict[str, Any] = field(default_factory=dict)
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
            and all(t["match"] for t in self.trajectories.values())
            and not self.equity.get("mismatched")  # compared by the demo (callers of compare() alone skip it)
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


def _post(url: str, token: str) -> Any:
    r = httpx.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
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


def compare_trajectories(truth: dict[str, Any], refit: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per instrument: the model measures fitted (its refit answer) against the simulator's (truth.json's
    trajectories.models): the same episodes, rows and coefficients, or the same absence."""
    out: dict[str, dict[str, Any]] = {}
    wanted = truth.get("models", {})
    for item in refit.get("items", []):
        name, model = item["instrument"], item.get("model")
        want = TrajectoryModel.from_dict(wanted[name]) if name in wanted else None
        expected = None
        if want is not None:
            expected = {
                "episodes": want.episodes,
                "rows": want.rows,
                "coefficients": {
                    f"{q:g}": list(c) for q, c in zip(want.quantiles, want.coefficients, strict=True)
                },
            }
        actual = None
        if model is not None:
            actual = {
                "episodes": model["episodes"],
                "rows": model["rows"],
                "coefficients": {
                    f"{c['quantile']:g}": [c["intercept"], c["b_intake"], c["b_log_s"]]
                    for c in model["coefficients"]
                },
                "version": model["version"],
            }
        same = expected == ({k: v for k, v in actual.items() if k != "version"} if actual else None)
        out[name] = {"expected": expected, "actual": actual, "match": same}
    return out


def _same_figure(figure: str, want: Any, got: Any) -> bool:
    if any(figure == name for name, _, _ in EQUITY_MEANS) and want is not None and got is not None:
        return bool(abs(float(got) - float(want)) <= MEAN_TOLERANCE)
    return bool(want == got)


def compare_equity(truth: dict[str, Any], answers: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Every figure of every equity row (each stratum and the total, per breakdown) against the truth:
    counts and rates exactly (rates rounded as the report rounds them), means to the report's 4
    decimals. A row on one side only compares with zero counts and no rates."""
    compared, mismatched = 0, list[dict[str, Any]]()
    by: dict[str, dict[str, int]] = {}
    figures = truth["figures"]
    for dimension, rows in answers.items():
        actual = {("total" if r.get("row_type") == "total" else str(r["value"])): r for r in rows}
        expected = {**truth["by"][dimension], "total": truth["total"]}
        before = (compared, len(mismatched))
        for value in sorted(set(expected) | set(actual)):
            want_row, got_row = expected.get(value), actual.get(value)
            for figure in figures:
                empty = 0 if figure in EQUITY_COUNTS else None
                want = want_row.get(figure) if want_row is not None else empty
                got = got_row.get(figure) if got_row is not None else empty
                compared += 1
                if not _same_figure(figure, want, got):
                    mismatched.append(
                        {"by": dimension, "value": value, "figure": figure, "expected": want, "actual": got}
                    )
        by[dimension] = {
            "rows": len(set(expected) | set(actual)),
            "figures": compared - before[0],
            "mismatched": len(mismatched) - before[1],
        }
    return {
        "period": {"from": truth["from"], "to": truth["to"]},
        "compared": compared,
        "by": by,
        "mismatched": mismatched,
    }


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
    mine = [k for k in expected.elements() if f" {NOT_ON_TRACK} " in k]
    theirs = [k for k in actual.elements() if f" {NOT_ON_TRACK} " in k]
    outcome.not_on_track = {
        "expected": len(mine),
        "raised": len(theirs),
        "matched": sum((Counter(mine) & Counter(theirs)).values()),
    }
    truth = scenario.truth.reporting["network"]
    for column, path in FIGURES:
        want: Any = truth
        for part in path:
            want = want.get(part, 0) if isinstance(want, dict) else 0
        got = network_total.get(column)
        outcome.figures[column] = {"expected": want, "actual": got, "match": got == want}
    outcome.compared = True


async def wait_settled(
    settings: ServiceSettings,
    alerts_url: str,
    console: Console,
    timeout: float,
    reporting_urls: Sequence[str] = (),
) -> float:
    """Until every group's lag is zero, the alert count stops changing (the sweep has run) and no
    reporting instance has consumed records its reports do not show yet (a throttled materialization,
    /readyz `details.materializer.reports_pending`)."""
    started = time.monotonic()
    stable, last = 0, -1
    while time.monotonic() - started < timeout:
        lags = await drained_lags(settings)
        count = len(await asyncio.to_thread(fetch_alerts, alerts_url)) if sum(lags.values()) == 0 else -1
        behind = [u for u in reporting_urls if await _reports_pending(u)] if count >= 0 else []
        stable = stable + 1 if count == last and count >= 0 and not behind else 0
        last = count
        if stable >= 2:
            return time.monotonic() - started
        console.print(
            f"  waiting for the pipeline: lag {lags}, alerts {max(count, 0)}"
            + (", reports being brought up to date" if behind else ""),
            highlight=False,
        )
        await asyncio.sleep(3)
    raise TimeoutError(f"the pipeline did not settle within {timeout:.0f}s")


async def _reports_pending(reporting_url: str) -> bool:
    """Whether a reporting instance says its reports lag behind what it consumed (unknown: yes)."""
    try:
        async with httpx.AsyncClient(base_url=reporting_url, timeout=5) as http:
            body = (await http.get("/readyz")).json()
        return bool(body.get("details", {}).get("materializer", {}).get("reports_pending", True))
    except (httpx.HTTPError, ValueError):
        return True


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
    history: bool = True,
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
            history=history,
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
    history: bool = True,
) -> None:
    # A SIGTERM (CI's timeout, a supervisor) must still stop the services this demo started.
    signal.signal(signal.SIGTERM, _exit_on_term)
    run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    prefix = os.environ.get("ATTUNE_NAME_PREFIX") or f"demo{run_id}_"
    run_dir = ROOT / "var" / "demo" / prefix.rstrip("_")
    settings = ServiceSettings(attune_name_prefix=prefix)
    outcome.run = {"clinics": clinics, "clients": clients, "weeks": weeks, "seed": seed, "namespace": prefix}
    env = replay_env(prefix)
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
        cfg = SimConfig(clinics=clinics, clients=clients, weeks=weeks, seed=seed, history=history)
        scenario = generate(cfg)
        write_truth(scenario, run_dir / "truth.json")
        console.print(
            f"simulated network: {clinics} clinics, {clients} clients, {weeks} weeks, seed {seed}: "
            f"{len(scenario.records)} EHR records ({len(scenario.poison_records)} malformed)"
            + (f", after a history of {len(scenario.history)}" if scenario.history else "")
        )
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        if scenario.history:
            _history(scenario, settings, procs, console, outcome, columns)
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
        settle = asyncio.run(
            wait_settled(
                settings, procs["alerts"].url, console, timeout=600, reporting_urls=[procs["reporting"].url]
            )
        )
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
        t3 = time.monotonic()
        answers = {
            by: _get(
                f"{procs['reporting'].url}/v1/reports/equity", ADMIN, **{"from": first, "to": last, "by": by}
            )["rows"]
            for by in EQUITY_BY
        }
        outcome.timings["equity_reports_s"] = round(time.monotonic() - t3, 2)
        outcome.equity = compare_equity(scenario.truth.equity, answers)
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


def _history(
    scenario: Scenario,
    settings: ServiceSettings,
    procs: dict[str, ServiceProcess],
    console: Console,
    outcome: Outcome,
    columns: tuple[Any, ...],
) -> None:
    """Publish the history, let it drain, and have measures refit on it: the period's scores are then
    judged against those models (a measure carries the band of the model current when it is scored)."""
    t0 = time.monotonic()
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("publishing the history to ehr.events.v1", total=len(scenario.history))
        asyncio.run(
            publish(
                replace(scenario, records=scenario.history),
                via="kafka",
                bootstrap=settings.kafka_bootstrap_servers,
                topic=settings.topic(Topics.EHR_EVENTS),
                progress=lambda done, _total: bar.update(task, completed=done),
            )
        )
    outcome.timings["history_publish_s"] = round(time.monotonic() - t0, 1)
    outcome.timings["history_drain_s"] = round(
        asyncio.run(
            wait_settled(
                settings, procs["alerts"].url, console, timeout=300, reporting_urls=[procs["reporting"].url]
            )
        ),
        1,
    )
    t1 = time.monotonic()
    refit = _post(f"{procs['measures'].url}/v1/admin/trajectories/refit", ADMIN)
    outcome.timings["refit_s"] = round(time.monotonic() - t1, 2)
    truth = scenario.truth.trajectories
    outcome.history = {"records": len(scenario.history), **truth.get("history", {})}
    outcome.trajectories = compare_trajectories(truth, refit)
    fitted = ", ".join(
        f"{name} {t['actual']['episodes']} episodes" if t["actual"] else f"{name} none"
        for name, t in outcome.trajectories.items()
    )
    console.print(f"history drained; measures refitted its expected trajectories: {fitted}")


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

    if o.trajectories:
        models = Table(
            "instrument",
            "episodes",
            "rows",
            *(f"q{q} intercept, b_intake, b_log_s" for q in ("0.1", "0.5", "0.9")),
            "as the simulator fitted",
            title="Expected trajectories measures fitted on the history",
        )
        for name, t in o.trajectories.items():
            got = t["actual"]
            if got is None:
                models.add_row(name, "—", "—", "—", "—", "—", "yes" if t["match"] else "[red]no[/]")
                continue
            lines = [", ".join(f"{v:.3f}" for v in got["coefficients"][q]) for q in ("0.1", "0.5", "0.9")]
            models.add_row(
                name, str(got["episodes"]), str(got["rows"]), *lines, "yes" if t["match"] else "[red]no[/]"
            )
        console.print(models)

    if o.equity:
        eq = Table(
            "breakdown", "rows", "figures compared", "differ", title=f"Equity view {first}..{last} (admin)"
        )
        for dimension, counts in o.equity["by"].items():
            eq.add_row(dimension, str(counts["rows"]), str(counts["figures"]), str(counts["mismatched"]))
        console.print(eq)

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
    if o.not_on_track.get("expected") or o.not_on_track.get("raised"):
        n = o.not_on_track
        check.add_row(
            f"  of which {NOT_ON_TRACK} (matched {n['matched']})",
            str(n["expected"]),
            str(n["raised"]),
            "yes" if n["matched"] == n["expected"] == n["raised"] else "[red]no[/]",
        )
    for name, f in o.figures.items():
        check.add_row(name, _fmt(f["expected"]), _fmt(f["actual"]), "yes" if f["match"] else "[red]no[/]")
    for name, t in o.trajectories.items():
        want, got = t["expected"], t["actual"]
        check.add_row(
            f"trajectory model {name} (episodes, coefficients)",
            str(want["episodes"]) if want else "none",
            str(got["episodes"]) if got else "none",
            "yes" if t["match"] else "[red]no[/]",
        )
    if o.equity:
        bad = len(o.equity["mismatched"])
        check.add_row(
            "equity view figures (4 breakdowns, every stratum and total)",
            str(o.equity["compared"]),
            str(o.equity["compared"] - bad),
            "yes" if not bad else f"[red]no: {bad} differ[/]",
        )
    console.print(check)
    for m in o.equity.get("mismatched", [])[:10]:
        console.print(
            f"  [red]equity[/] by {m['by']} {m['value']} {m['figure']}: expected {m['expected']}, got {m['actual']}"
        )
    for line in o.alerts_missing[:10]:
        console.print(f"  [red]missing[/] {line}")
    for line in o.alerts_extra[:10]:
        console.print(f"  [red]extra[/] {line}")

    i, al, rp = procs["intake"].url, procs["alerts"].url, procs["reporting"].url
    console.print(f"""[bold]Where to look next[/] (development tokens; the services stop when the demo ends,
use [b]attune demo --keep-running[/] or [b]make run[/] to explore):
  alerts for a clinical lead   curl -H 'Authorization: Bearer dev-lead-north' {al}/v1/alerts
  equity view by language      curl -H 'Authorization: Bearer dev-ops' '{rp}/v1/reports/equity?by=language&from={first}&to={last}'
  expected trajectories        curl -H 'Authorization: Bearer dev-ops' {procs["measures"].url}/v1/trajectories
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
