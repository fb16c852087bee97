"""`attune simulate`: generate a seeded clinic network, write its truth.json and publish its events.

Mount it with `app.command("simulate")(simulate)` in attune_cli.main (or use `app` here on its own).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from attune_cli.output import make_console
from attune_cli.simulator.generate import generate
from attune_cli.simulator.model import DEFAULT_START, Scenario, SimConfig, write_truth
from attune_cli.simulator.publish import PublishError, PublishResult, publish
from attune_shared.topics import Topics


class Via(StrEnum):
    """Where the events go."""

    kafka = "kafka"
    http = "http"
    fhir = "fhir"  # FHIR R4 batch Bundles to intake's POST /fhir/r4


def summary_tables(scenario: Scenario) -> list[Table]:
    """Events by type, poison by code and expected alerts by rule, as Rich tables."""
    events = Table(title="Events by type")
    for column in ("event_type", "first sends", "of which late", "duplicates"):
        events.add_column(column, justify="left" if column == "event_type" else "right")
    first = Counter(str(r.event_type) for r in scenario.records if r.kind in ("event", "late"))
    late = Counter(str(r.event_type) for r in scenario.records if r.kind == "late")
    again = Counter(str(r.event_type) for r in scenario.records if r.kind == "duplicate")
    for name in sorted(first):
        events.add_row(name, str(first[name]), str(late[name]), str(again[name]))
    events.add_row("total", str(first.total()), str(late.total()), str(again.total()), style="bold")

    poison = Table(title="Poison records by dead-letter code")
    poison.add_column("code")
    poison.add_column("records", justify="right")
    poison.add_column("over HTTP")
    by_code = Counter(d.code for d in scenario.truth.dead_letters)
    kafka_only = Counter(d.code for d in scenario.truth.dead_letters if d.transport == "kafka_only")
    for code in sorted(by_code):
        http = (
            "yes"
            if not kafka_only[code]
            else "no (Kafka only)"
            if kafka_only[code] == by_code[code]
            else "partly"
        )
        poison.add_row(code, str(by_code[code]), http)

    alerts = Table(title="Expected alerts by rule")
    alerts.add_column("rule_id")
    alerts.add_column("alerts", justify="right")
    alerts.add_column("severity")
    alerts.add_column("how they end by as_of")
    expected = [a for c in scenario.truth.clients for a in c.expected_alerts]
    for rule in sorted({a.rule_id for a in expected}):
        mine = [a for a in expected if a.rule_id == rule]
        severity = Counter(a.severity for a in mine)
        ends = Counter(a.resolution or "open" for a in mine)
        alerts.add_row(
            rule,
            str(len(mine)),
            ", ".join(f"{k} {v}" for k, v in sorted(severity.items())),
            ", ".join(f"{k} {v}" for k, v in sorted(ends.items())),
        )
    return [events, poison, alerts]


def _first_day(start: str, weeks: int) -> date:
    if start == "today":
        return datetime.now(UTC).date() - timedelta(weeks=weeks)
    return date.fromisoformat(start)


def simulate(
    clinics: Annotated[int, typer.Option(min=1, max=50, help="Clinics in the network.")] = 3,
    clients: Annotated[int, typer.Option(min=1, help="Clients across the network.")] = 150,
    weeks: Annotated[int, typer.Option(min=2, max=104, help="Simulated weeks.")] = 16,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 42,
    rate: Annotated[
        float | None, typer.Option(min=0.1, help="Events per second (default: unthrottled).")
    ] = None,
    via: Annotated[
        Via,
        typer.Option(
            case_sensitive=False,
            help="Publish to Kafka, intake's HTTP API (envelopes) or its FHIR R4 endpoint (bundles).",
        ),
    ] = Via.kafka,
    out: Annotated[Path, typer.Option(help="Where truth.json is written.")] = Path("var/sim"),
    bootstrap: Annotated[
        str, typer.Option(envvar="KAFKA_BOOTSTRAP_SERVERS", help="Kafka brokers.")
    ] = "127.0.0.1:9092",
    topic_prefix: Annotated[
        str, typer.Option(envvar="ATTUNE_NAME_PREFIX", help="Prefix of the topic name (side-by-side runs).")
    ] = "",
    http_url: Annotated[
        str, typer.Option(help="Intake's base URL (with --via http or fhir).")
    ] = "http://127.0.0.1:8081",
    token: Annotated[str, typer.Option(help="Bearer token of role ehr for source ehr-sim.")] = "dev-ehr-sim",
    start: Annotated[
        str,
        typer.Option(
            help="First simulated day (YYYY-MM-DD), or 'today' to end the simulation today (for an "
            "inactivity sweep that runs on the wall clock)."
        ),
    ] = DEFAULT_START.isoformat(),
    dry_run: Annotated[bool, typer.Option(help="Generate and write truth.json, publish nothing.")] = False,
) -> None:
    """Simulate a clinic network with ground truth, and publish its EHR events."""
    console = make_console()
    try:
        first_day = _first_day(start, weeks)
        cfg = SimConfig(clinics, clients, weeks, seed, first_day)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    began = time.monotonic()
    with console.status("generating the network..."):
        scenario = generate(cfg)
    truth_path = write_truth(scenario, out)
    console.print(
        f"generated {len(scenario.records)} records for {clients} clients in {clinics} clinics over {weeks} "
        f"weeks (seed {seed}) in {time.monotonic() - began:.2f}s; truth: {truth_path}"
    )
    result: PublishResult | None = None
    if not dry_run:
        topic = f"{topic_prefix}{Topics.EHR_EVENTS}"
        target = {
            Via.kafka: topic,
            Via.http: f"{http_url}/v1/ehr/events",
            Via.fhir: f"{http_url}/fhir/r4",
        }[via]
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(f"publishing to {target}", total=len(scenario.records))

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            try:
                result = asyncio.run(
                    publish(
                        scenario,
                        via.value,
                        bootstrap=bootstrap,
                        topic=topic,
                        http_url=http_url,
                        token=token,
                        rate=rate,
                        progress=advance,
                    )
                )
            except PublishError as exc:
                console.print(f"[red]publishing failed:[/red] {exc}")
                raise typer.Exit(1) from exc
    for table in summary_tables(scenario):
        console.print(table)
    if result is not None:
        console.print(f"published {result.sent} records via {result.via} in {result.seconds}s")
        if result.via == "fhir":
            console.print(
                f"intake: {result.accepted} entries published an event (201), {result.duplicates} recorded "
                f"or unchanged (200), {result.rejected} unusable"
            )
        if result.via == "http":
            console.print(
                f"intake: accepted {result.accepted}, duplicates {result.duplicates}, rejected {result.rejected}"
            )
        if result.skipped:
            console.print(
                f"[yellow]skipped {len(result.skipped)} poison record(s) that are not "
                f"{'FHIR' if result.via == 'fhir' else 'JSON'} "
                f"({', '.join(sorted(set(result.skipped)))}): they can only be sent over "
                f"{'Kafka or HTTP' if result.via == 'fhir' else 'Kafka'}[/yellow]"
            )


app = typer.Typer(help="The Attune clinic-network simulator.", no_args_is_help=False)
app.command("simulate")(simulate)
