"""Two alerts replicas sweeping at once escalate each due (alert, level) exactly once."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import httpx

from attune_shared.topics import Topics
from tests.support.kafka_io import produce, read_all
from tests.support.procs import ServiceProcess
from tests.unit.alerts_service.builders import Client, encode, week

ADMIN = {"Authorization": "Bearer dev-admin"}
SLA_HOURS = 0.0003  # about 1.1 s per level
LEVELS = 3


async def test_two_replicas_escalate_each_due_level_exactly_once(namespace, mongo, tmp_path) -> None:
    thresholds = tmp_path / "thresholds.json"
    sla = {"sla_urgent_hours": SLA_HOURS, "sla_high_hours": SLA_HOURS, "sla_normal_hours": SLA_HOURS}
    thresholds.write_text(json.dumps({"default": sla}))
    env = {
        **namespace.env,
        "ATTUNE_ALERTS_THRESHOLDS_FILE": str(thresholds),
        "ATTUNE_ALERTS_SWEEP_SECONDS": "0.15",
    }
    replicas = [ServiceProcess("alerts", env, namespace.logs / f"alerts-{i}.log").start() for i in range(2)]
    try:
        for r in replicas:
            await asyncio.to_thread(r.wait_ready)
        clients = [Client(mrn=f"E{i}", episode=f"ep_e{i}") for i in range(5)]
        await produce(
            namespace.settings.kafka_bootstrap_servers,
            namespace.topic(Topics.MEASURES),
            [encode(c.phq9(f"q{i}", item9=1, at=week(i))) for i, c in enumerate(clients)],
        )
        acked: str | None = None
        async with httpx.AsyncClient(base_url=replicas[0].url, timeout=10) as http:
            for _ in range(300):
                items = (await http.get("/v1/alerts", headers=ADMIN)).json()["items"]
                if acked is None and items and items[0]["escalation_level"] >= 1:
                    # A lead acknowledging stops that alert's escalation.
                    acked = items[0]["alert_id"]
                    r = await http.post(f"/v1/alerts/{acked}/acknowledge", headers=ADMIN)
                    assert r.status_code == 200, r.text
                others = [a for a in items if a["alert_id"] != acked]
                if len(others) == len(clients) - 1 and all(a["escalation_level"] >= LEVELS for a in others):
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"escalation did not reach level {LEVELS}: {items}")
    finally:
        for r in replicas:
            assert r.stop() == 0, r.tail()

    records = await read_all(namespace.settings.kafka_bootstrap_servers, namespace.topic(Topics.ALERTS))
    events = [json.loads(r.value) for r in records]
    escalated = Counter(
        (e["alert"]["alert_id"], e["alert"]["escalation_level"])
        for e in events
        if e["event_type"] == "alert.escalated"
    )
    assert escalated, "nothing escalated"
    assert all(n == 1 for n in escalated.values()), [k for k, n in escalated.items() if n > 1]
    per_alert: dict[str, list[int]] = {}
    for alert_id, level in escalated:
        per_alert.setdefault(alert_id, []).append(level)
    assert len(per_alert) == len(clients)
    for alert_id, levels in per_alert.items():
        assert sorted(levels) == list(range(1, max(levels) + 1)), (alert_id, levels)
        if alert_id != acked:
            assert max(levels) >= LEVELS

    db = mongo[namespace.db("alerts")]
    claims = [d async for d in db["escalation_claims"].find({})]
    assert all(d["done_at"] is not None for d in claims), claims  # every claim taken was finished
    done = [d for d in claims if d["outcome"] == "escalated"]
    assert sorted((d["alert_id"], d["level"]) for d in done) == sorted(escalated)
    # A claim that escalated nothing can only be the acknowledged alert's next level, claimed by a
    # sweep that read the alert just before the acknowledgement landed: applying it then finds the
    # alert acknowledged (a fresh-clone run at ed32302 had one).
    late = [(d["alert_id"], d["outcome"]) for d in claims if d["outcome"] != "escalated"]
    assert all(found == (acked, "no_longer_due") for found in late), late
    # Both replicas were sweeping: each won some of the claims.
    assert len({d["replica"] for d in claims}) == 2
    # No escalation after the acknowledgement.
    changes = [d async for d in db["alert_events"].find({"alert_id": acked})]
    ack_seq = next(d["seq"] for d in changes if d["event_type"] == "alert.acknowledged")
    assert all(d["seq"] < ack_seq for d in changes if d["event_type"] == "alert.escalated")
