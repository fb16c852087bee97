"""Expected trajectories on the real broker and store: closed episodes' responses go through measures,
an admin refits, and a later response at session 2 or more carries the expected band on its
measure.scored event; a second refit keeps both versions and changes only what is scored after it."""

from __future__ import annotations

import asyncio
import json
import math
import random
from datetime import date, datetime, timedelta, timezone
from typing import Any

import httpx

from attune_shared.events import EpisodeClosed, ResponseSubmitted
from attune_shared.ids import client_ref, derived_id
from attune_shared.kafka_admin import missing_topics
from attune_shared.topics import Topics
from tests.support.ids import ap, ep, ev, rs
from tests.support.kafka_io import produce, read_all, wait_drained
from tests.support.procs import ServiceProcess

SOURCE = "ehr-north"
CLINIC = "north-01"
GROUP = "attune-measures"
TZ = timezone(timedelta(hours=1))
BASE = datetime(2026, 3, 2, 9, 0, tzinfo=TZ)
ADMIN = {"Authorization": "Bearer dev-admin"}
OPS = {"Authorization": "Bearer dev-ops"}
LEAD = {"Authorization": "Bearer dev-lead-north"}
N_MIN = 12


def phq9(total: int) -> list[int]:
    """PHQ-9 items (0..3) summing to `total` (0..27)."""
    total = max(0, min(27, total))
    return (
        [3] * (total // 3)
        + ([total % 3] if total % 3 else [])
        + [0] * (9 - total // 3 - (1 if total % 3 else 0))
    )


def response(client: int, session: int, total: int, episode: str | None = None) -> tuple[bytes, bytes]:
    ref = client_ref(b"integration-test-key", CLINIC, f"MRN-T{client:03d}")
    rid = rs(f"traj-{client}-{session}")
    at = BASE + timedelta(days=7 * session, hours=client % 8)
    occurred = at + timedelta(minutes=50)
    source_event_id = ev(f"{rid}:completed")
    event = ResponseSubmitted(
        event_id=derived_id("test-intake", SOURCE, source_event_id),
        occurred_at=occurred,
        source=SOURCE,
        source_event_id=source_event_id,
        clinic_id=CLINIC,
        client_ref=ref,
        episode_id=episode or ep(f"traj-{client}"),
        response_id=rid,
        status="completed",
        instrument="PHQ-9",
        respondent="client",
        clinician_id="c-1",
        appointment_id=ap(f"a-traj-{client}-{session}"),
        appointment_start=at,
        items=list[int | float | None](phq9(total)),
    )
    return ref.encode(), event.model_dump_json().encode()


def closed(client: int, sessions: int) -> tuple[bytes, bytes]:
    ref = client_ref(b"integration-test-key", CLINIC, f"MRN-T{client:03d}")
    at = BASE + timedelta(days=7 * sessions, hours=client % 8)
    source_event_id = ev(f"close-traj-{client}")
    event = EpisodeClosed(
        event_id=derived_id("test-intake", SOURCE, source_event_id),
        occurred_at=at,
        source=SOURCE,
        source_event_id=source_event_id,
        clinic_id=CLINIC,
        client_ref=ref,
        episode_id=ep(f"traj-{client}"),
        reason="planned",
        closed_on=date(2026, 3, 2) + timedelta(days=7 * sessions),
    )
    return ref.encode(), event.model_dump_json().encode()


def closed_episodes(rnd: random.Random) -> list[tuple[bytes, bytes]]:
    """N_MIN closed episodes of 3..6 PHQ-9 scores falling from intake (12..24) by about 4 log(s)."""
    records = []
    for c in range(N_MIN):
        intake = rnd.randint(12, 24)
        sessions = rnd.randint(3, 6)
        for s in range(1, sessions + 1):
            total = (
                intake
                if s == 1
                else round(1 + 0.9 * intake - 4 * math.log(s) + rnd.choice((-2, -1, 0, 1, 2)))
            )
            records.append(response(c, s, total))
        records.append(closed(c, sessions + 1))
    return records


def band(model: dict[str, Any], intake: float, s: int) -> tuple[float, float, float]:
    """low, median, high of the model's lines at session s, as the domain computes them."""
    values = sorted(
        round(min(27.0, max(0.0, c["intercept"] + c["b_intake"] * intake + c["b_log_s"] * math.log(s))), 2)
        for c in model["coefficients"]
    )
    return values[0], values[1], values[2]


async def _scored(bootstrap: str, topic: str, episode: str) -> list[dict[str, Any]]:
    out = []
    for r in await read_all(bootstrap, topic):
        value = json.loads(r.value)
        if value.get("event_type") == "measure.scored" and value["episode_id"] == episode:
            out.append(value)
    return sorted(out, key=lambda m: (m["session_at"], m["revision"]))


async def test_a_refit_on_closed_episodes_gives_later_measures_their_expected_band(namespace, mongo) -> None:
    bootstrap = namespace.settings.kafka_bootstrap_servers
    care = namespace.topic(Topics.CARE)
    measures_topic = namespace.topic(Topics.MEASURES)
    drained = (namespace.settings, namespace.settings.group(GROUP), [care])
    env = {**namespace.env, "ATTUNE_TRAJECTORY_N_MIN": str(N_MIN), "ATTUNE_TRAJECTORY_REFIT_S": "86400"}
    for _ in range(60):  # the namespace's new topics, as every broker's metadata knows them
        if not await missing_topics(namespace.settings):
            break
        await asyncio.sleep(0.5)
    measures = ServiceProcess("measures", env, namespace.logs / "measures.log").start()
    open_episode = ep("traj-open")
    try:
        measures.wait_ready()
        async with httpx.AsyncClient(base_url=measures.url, timeout=60) as http:
            # Nothing closed yet: every instrument inactive, and the listing says why.
            listing = (await http.get("/v1/trajectories", headers=OPS)).json()
            assert [(i["instrument"], i["status"], i["model"]) for i in listing["items"]] == [
                ("ORS", "inactive", None),
                ("PHQ-9", "inactive", None),
                ("GAD-7", "inactive", None),
            ]
            assert {i["n_min"] for i in listing["items"]} == {N_MIN}

            # The open episode's intake is scored before any model: it carries none.
            await produce(
                bootstrap, care, [*closed_episodes(random.Random(5)), response(99, 1, 20, open_episode)]
            )
            await wait_drained(*drained)

            assert (await http.post("/v1/admin/trajectories/refit", headers=LEAD)).status_code == 403
            assert (await http.post("/v1/admin/trajectories/refit", headers=OPS)).status_code == 403
            reply = await http.post("/v1/admin/trajectories/refit", headers=ADMIN)
            assert reply.status_code == 200, measures.tail()
            items = {i["instrument"]: i for i in reply.json()["items"]}
            phq = items["PHQ-9"]
            assert phq["status"] == "active" and phq["episodes_available"] == N_MIN
            assert phq["new_version"] == phq["model"]["version"]
            assert phq["model"]["episodes"] == N_MIN
            assert [c["quantile"] for c in phq["model"]["coefficients"]] == [0.1, 0.5, 0.9]
            for name in ("ORS", "GAD-7"):
                assert items[name]["status"] == "inactive" and items[name]["new_version"] is None
                assert items[name]["episodes_available"] == 0
                assert items[name]["reason"] == f"0 closed episodes with at least 3 scores; {N_MIN} needed"
            first = phq["model"]
            ready = (await http.get("/readyz")).json()
            assert ready["details"]["trajectories"]["PHQ-9"] == {
                "status": "active",
                "version": first["version"],
                "episodes_available": N_MIN,
                "n_min": N_MIN,
                "reason": None,
            }
            assert ready["details"]["trajectories"]["ORS"]["status"] == "inactive"

            # The open episode's sessions 2 and 3 carry the band of the model current when scored.
            await produce(
                bootstrap, care, [response(99, 2, 17, open_episode), response(99, 3, 19, open_episode)]
            )
            await wait_drained(*drained)
            scored = await _scored(bootstrap, measures_topic, open_episode)
            assert [(m["revision"], m["expected"] is None) for m in scored] == [
                (1, True),
                (1, False),
                (1, False),
            ]
            for s, m in ((2, scored[1]), (3, scored[2])):
                e = m["expected"]
                assert e["session_index"] == s
                assert (e["low"], e["median"], e["high"]) == band(first, 20, s)
                assert e["model_version"] == first["version"] and e["model_episodes"] == N_MIN
                assert e["quantiles"] == [0.1, 0.5, 0.9]
                assert datetime.fromisoformat(e["model_fitted_at"]) == datetime.fromisoformat(
                    first["fitted_at"]
                )

            # A second refit (a later second, so a new version) keeps both; only what is scored after it
            # carries the new one, and nothing scored before is republished.
            await asyncio.sleep(1.1)
            second = (await http.post("/v1/admin/trajectories/refit", headers=ADMIN)).json()
            latest = {i["instrument"]: i for i in second["items"]}["PHQ-9"]["model"]
            assert latest["version"] != first["version"]
            assert latest["coefficients"] == first["coefficients"], "the same episodes, the same fit"
            await produce(bootstrap, care, [response(99, 4, 15, open_episode)])
            await wait_drained(*drained)
            scored = await _scored(bootstrap, measures_topic, open_episode)
            assert len(scored) == 4
            assert [m["expected"]["model_version"] for m in scored[1:]] == [first["version"]] * 2 + [
                latest["version"]
            ]
            assert scored[3]["expected"]["session_index"] == 4

            listing = (await http.get("/v1/trajectories", headers=LEAD)).json()
            assert {
                i["instrument"]: i["model"]["version"] if i["model"] else None for i in listing["items"]
            } == {
                "ORS": None,
                "PHQ-9": latest["version"],
                "GAD-7": None,
            }
            assert (await http.get("/v1/trajectories")).status_code == 401
    finally:
        assert measures.stop() == 0, measures.tail()

    db = mongo[namespace.db("measures")]
    models = [d async for d in db["trajectory_models"].find({}, {"version": 1, "instrument": 1})]
    assert sorted(m["version"] for m in models) == sorted([first["version"], latest["version"]])
    assert await db["episodes"].count_documents({}) == N_MIN
    audit = [d async for d in db["audit"].find({"action": {"$in": ["trajectories", "trajectories_refit"]}})]
    assert sorted((a["action"], a["outcome"], a["status"]) for a in audit) == sorted(
        [
            ("trajectories", "ok", 200),
            ("trajectories", "ok", 200),
            ("trajectories", "unauthorized", 401),
            ("trajectories_refit", "forbidden", 403),
            ("trajectories_refit", "forbidden", 403),
            ("trajectories_refit", "ok", 200),
            ("trajectories_refit", "ok", 200),
        ]
    )
