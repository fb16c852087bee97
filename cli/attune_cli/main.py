"""The attune command-line tool: run the services, simulate a network, read reports and dead letters."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import typer
from rich.table import Table

from attune_cli.output import make_console
from attune_cli.simulator.command import simulate
from attune_cli.stack import DEFAULT_PORTS, ROOT, SERVICES, start_stack, stop_stack

app = typer.Typer(
    help="Attune: alliance-aware, measurement-based care for clinic networks.",
    no_args_is_help=True,
    add_completion=False,
)
dlq_app = typer.Typer(
    help="Dead letters: list and re-drive rejected EHR records (admin).", no_args_is_help=True
)
app.add_typer(dlq_app, name="dlq")
reporting_app = typer.Typer(help="Reporting's read models.", no_args_is_help=True)
app.add_typer(reporting_app, name="reporting")
audit_app = typer.Typer(help="The audit of the re-identification door (admin).", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.command("simulate")(simulate)
console = make_console()

INTAKE_URL = os.environ.get("ATTUNE_INTAKE_URL", f"http://127.0.0.1:{DEFAULT_PORTS['intake']}")
ADMIN_TOKEN = os.environ.get("ATTUNE_ADMIN_TOKEN", "dev-admin")


@app.command()
def run(
    services: Annotated[list[str] | None, typer.Option("--service", "-s", help="only these services")] = None,
) -> None:
    """Run the services as separate processes in the foreground, logs on this terminal; Ctrl-C stops all."""
    everything = (*SERVICES, "console")
    names = tuple(services or everything)
    unknown = set(names) - set(everything)
    if unknown:
        raise typer.BadParameter(f"unknown service(s): {', '.join(sorted(unknown))}")
    os.environ.setdefault("ATTUNE_LOG_FORMAT", "console")
    console.print(f"[bold]attune run[/]: starting {', '.join(names)} …")
    procs = start_stack({}, None, ports=DEFAULT_PORTS, inherit_output=True, services=names)
    table = Table("service", "URL", "health", "metrics", "OpenAPI", title="Attune is running (Ctrl-C stops)")
    for name, p in procs.items():
        api = "-" if name in ("measures", "console") else f"{p.url}/openapi.json"
        table.add_row(name, p.url, f"{p.url}/readyz", f"{p.url}/metrics", api)
    console.print(table)
    if "console" in procs:
        console.print(
            f"[bold]Console[/]: {procs['console'].url} (sign in with dev-lead-north, dev-ops or dev-admin)"
        )
    stop = {"now": False}

    def _stop(*_: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop["now"]:
            dead = [n for n, p in procs.items() if p.proc is not None and p.proc.poll() is not None]
            if dead:
                console.print(f"[red]service(s) exited: {', '.join(dead)}; stopping the rest[/]")
                break
            time.sleep(0.5)
    finally:
        codes = stop_stack(procs)
        console.print(f"stopped: {codes}")


@app.command()
def topics() -> None:
    """Create Attune's Kafka topics if they are missing (idempotent)."""
    from attune_shared.kafka_admin import TOPICS, ensure_topics
    from attune_shared.settings import ServiceSettings, load_settings

    created = asyncio.run(ensure_topics(load_settings(ServiceSettings)))
    console.print(f"{len(TOPICS)} topics present, created: {', '.join(created) or 'none'}")


@app.command()
def lag(
    wait: Annotated[bool, typer.Option(help="wait until every group's lag is zero")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait at most")] = 600,
) -> None:
    """Show each service's consumer lag (records not yet committed); --wait blocks until all are zero."""
    from attune_cli.pipeline_state import GROUPS, drained_lags

    deadline = time.monotonic() + timeout
    while True:
        lags = asyncio.run(drained_lags())
        total = sum(lags.values())
        if not wait or total == 0 or time.monotonic() > deadline:
            break
        console.print(f"  lag: {lags}", highlight=False)
        time.sleep(2)
    table = Table("consumer group", "topics", "lag (records)")
    for group, topics_ in GROUPS.items():
        table.add_row(group, ", ".join(topics_), str(lags[group]))
    console.print(table)
    if wait and total:
        raise typer.Exit(1)


def _admin_get(path: str, **params: Any) -> dict[str, Any]:
    r = httpx.get(
        f"{INTAKE_URL}{path}",
        params={k: v for k, v in params.items() if v is not None},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )
    if r.status_code != 200:
        raise typer.BadParameter(f"intake answered {r.status_code}: {r.text[:300]}")
    return dict(r.json())


@dlq_app.command("list")
def dlq_list(
    code: Annotated[str | None, typer.Option(help="only this error code")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 50,
    include_replayed: Annotated[bool, typer.Option(help="also those already re-driven")] = False,
) -> None:
    """List dead letters (newest first) with their error; needs an admin token (ATTUNE_ADMIN_TOKEN)."""
    data = _admin_get("/v1/admin/dead-letters", code=code, limit=limit, include_replayed=include_replayed)
    table = Table("received", "code", "message", "origin", "dlq_id", title="Dead letters")
    for d in data["dead_letters"]:
        o = d["origin"]
        where = "http" if o["partition"] is None else f"{o['topic']}[{o['partition']}]@{o['offset']}"
        table.add_row(
            d["received_at"][:19], d["error"]["code"], d["error"]["message"][:80], where, d["dlq_id"]
        )
    console.print(table)
    console.print("by code: " + ", ".join(f"{k}={v}" for k, v in sorted(data["counts_by_code"].items())))


@dlq_app.command("replay")
def dlq_replay(
    dlq_id: Annotated[list[str] | None, typer.Option("--id", help="dead-letter ids to re-drive")] = None,
    code: Annotated[str | None, typer.Option(help="re-drive every unreplayed one with this code")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 1000,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only count what would be re-driven")] = False,
) -> None:
    """Re-submit dead letters to ehr.events.v1 after a fix; intake validates them again.

    Prints how many the filter selects first (`would re-drive: N`), then re-drives them (`re-driven: N`)
    unless --dry-run."""
    if not dlq_id and not code:
        raise typer.BadParameter("name --id (one or more) or --code")

    def post(dry: bool) -> dict[str, Any]:
        r = httpx.post(
            f"{INTAKE_URL}/v1/admin/dead-letters/replay",
            timeout=60,
            json={"dlq_ids": dlq_id or [], "code": code, "limit": limit, "dry_run": dry},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        if r.status_code != 200:
            raise typer.BadParameter(f"intake answered {r.status_code}: {r.text[:300]}")
        return dict(r.json())

    console.print(f"would re-drive: {post(True)['would_replay']}")
    if not dry_run:
        console.print(f"re-driven: {post(False)['replayed']}")


@audit_app.command("list")
def audit_list(
    client_ref: Annotated[str | None, typer.Option(help="only lookups of this client_ref")] = None,
    who: Annotated[str | None, typer.Option(help="only lookups by this token name")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many")] = 100,
) -> None:
    """Who asked intake who a client is, when and why (newest first); needs an admin token."""
    data = _admin_get("/v1/admin/reidentifications", client_ref=client_ref, who=who, limit=limit)
    table = Table(
        "at", "who", "role", "client_ref", "clinic", "outcome", "reason", title="Re-identifications"
    )
    for row in data["items"]:
        table.add_row(
            row["at"][:19],
            row["who"],
            row["role"],
            row["client_ref"],
            row.get("clinic_id") or "-",
            row["outcome"],
            row["reason"],
        )
    console.print(table)
    console.print(f"{len(data['items'])} row(s)")


@reporting_app.command("rebuild")
def reporting_rebuild() -> None:
    """Replay the topics from the beginning into a fresh database, materialize it, swap it in.

    The running reporting service keeps answering from the old database until the swap, then from the
    new one; events that arrive meanwhile are caught up after the swap.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from attune_reporting.rebuild import RebuildProgress, rebuild
    from attune_reporting.settings import ReportingSettings
    from attune_shared.settings import load_settings

    settings = load_settings(ReportingSettings)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        tasks: dict[str, Any] = {}

        def show(p: RebuildProgress) -> None:
            if p.phase not in tasks:
                label = {
                    "replay": "replaying the topics",
                    "materialize": "materializing clinics",
                    "swap": "swapping databases",
                    "catch_up": "catching up",
                    "retire": "retiring the old",
                    "done": "done",
                }[p.phase]
                tasks[p.phase] = bar.add_task(label, total=max(p.total, 1))
            bar.update(tasks[p.phase], completed=p.done, total=max(p.total, 1))

        result = asyncio.run(rebuild(settings, show))
    console.print(
        f"rebuilt {result.database} from {result.records} records (+{result.catch_up_records} caught up) "
        f"in {result.seconds:.1f}s; it replaced {result.previous}"
    )


@app.command()
def demo(
    clinics: Annotated[int, typer.Option(min=1, max=50, help="clinics in the simulated network")] = 3,
    clients: Annotated[int, typer.Option(min=10, help="clients across the network")] = 150,
    weeks: Annotated[int, typer.Option(min=4, max=104, help="simulated weeks")] = 16,
    seed: Annotated[int, typer.Option(help="simulation seed")] = 42,
    keep_running: Annotated[bool, typer.Option(help="leave the services up after the report")] = False,
    summary_json: Annotated[Path | None, typer.Option(help="also write the outcome as JSON here")] = None,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="for machines: progress and tables on stderr, one JSON document of the outcome on stdout "
            "(verdict, comparison with the ground truth, alerts by rule, report rows, timings)",
        ),
    ] = False,
) -> None:
    """Run the four services on a simulated clinic network and check the outcome against ground truth."""
    from attune_cli.demo import run_demo

    interactive = keep_running and os.environ.get("CI", "").lower() not in ("1", "true")
    outcome = run_demo(
        clinics=clinics,
        clients=clients,
        weeks=weeks,
        seed=seed,
        keep_running=interactive,
        summary_json=summary_json,
        console=make_console(stderr=True) if json_output else console,
        json_stdout=json_output,
    )
    raise typer.Exit(0 if outcome.ok else 1)


@app.command()
def bench(
    events: Annotated[
        list[int] | None,
        typer.Option(
            min=1000,
            help="inbound records of the throughput run (default 200000); repeat it for one drain "
            "per size in the same session and a table comparing them (--events 50000 --events 200000)",
        ),
    ] = None,
    weeks: Annotated[int, typer.Option(min=4, max=104, help="weeks of the simulated network")] = 24,
    seed: Annotated[int, typer.Option(help="simulation seed")] = 1,
    latency_events: Annotated[
        int, typer.Option(min=1000, help="records of each paced latency run (at most --latency-seconds)")
    ] = 40_000,
    latency_seconds: Annotated[
        float, typer.Option(min=1, help="each latency run publishes at most rate x this many seconds")
    ] = 120,
    rate: Annotated[
        list[float] | None,
        typer.Option(
            min=1, help="events per second of a paced latency run; repeat it (default 100, 500, 2000)"
        ),
    ] = None,
    chain: Annotated[
        bool, typer.Option(help="also run the bare four-stage chain (the ceiling for a four-stage pipeline)")
    ] = True,
    profile: Annotated[
        bool,
        typer.Option(
            "--profile", help="py-spy flame graph of each service during the largest drain (bench/results/)"
        ),
    ] = False,
    scale_out: Annotated[bool, typer.Option(help="also run with two instances of every service")] = True,
    naive_seconds: Annotated[float, typer.Option(min=5, help="how long the naive baseline runs")] = 60,
    timeout: Annotated[float, typer.Option(help="seconds one drain may take at most")] = 7200,
    only_throughput: Annotated[
        bool,
        typer.Option(
            "--only-throughput",
            help="only the throughput drain(s): no raw limit, naive baseline, chain, latency or scale-out run",
        ),
    ] = False,
    grow: Annotated[
        Literal["clients", "weeks"],
        typer.Option(
            help="how a larger --events size grows the network: more clients and clinics over --weeks "
            "(clients), or the smallest size's network over proportionally more weeks (weeks: data "
            "growth alone, the same clients per batch)"
        ),
    ] = "clients",
) -> None:
    """Measure throughput, CPU, memory, alert latency and scale-out beside the four-stage chain, the raw
    limit and a naive design."""
    from attune_cli.bench.run import run_bench

    run_bench(
        events=events or [200_000],
        weeks=weeks,
        seed=seed,
        latency_events=latency_events,
        latency_seconds=latency_seconds,
        rate=rate or [100.0, 500.0, 2000.0],
        chain=chain,
        profile=profile,
        scale_out=scale_out,
        naive_seconds=naive_seconds,
        timeout=timeout,
        only_throughput=only_throughput,
        grow=grow,
        console=console,
    )


@app.command()
def soak(
    minutes: Annotated[float, typer.Option(min=1, help="how long the paced load runs")] = 30,
    rate: Annotated[
        float,
        typer.Option(
            min=0.5,
            help="records per second (default: a 50-clinic network's busy hours, about 0.5/s, sped up 20x)",
        ),
    ] = 10,
    fault_every: Annotated[float, typer.Option(min=0.5, help="minutes between faults")] = 2.5,
    sample_every: Annotated[float, typer.Option(min=1, help="seconds between samples")] = 5,
    lag_threshold: Annotated[
        int | None, typer.Option(help="total lag that counts as about 0 (default: 5 s of input, at least 50)")
    ] = None,
    seed: Annotated[int, typer.Option(help="simulation seed")] = 42,
    settle_timeout: Annotated[float, typer.Option(help="seconds the final drain may take")] = 900,
) -> None:
    """Soak: paced load for a long while with a fault every few minutes; RSS, fds and lag must stay flat."""
    from attune_cli.soak import run_soak

    report = run_soak(
        minutes=minutes,
        rate=rate,
        fault_every=fault_every,
        sample_every=sample_every,
        lag_threshold=lag_threshold,
        seed=seed,
        settle_timeout=settle_timeout,
        console=console,
    )
    raise typer.Exit(0 if report["verdict"]["ok"] else 1)


@app.command()
def asyncapi(
    check: Annotated[bool, typer.Option(help="only check the committed files are current")] = False,
) -> None:
    """Generate each service's AsyncAPI document into docs/asyncapi/ (FastStream, from the code)."""
    from attune_cli import asyncapi as docs

    if check:
        stale = docs.stale()
        if stale:
            console.print(f"[red]out of date: {', '.join(stale)}[/] (run `attune asyncapi`)")
            raise typer.Exit(1)
        console.print("AsyncAPI documents are current")
        return
    for path in docs.write_all():
        console.print(f"wrote {path.relative_to(ROOT)}")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo("attune 0.1.0")
