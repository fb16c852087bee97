"""measures on the real broker and store: exact measure.scored revisions, late and amended responses,
dead letters, and a full replay from offset zero that changes nothing."""

from __future__ import annotations

import base64
import json
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from attune_shared.events import ResponseSubmitted
from attune_shared.ids import client_ref, derived_id
from attune_shared.kafka import group_lag
from attune_shared.topics import Topics
from tests.support.ids import ap, ep, ev, rs
from tests.support.kafka_io import produce, read_all, wait_drained
from tests.support.procs import ServiceProcess

SOURCE = "ehr-north"
GROUP = "attune-measures"
TZ = timezone(timedelta(hours=1))
BASE = datetime(2026, 3, 2, 9, 0, tzinfo=TZ)
CLINICS = ("north-01", "north-02", "south-01")
ALLIANCE = ("WAI-SR", "SRS")
OUTCOME = {"ORS": -5.0, "PHQ-9": 6.0, "GAD-7": 4.0}  # reliable deterioration: signed change from intake
SD_FLOOR = {"WAI-SR": 0.30, "SRS": 2.0}


@dataclass
class Response:
    rid: str  # the response's pseudonym, e.g. rs("p-1"), as intake publishes it
    client: int
    ref: str
    clinic: str
    episode: str
    instrument: str
    respondent: str
    session_at: datetime
    items: list[Any]
    status: str = "completed"
    occurred_at: datetime | None = None

    @property
    def series(self) -> str:
        return f"{self.episode}:{self.instrument}"

    @property
    def in_alliance(self) -> bool:
        return self.instrument in ALLIANCE and self.respondent == "client"

    def event(self) -> ResponseSubmitted:
        occurred = self.occurred_at or self.session_at + timedelta(minutes=50)
        source_event_id = ev(f"{self.rid}:{self.status}:{occurred.isoformat()}")
        return ResponseSubmitted(
            event_id=derived_id("test-intake", SOURCE, source_event_id),
            occurred_at=occurred,
            source=SOURCE,
            source_event_id=source_event_id,
            clinic_id=self.clinic,
            client_ref=self.ref,
            episode_id=self.episode,
            response_id=self.rid,
            status=self.status,  # type: ignore[arg-type]
            instrument=self.instrument,  # type: ignore[arg-type]
            respondent=self.respondent,  # type: ignore[arg-type]
            clinician_id="c-1",
            appointment_id=ap(f"a-{self.rid}"),
            appointment_start=self.session_at,
            items=list(self.items),
        )

    def record(self) -> tuple[bytes, bytes]:
        return self.ref.encode(), self.event().model_dump_json().encode()


def items_for(rnd: random.Random, instrument: str, level: float) -> list[Any]:
    if instrument == "WAI-SR":
        return [max(1, min(5, round(level + rnd.choice((-1, 0, 0, 0, 1))))) for _ in range(12)]
    if instrument == "SRS":
        return [round(min(10.0, max(0.0, 2 * level + rnd.uniform(-1.5, 1))), 1) for _ in range(4)]
    if instrument == "ORS":
        return [round(rnd.uniform(2, 9), 1) for _ in range(4)]
    if instrument == "PHQ-9":
        return [rnd.randint(0, 3) for _ in range(9)]
    if instrument == "GAD-7":
        return [rnd.randint(0, 3) for _ in range(7)]
    return [rnd.randint(0, 1), rnd.randint(1, 5), rnd.randint(1, 5)]  # PSQ


def total(instrument: str, items: list[Any]) -> float:
    """The primary score, by plain arithmetic."""
    if instrument == "WAI-SR":
        return sum(items) / 12
    return float(sum(items))


@dataclass
class Stream:
    on_time: list[Response] = field(default_factory=list)
    late: list[Response] = field(default_factory=list)
    amendments: list[tuple[Response, Response]] = field(default_factory=list)  # (original, amended)


def build_stream(seed: int = 11, clients: int = 50) -> Stream:
    """50 clients' responses: on time in session order, a few held back (late), a few amended later."""
    rnd = random.Random(seed)
    out = Stream()
    for c in range(clients):
        clinic = CLINICS[c % 3]
        ref = client_ref(b"integration-test-key", clinic, f"MRN{c:04d}")
        episode = ep(f"client-{c}")
        alliance = [rnd.choice(ALLIANCE)] if c % 4 else list(ALLIANCE)
        outcome = rnd.choice(list(OUTCOME))
        level = rnd.uniform(3.2, 4.6)
        sessions = rnd.randint(5, 9)
        mine: list[Response] = []
        for s in range(sessions):
            at = BASE + timedelta(days=c % 7 + 7 * s, hours=c % 5)
            dip = 1.2 if s == sessions - 2 and c % 3 == 0 else 0.0  # some V-shaped series
            names = [*alliance, outcome] + (["PSQ"] if c % 5 == 0 and s % 2 else [])
            for name in names:
                mine.append(
                    Response(
                        rs(f"r{c}-{s}-{name}"),
                        c,
                        ref,
                        clinic,
                        episode,
                        name,
                        "client",
                        at,
                        items_for(rnd, name, level - dip),
                    )
                )
            if c % 10 == 3 and s == 1:
                mine.append(
                    Response(
                        rs(f"r{c}-{s}-WAI-SR-clin"),
                        c,
                        ref,
                        clinic,
                        episode,
                        "WAI-SR",
                        "clinician",
                        at + timedelta(minutes=5),
                        items_for(rnd, "WAI-SR", level),
                    )
                )
        # Late: one response of one alliance series and, for some, one outcome response (at most one a series).
        held: set[str] = set()
        if c % 3 == 1:
            pick = rnd.choice(
                [r for r in mine if r.instrument == alliance[0] and r.respondent == "client"][:-1]
            )
            held.add(pick.rid)
        if c % 7 == 2:
            outs = [r for r in mine if r.instrument == outcome]
            held.add(outs[0].rid if c % 2 else outs[len(outs) // 2].rid)  # a late intake, or a late middle
        out.on_time += [r for r in mine if r.rid not in held]
        out.late += [r for r in mine if r.rid in held]
        # Amendments: one response per chosen series, with a different primary score.
        if c % 4 == 2:
            series_names = [alliance[0], outcome] if c % 8 == 2 else [alliance[0]]
            for name in series_names:
                candidates = [r for r in mine if r.instrument == name and r.respondent == "client"]
                original = rnd.choice(candidates)
                while True:
                    new_items = items_for(rnd, name, rnd.uniform(2.5, 4.8))
                    if total(name, new_items) != total(name, original.items):
                        break
                amended = Response(
                    **{
                        **original.__dict__,
                        "items": new_items,
                        "status": "amended",
                        "occurred_at": original.session_at + timedelta(days=3),
                    }
                )
                out.amendments.append((original, amended))
    return out


def expected_revisions(stream: Stream) -> dict[str, int]:
    """How many revisions each response gets, phase by phase, by counting places in each series."""
    rev: dict[str, int] = {}
    groups: dict[str, list[Response]] = {}

    def ordered(key: str) -> list[Response]:
        return sorted(groups[key], key=lambda r: (r.session_at, r.rid))

    for r in stream.on_time:  # in session order: appending never changes an earlier point
        rev[r.rid] = 1
        groups.setdefault(r.series, []).append(r)
    for r in stream.late:
        groups[r.series].append(r)
        rev[r.rid] = 1
        series = [x for x in ordered(r.series) if x.respondent == r.respondent]
        i = [x.rid for x in series].index(r.rid)
        if r.in_alliance:  # every later point moves one place
            for later in series[i + 1 :]:
                rev[later.rid] += 1
        elif r.instrument in OUTCOME and i == 0:  # a new intake changes everyone's change
            for later in series[1:]:
                rev[later.rid] += 1
    for original, _ in stream.amendments:
        rev[original.rid] += 1
        series = [x for x in ordered(original.series) if x.respondent == "client"]
        p = [x.rid for x in series].index(original.rid)
        if original.in_alliance:  # later points with >= 3 earlier scores that hold it in their window of 5
            for q in range(p + 1, len(series)):
                if q >= 3 and q - p <= 5:
                    rev[series[q].rid] += 1
        elif original.instrument in OUTCOME and p == 0:
            for later in series[1:]:
                rev[later.rid] += 1
    return rev


def final_responses(stream: Stream) -> dict[str, Response]:
    final = {r.rid: r for r in [*stream.on_time, *stream.late]}
    for _, amended in stream.amendments:
        final[amended.rid] = amended
    return final


async def reset_group_to_beginning(namespace, topic: str) -> None:
    settings = namespace.settings
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.group(GROUP),
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        parts = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        begin = await consumer.beginning_offsets(parts)
        await consumer.commit({tp: offset for tp, offset in begin.items()})
    finally:
        await consumer.stop()


def check_final_content(latest: dict[str, dict[str, Any]], final: dict[str, Response]) -> None:
    """Scores, change from intake and the alliance statistics of each last revision, by hand."""
    groups: dict[str, list[Response]] = {}
    for r in final.values():
        groups.setdefault(r.series, []).append(r)
    for members in groups.values():
        members.sort(key=lambda r: (r.session_at, r.rid))
        alliance = [r for r in members if r.in_alliance]
        for i, r in enumerate(alliance):
            s = latest[r.rid]["series"]
            scores = [total(x.instrument, x.items) for x in alliance]
            assert (s["position"], s["earlier_count"], s["score"]) == (i + 1, i, pytest.approx(scores[i]))
            window = scores[max(0, i - 5) : i]
            assert s["earlier_response_ids"] == [x.rid for x in alliance[max(0, i - 5) : i]]
            if i < 3:
                assert s["mu"] is None and s["drop"] is None
                continue
            mu = sum(window) / len(window)
            sd = math.sqrt(sum((x - mu) ** 2 for x in window) / (len(window) - 1))
            sd_eff = max(sd, SD_FLOOR[r.instrument])
            assert (s["mu"], s["sd_within"], s["sd_eff"]) == (
                pytest.approx(mu),
                pytest.approx(sd),
                pytest.approx(sd_eff),
            )
            assert s["drop"] == pytest.approx((mu - scores[i]) / sd_eff)
        for r in members:
            m = latest[r.rid]
            assert m["status"] == r.status
            if r.instrument == "WAI-SR":
                assert m["scores"]["mean"] == pytest.approx(sum(r.items) / 12)
            elif r.instrument != "PSQ":
                assert m["scores"]["total"] == pytest.approx(sum(r.items))
            if not r.in_alliance:
                assert m["series"] is None
            if r.instrument in OUTCOME:
                intake = members[0]
                change = total(r.instrument, r.items) - total(intake.instrument, intake.items)
                worse = (
                    change <= OUTCOME[r.instrument]
                    if OUTCOME[r.instrument] < 0
                    else change >= OUTCOME[r.instrument]
                )
                assert m["change"]["intake_response_id"] == intake.rid
                assert m["change"]["change"] == pytest.approx(change)
                assert m["change"]["reliable_deterioration"] is worse


async def test_fifty_clients_exact_revisions_then_a_full_replay_changes_nothing(namespace, mongo) -> None:
    stream = build_stream()
    bootstrap = namespace.settings.kafka_bootstrap_servers
    responses_topic = namespace.topic(Topics.CARE)
    measures_topic = namespace.topic(Topics.MEASURES)
    dlq_topic = namespace.topic(Topics.MEASURES_DLQ)
    poison = [
        (None, b"this is not JSON {"),
        (None, b"[1, 2, 3]"),
        (None, json.dumps({"event_type": "response.submitted", "items": []}).encode()),
    ]
    drained = (namespace.settings, namespace.settings.group(GROUP), [responses_topic])

    # Small batches, so series are split across batches and read back from the store between them.
    env = {**namespace.env, "ATTUNE_BATCH_MAX_RECORDS": "50"}
    measures = ServiceProcess("measures", env, namespace.logs / "measures.log").start()
    try:
        measures.wait_ready()
        # Phase 1: everything on time, in session order per client, with poison in the middle.
        on_time = [r.record() for r in stream.on_time]
        half = len(on_time) // 2
        await produce(bootstrap, responses_topic, [*on_time[:half], *poison, *on_time[half:]])
        await wait_drained(*drained)
        # Phase 2: the late responses (each lands before points already scored).
        await produce(bootstrap, responses_topic, [r.record() for r in stream.late])
        await wait_drained(*drained)
        # Phase 3: amendments, each followed by its stale original and a replay of itself.
        phase3 = []
        for original, amended in stream.amendments:
            phase3 += [amended.record(), original.record(), amended.record()]
        await produce(bootstrap, responses_topic, phase3)
        await wait_drained(*drained)
    finally:
        assert measures.stop() == 0, measures.tail()

    published = [json.loads(r.value) for r in await read_all(bootstrap, measures_topic)]
    expected = expected_revisions(stream)
    want = {(rid, n) for rid, last in expected.items() for n in range(1, last + 1)}
    got = Counter((m["response_id"], m["revision"]) for m in published)
    assert set(got) == want
    assert len(published) == len(want), "no measure was published twice"
    for m in published:
        assert m["event_id"] == derived_id("measure.scored", SOURCE, m["response_id"], str(m["revision"]))
        assert m["superseded"] is (m["revision"] > 1)
    latest: dict[str, dict[str, Any]] = {}
    for m in published:
        if m["revision"] > latest.get(m["response_id"], {"revision": 0})["revision"]:
            latest[m["response_id"]] = m
    final = final_responses(stream)
    check_final_content(latest, final)
    assert sum(1 for m in latest.values() if m["status"] == "amended") == len(stream.amendments)

    dlq = [json.loads(r.value) for r in await read_all(bootstrap, dlq_topic)]
    assert Counter(d["error"]["code"] for d in dlq) == Counter(
        {"invalid_json": 1, "not_an_object": 1, "schema_violation": 1}
    )
    assert "this is not JSON {" in [d["raw"] for d in dlq]
    db = mongo[namespace.db("measures")]
    stored = {d["_id"]: (d["revision"], d["fingerprint"], d["version"]) async for d in db["responses"].find()}
    assert len(stored) == len(final)
    assert {k.split("|", 1)[1]: v[0] for k, v in stored.items()} == expected
    dead_count = await db["dead_letters"].count_documents({})
    assert dead_count == 3

    # Replay: every record from offset zero, against the store that already holds their effects.
    await reset_group_to_beginning(namespace, responses_topic)
    lag = await group_lag(namespace.settings, namespace.settings.group(GROUP), [responses_topic])
    consumed = sum(lag.values())
    assert consumed == len(on_time) + len(poison) + len(stream.late) + len(phase3)
    measures = ServiceProcess("measures", env, namespace.logs / "measures2.log").start()
    try:
        measures.wait_ready()
        await wait_drained(*drained)
    finally:
        assert measures.stop() == 0, measures.tail()
    after = [json.loads(r.value) for r in await read_all(bootstrap, measures_topic)]
    seen = {m["event_id"] for m in published}
    # Any record published during the replay carries an id already seen (here: none was republished).
    assert {m["event_id"] for m in after} == seen, "replay produced no new event id"
    stored_after = {
        d["_id"]: (d["revision"], d["fingerprint"], d["version"]) async for d in db["responses"].find()
    }
    assert stored_after == stored, "no response was rewritten, none stored twice"
    assert await db["dead_letters"].count_documents({}) == dead_count
    dlq_after = [json.loads(r.value) for r in await read_all(bootstrap, dlq_topic)]
    assert {d["dlq_id"] for d in dlq_after} == {d["dlq_id"] for d in dlq}

    revision_counts = Counter(expected.values())
    print(
        f"\nmeasures: {len(stream.on_time) + len(stream.late)} responses from 50 clients "
        f"({len(stream.late)} late, {len(stream.amendments)} amended; "
        f"{Counter(r.instrument for r in final.values())}), "
        f"{len(published)} measure.scored events ({len(published) - len(final)} revisions > 1; "
        f"responses by revision count {dict(sorted(revision_counts.items()))}), "
        f"dead letters {dict(Counter(d['error']['code'] for d in dlq))}; "
        f"replay of {consumed} records: {len(after) - len(published)} republished, "
        f"{len({m['event_id'] for m in after}) - len(seen)} new ids, "
        f"responses stored {len(stored)} -> {len(stored_after)}, dead letters {dead_count} -> {dead_count}"
    )


def test_stream_builder_covers_late_and_amended_cases() -> None:
    stream = build_stream()
    rev = expected_revisions(stream)
    assert len({r.client for r in stream.on_time}) == 50
    assert len(stream.late) >= 10 and len(stream.amendments) >= 8
    assert max(rev.values()) >= 3  # some response is revised by both a late arrival and an amendment
    late_intakes = [r for r in stream.late if r.instrument in OUTCOME]
    assert late_intakes, "a late response that becomes an outcome series' intake"


async def test_a_record_that_is_not_json_is_dead_lettered_and_the_service_keeps_going(
    namespace, mongo
) -> None:
    bootstrap = namespace.settings.kafka_bootstrap_servers
    responses_topic = namespace.topic(Topics.CARE)
    ref = client_ref(b"integration-test-key", "north-01", "MRN-POISON")
    first = Response(rs("p-1"), 0, ref, "north-01", ep("poison"), "PHQ-9", "client", BASE, [1] * 9)
    second = Response(
        rs("p-2"), 0, ref, "north-01", ep("poison"), "PHQ-9", "client", BASE + timedelta(days=7), [3] * 9
    )
    # Same key, so the poison sits between two good records on one partition.
    records = [first.record(), (ref.encode(), b"\x00garbage, not JSON"), second.record()]
    measures = ServiceProcess("measures", namespace.env, namespace.logs / "measures.log").start()
    try:
        measures.wait_ready()
        await produce(bootstrap, responses_topic, records)
        await wait_drained(namespace.settings, namespace.settings.group(GROUP), [responses_topic])
        metrics_text = httpx.get(f"{measures.url}/metrics", timeout=5).text
        assert measures.ready(), "still ready after the poison"
    finally:
        assert measures.stop() == 0, measures.tail()
    dlq = [json.loads(r.value) for r in await read_all(bootstrap, namespace.topic(Topics.MEASURES_DLQ))]
    # Bytes holding a NUL are kept as base64 (no store text column takes U+0000 on PostgreSQL).
    assert [(d["error"]["code"], d["raw"], d["raw_encoding"], d["origin"]["key"]) for d in dlq] == [
        ("invalid_json", base64.b64encode(b"\x00garbage, not JSON").decode(), "base64", ref)
    ]
    published = [json.loads(r.value) for r in await read_all(bootstrap, namespace.topic(Topics.MEASURES))]
    assert [(m["response_id"], m["scores"]["total"], m["change"]["change"]) for m in published] == [
        (rs("p-1"), 9, 0.0),
        (rs("p-2"), 27, 18.0),
    ]
    db = mongo[namespace.db("measures")]
    assert await db["dead_letters"].count_documents({"error.code": "invalid_json"}) == 1
    assert 'attune_measures_responses_rejected_total{reason="invalid_json"} 1.0' in metrics_text
    assert 'attune_measures_responses_scored_total{instrument="PHQ-9"} 2.0' in metrics_text
    assert 'attune_measures_scores_published_total{instrument="PHQ-9"} 2.0' in metrics_text
    assert "attune_measures_scoring_latency_seconds_count 3.0" in metrics_text


async def test_new_response_keys_are_claimed_not_looked_up_and_stored_ones_are_still_found(
    infra_settings: Any,
) -> None:
    # The store claims a batch's unknown keys in `response_keys` with one insert instead of one
    # lookup each; a key that clashes (stored before, moved by an amendment, or claimed by an
    # attempt a crash cut short) is looked up as before.
    from dataclasses import replace as dc_replace

    from pymongo import AsyncMongoClient, monitoring

    from attune_measures.adapters.store import MeasuresStore
    from attune_measures.domain.versions import Tracked
    from tests.unit.measures_service.builders import srs

    class Finds(monitoring.CommandListener):
        def __init__(self) -> None:
            self.ids: list[Any] = []

        def started(self, event: monitoring.CommandStartedEvent) -> None:
            filt = event.command.get("filter", {})
            if event.command_name == "find" and event.command["find"] == "responses" and "_id" in filt:
                self.ids.append(filt["_id"])

        def succeeded(self, event: Any) -> None: ...

        def failed(self, event: Any) -> None: ...

    finds = Finds()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra_settings.mongodb_uri.get_secret_value(), tz_aware=True, event_listeners=[finds]
    )
    name = f"test_keys_{uuid4().hex[:10]}"
    try:
        db = client[name]
        first = MeasuresStore(db)
        a, b = srs("r-a", 36, 0), srs("r-b", 37, 1)
        loaded = await first.load(keys=[a.key, b.key], series_keys=[a.series_key])
        assert loaded.book == {} and finds.ids == [], "new keys cost no lookup"
        await first.save(changed=[Tracked(a, 1, "fa"), Tracked(b, 1, "fb")], versions={})
        # A claim whose write never happened (a crash after load): the key reads as new again.
        await first.load(keys=[srs("r-lost", 38, 2).key], series_keys=[a.series_key])

        again = MeasuresStore(db)  # another process: nothing remembered
        moved = dc_replace(a, episode_id=ep("ep_2"), status="amended")
        finds.ids.clear()
        loaded = await again.load(
            keys=[moved.key, srs("r-lost", 38, 2).key, srs("r-new", 35, 3).key],
            series_keys=[moved.series_key],
        )
        assert set(loaded.book) == {a.key}, "a stored key is found from another group"
        assert loaded.versions[a.key] == 1
        assert set(finds.ids) == {a.key, srs("r-lost", 38, 2).key}, "only clashing keys are looked up"
        assert await db["response_keys"].count_documents({}) == 4
    finally:
        await client.drop_database(name)
        await client.close()
