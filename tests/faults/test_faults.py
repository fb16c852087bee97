"""Fault injection on the real stack: crashes, restarts, outages, scale-out, poison, webhook trouble, SIGTERM.

Each scenario replays the same seeded network as the no-fault run and must end with the same alerts,
alert events, dead letters, report figures and stored documents, and with the simulator's ground truth.
The delivery guarantees these prove are written down in docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from attune_alerts.signing import HEADER, verify
from attune_cli.simulator.model import OutboundRecord, Scenario
from attune_cli.stack import SERVICES
from tests.faults.harness import Snapshot, StackRun, check, infra, ready, run_scenario

# ---------------------------------------------------------------------- 1. SIGKILL each service


def test_sigkill_each_service_mid_stream(world: Scenario, baseline: Snapshot, tmp_path: Path) -> None:
    def kill(name: str) -> Any:
        def hook(run: StackRun) -> None:
            run.signal(name, signal.SIGKILL)
            time.sleep(3)
            run.restart(name)

        return hook

    run, snap = run_scenario("sigkill", tmp_path, world, {i: kill(n) for i, n in enumerate(SERVICES)})
    check("sigkill each service", run, snap, baseline)


# ---------------------------------------------------------------------- 2. broker restart


def test_kafka_broker_restart_mid_stream(world: Scenario, baseline: Snapshot, tmp_path: Path) -> None:
    def restart(run: StackRun) -> None:
        infra("stop", "kafka")
        run.note("kafka stopped")
        time.sleep(3)
        infra("start", "kafka")
        run.note("kafka started")

    run, snap = run_scenario("kafka-restart", tmp_path, world, {1: restart})
    check("kafka restart", run, snap, baseline)


# ---------------------------------------------------------------------- 3. store outage


def test_store_outage_of_15_seconds(world: Scenario, baseline: Snapshot, tmp_path: Path) -> None:
    seen: dict[str, set[int | None]] = defaultdict(set)

    def outage(run: StackRun) -> None:
        infra("stop", "ferretdb")
        run.note("ferretdb stopped")
        until = time.monotonic() + 15
        while time.monotonic() < until:
            for name in SERVICES:
                seen[name].add(ready(run.live(name)))
            time.sleep(1)
        infra("start", "ferretdb")
        run.note("ferretdb started")

    run, snap = run_scenario("store-outage", tmp_path, world, {1: outage}, pause_s=0.3)
    # Every service said it was not ready while the store was away, and recovered by itself.
    assert all(503 in codes for codes in seen.values()), dict(seen)
    assert run.events[-1] == "running at the end: 4 of 4", run.events
    check("store outage 15 s", run, snap, baseline)


# ---------------------------------------------------------------------- 4. scale out


def test_scale_out_then_lose_the_first_instances(world: Scenario, baseline: Snapshot, tmp_path: Path) -> None:
    def second(run: StackRun) -> None:
        for name in SERVICES:
            run.add(name)
        run.note("second instance of every service started")

    def lose_first(run: StackRun) -> None:
        for name in SERVICES:
            run.signal(name, signal.SIGKILL, index=0)

    run, snap = run_scenario("scale-out", tmp_path, world, {0: second, 3: lose_first})
    check("scale out, then kill the first instances", run, snap, baseline)


# ---------------------------------------------------------------------- 5. poison


def _poison() -> tuple[list[OutboundRecord], Counter[str]]:
    base = {
        "event_id": "ehr-sim:poison-{}",
        "event_type": "session.attended",
        "schema_version": 1,
        "source": "ehr-sim",
        "clinic_id": "north-01",
        "occurred_at": "2026-02-02T10:00:00+00:00",
        "payload": {"mrn": "MRN-POISON", "appointment_id": "A1", "clinician_id": "c-1", "modality": "video"},
    }

    def env(n: int, **payload: Any) -> dict[str, Any]:
        return {**base, "event_id": f"ehr-sim:poison-{n}", "payload": {**base["payload"], **payload}}

    deep = json.dumps(env(1))[:-2] + ', "deep": ' + '{"n":' * 3000 + "1" + "}" * 3000 + "}}"
    wide = env(2, **{f"field_{i}": i for i in range(3000)})
    huge = env(3, note="A" * (1024 * 1024))
    key = b"north-01:MRN-POISON"
    records = [
        OutboundRecord(key, json.dumps(huge).encode(), "poison", expected_code="too_large"),  # a 1 MiB record
        OutboundRecord(key, b"\xff\xfe\x80 not UTF-8 \xc3\x28", "poison", expected_code="invalid_json"),
        OutboundRecord(key, deep.encode(), "poison", expected_code="invalid_json"),  # too deep to parse
        OutboundRecord(
            key, json.dumps(wide).encode(), "poison", expected_code="schema_violation"
        ),  # too wide
        OutboundRecord(key, b"[1, 2, 3]", "poison", expected_code="not_an_object"),
        OutboundRecord(
            key,
            json.dumps({**env(4), "event_type": "x.y"}).encode(),
            "poison",
            expected_code="unknown_event_type",
        ),
        OutboundRecord(
            key,
            json.dumps({**env(5), "schema_version": 9}).encode(),
            "poison",
            expected_code="unsupported_version",
        ),
        OutboundRecord(None, b"", "poison", expected_code="invalid_json"),
    ]
    return records, Counter(r.expected_code for r in records if r.expected_code)


def test_poison_interleaved_with_valid_events(world: Scenario, baseline: Snapshot, tmp_path: Path) -> None:
    extra, codes = _poison()
    run, snap = run_scenario("poison", tmp_path, world, {}, extra=extra)
    assert run.events[-1] == "running at the end: 4 of 4", run.events  # no service restarted or died
    check("poison interleaved", run, snap, baseline, extra_dead=codes)


# ---------------------------------------------------------------------- 6. webhook receiver trouble

SECRET = "fault-receiver-secret-0123"


class Receiver:
    """Accepts signed alert events; can be 'down' (connection closed) or 'slow' (5 s per call)."""

    def __init__(self) -> None:
        self.mode = "up"
        self.lock = threading.Lock()
        self.accepted: Counter[str] = Counter()
        self.refused = 0
        self.bad_signatures = 0

    def handle(self, body: bytes, headers: dict[str, str]) -> int | None:
        if not verify(SECRET, body, headers.get(HEADER, "")):
            with self.lock:
                self.bad_signatures += 1
            return 401
        if self.mode == "down":
            with self.lock:
                self.refused += 1
            return None
        if self.mode == "slow":
            time.sleep(5)
        with self.lock:
            self.accepted[json.loads(body)["event_id"]] += 1
        return 200


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[Receiver, Path]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            code = state.handle(body, dict(self.headers))
            if code is None:
                self.close_connection = True
                return
            with contextlib.suppress(OSError):
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/attune"
    hook = {"webhooks": [{"url": url, "secret": SECRET}]}
    contacts = tmp_path / "webhooks.json"
    contacts.write_text(json.dumps({"clinics": {c: hook for c in ("north-01", "south-01", "east-01")}}))
    yield state, contacts
    server.shutdown()


def test_webhook_receiver_down_then_slow(
    world: Scenario, baseline: Snapshot, tmp_path: Path, receiver: tuple[Receiver, Path]
) -> None:
    state, contacts = receiver

    def down(run: StackRun) -> None:
        state.mode = "down"
        run.note("receiver down")

    def slow(run: StackRun) -> None:
        state.mode = "slow"
        run.note("receiver up but slow (5 s a call)")

    def up(run: StackRun) -> None:
        state.mode = "up"
        run.note("receiver back to normal")

    env = {
        "ATTUNE_ALERTS_WEBHOOKS_FILE": str(contacts),
        "ATTUNE_ALERTS_WEBHOOK_TIMEOUT_SECONDS": "8",
        "ATTUNE_ALERTS_WEBHOOK_BACKOFF_SECONDS": "1",
        "ATTUNE_ALERTS_WEBHOOK_BACKOFF_MAX_SECONDS": "4",
        "ATTUNE_ALERTS_WEBHOOK_MAX_ATTEMPTS": "30",
    }
    run = StackRun("webhooks", tmp_path, env_extra=env).start()
    try:
        run.drive(world, {0: down, 2: slow, 3: up}, pause_s=4)
        run.settle()
        snap = run.snapshot(world)
        # Every alert event reaches the receiver exactly once in the end (it never saw a bad signature).
        deadline = time.monotonic() + 120
        while set(state.accepted) != snap.all_alert_event_ids and time.monotonic() < deadline:
            time.sleep(1)
    finally:
        run.stop()
    assert state.refused > 0 and state.bad_signatures == 0
    assert set(state.accepted) == snap.all_alert_event_ids  # every alert event reached it
    assert max(state.accepted.values()) == 1, state.accepted.most_common(3)
    check("webhook receiver down, then slow", run, snap, baseline)


# ---------------------------------------------------------------------- 7. SIGTERM under load


def test_sigterm_each_service_under_load(world: Scenario, baseline: Snapshot, tmp_path: Path) -> None:
    exits: dict[str, tuple[int | None, float]] = {}

    def term(name: str) -> Any:
        def hook(run: StackRun) -> None:
            started = time.monotonic()
            code = run.signal(name, signal.SIGTERM)
            exits[name] = (code, time.monotonic() - started)
            run.restart(name)

        return hook

    run, snap = run_scenario(
        "sigterm", tmp_path, world, {i: term(n) for i, n in enumerate(SERVICES)}, pause_s=1
    )
    assert {n: c for n, (c, _) in exits.items()} == dict.fromkeys(SERVICES, 0), exits
    assert all(seconds < 10 for _, seconds in exits.values()), exits
    check("sigterm each service", run, snap, baseline)
