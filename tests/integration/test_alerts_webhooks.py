"""Signed webhooks from a real alerts process to a local receiver that fails, times out, then accepts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from attune_alerts.signing import HEADER, verify
from attune_shared.topics import Topics
from tests.support.kafka_io import produce, read_all
from tests.support.procs import ServiceProcess
from tests.unit.alerts_service.builders import Client, encode, week

SECRET = "receiver-secret-0123456789"
TIMEOUT_S = 1.0
MAX_ATTEMPTS = 5


class Receiver:
    """Per event: two 500s, then one answer slower than the sender's timeout, then 200 (accepted)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.attempts: Counter[str] = Counter()
        self.accepted: dict[str, list[bytes]] = defaultdict(list)
        self.dead_calls = 0
        self.bad = 0

    def handle(self, path: str, body: bytes, headers: dict[str, str]) -> int | None:
        if not verify(SECRET, body, headers.get(HEADER, "")):
            with self.lock:
                self.bad += 1
            return 401
        event_id = json.loads(body)["event_id"]
        if headers.get("X-Attune-Event-Id") != event_id:
            with self.lock:
                self.bad += 1
            return 400
        if path == "/dead":
            with self.lock:
                self.dead_calls += 1
            return 503
        with self.lock:
            self.attempts[event_id] += 1
            n = self.attempts[event_id]
        if n <= 2:
            return 500
        if n == 3:
            time.sleep(TIMEOUT_S + 1.0)  # the sender has given up by now: not accepted
            return None
        with self.lock:
            self.accepted[event_id].append(body)
        return 200


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            code = state.handle(self.path, body, dict(self.headers))
            if code is None:
                return  # the connection is closed without an answer
            with contextlib.suppress(OSError):
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_webhooks_are_signed_retried_recorded_and_delivered_once(
    namespace, mongo, tmp_path, receiver
) -> None:
    state, base = receiver
    hooks = tmp_path / "webhooks.json"
    hooks.write_text(
        json.dumps(
            {
                "clinics": {
                    "north-01": {
                        "webhooks": [{"url": f"{base}/hook", "secret": SECRET}],
                        "escalation": {"webhooks": []},
                    },
                    "south-01": {"webhooks": [{"url": f"{base}/dead", "secret": SECRET}]},
                }
            }
        )
    )
    env = {
        **namespace.env,
        "ATTUNE_ALERTS_WEBHOOKS_FILE": str(hooks),
        "ATTUNE_ALERTS_WEBHOOK_TIMEOUT_SECONDS": str(TIMEOUT_S),
        "ATTUNE_ALERTS_WEBHOOK_BACKOFF_SECONDS": "0.2",
        "ATTUNE_ALERTS_WEBHOOK_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "ATTUNE_ALERTS_DELIVERY_POLL_SECONDS": "0.1",
    }
    north, south = Client(clinic="north-01"), Client(clinic="south-01", mrn="S1", episode="ep_s1")
    proc = ServiceProcess("alerts", env, namespace.logs / "alerts.log").start()
    db = mongo[namespace.db("alerts")]
    try:
        await asyncio.to_thread(proc.wait_ready)
        events = [north.phq9("q1", item9=1, at=week(1)), north.phq9("q2", item9=2, at=week(2))]
        events.append(south.phq9("s1", item9=1, at=week(1)))
        await produce(
            namespace.settings.kafka_bootstrap_servers,
            namespace.topic(Topics.MEASURES),
            [encode(e) for e in events],
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            docs = [d async for d in db["deliveries"].find({})]
            if len(docs) == 3 and all(d["status"] in ("delivered", "dead") for d in docs):
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"deliveries not finished: {[(d['target'], d['status']) for d in docs]}")
    finally:
        assert proc.stop() == 0, proc.tail()

    records = await read_all(namespace.settings.kafka_bootstrap_servers, namespace.topic(Topics.ALERTS))
    published = {json.loads(r.value)["event_id"]: r.value for r in records}
    north_events = [i for i, v in published.items() if json.loads(v)["alert"]["clinic_id"] == "north-01"]
    assert len(north_events) == 2  # raised, then updated

    # Every request carried a valid signature; each event was accepted exactly once, byte-identical.
    assert state.bad == 0
    assert set(state.accepted) == set(north_events)
    for event_id, bodies in state.accepted.items():
        assert len(bodies) == 1
        assert bodies[0] == published[event_id]
        assert state.attempts[event_id] == 4

    by_target = {d["event_id"]: d for d in docs if d["target"].endswith("/hook")}
    for event_id in north_events:
        d = by_target[event_id]
        assert d["status"] == "delivered" and d["attempt_count"] == 4 and d["delivered_at"] is not None
        outcomes = [(a["n"], a["outcome"], a["status"]) for a in d["attempts"]]
        assert outcomes == [
            (1, "http_error", 500),
            (2, "http_error", 500),
            (3, "timeout", None),
            (4, "delivered", 200),
        ]
        assert all(a["at"] is not None and a["duration_ms"] >= 0 for a in d["attempts"])
        assert d["attempts"][2]["duration_ms"] >= TIMEOUT_S * 1000 * 0.9
        times = [a["at"] for a in d["attempts"]]
        assert times == sorted(times)
    # A receiver that never accepts: every attempt recorded, then dead.
    dead = next(d for d in docs if d["target"].endswith("/dead"))
    assert dead["status"] == "dead" and dead["attempt_count"] == MAX_ATTEMPTS and dead["dead_at"] is not None
    assert [a["status"] for a in dead["attempts"]] == [503] * MAX_ATTEMPTS
    assert state.dead_calls == MAX_ATTEMPTS
    # One claim per attempt made, so no attempt was sent twice.
    assert await db["delivery_claims"].count_documents({}) == 4 * len(north_events) + MAX_ATTEMPTS
