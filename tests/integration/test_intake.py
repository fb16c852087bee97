"""intake on the real broker and store: exact counts, dead-letter codes, no MRN anywhere, crash safety."""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
from collections import Counter
from datetime import timedelta

import pytest

from attune_intake.domain.canonical import Pseudonymiser
from attune_intake.domain.validation import parse_envelope
from attune_shared.ids import (
    APPOINTMENT_REF_PATTERN,
    EPISODE_REF_PATTERN,
    EVENT_REF_PATTERN,
    RESPONSE_REF_PATTERN,
)
from attune_shared.topics import Topics
from tests.support.ehr import BASE, Ehr, encode, key_of
from tests.support.kafka_io import produce, read_all, wait_drained
from tests.support.procs import ServiceProcess

WAI = [4, 4, 5, 4, 4, 4, 5, 4, 4, 4, 5, 4]
# The shapes of the EHR's own appointment and response ids in the mixed stream (a-<c>-<s>, r-<c>-<s>).
RAW_APPT_OR_RESPONSE = re.compile(r"\b[ar]-\d+-\d+\b")
ID_PATTERNS = {
    "source_event_id": EVENT_REF_PATTERN,
    "episode_id": EPISODE_REF_PATTERN,
    "appointment_id": APPOINTMENT_REF_PATTERN,
    "response_id": RESPONSE_REF_PATTERN,
}


def _strings(value: object) -> set[str]:
    """Every string value in a decoded JSON document."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return {s for v in value.values() for s in _strings(v)}
    if isinstance(value, list):
        return {s for v in value for s in _strings(v)}
    return set()


def _raw_ids(records: list[tuple[bytes | None, bytes]]) -> set[str]:
    """Every identifier the EHR made in these records: event, appointment and response ids."""
    out: set[str] = set()
    for _, value in records:
        try:
            doc = json.loads(value)
        except ValueError:
            continue
        if not isinstance(doc, dict):
            continue
        out |= {doc["event_id"]} if isinstance(doc.get("event_id"), str) else set()
        payload = doc.get("payload") or {}
        out |= {payload[k] for k in ("appointment_id", "response_id") if isinstance(payload.get(k), str)}
    return out


def build_mixed_stream(seed: int = 7):
    """1,000 inbound records with a known outcome, computed here and not by intake's code."""
    rnd = random.Random(seed)
    ehr = Ehr(source="ehr-north")
    records: list[tuple[bytes | None, bytes]] = []
    expect = Counter()
    mrns: set[str] = set()
    clinics = ["north-01", "north-02", "south-01"]
    for c in range(60):
        clinic, mrn = clinics[c % 3], f"MRN{rnd.randrange(10**8):08d}X{c}"
        mrns.add(mrn)
        events = []
        start = BASE + timedelta(days=c)
        if c % 4 != 0:  # a quarter of the clients arrive with no referral
            events.append(ehr.referred(clinic, mrn, start))
        for s in range(3):
            when = start + timedelta(days=7 * (s + 1))
            appt = f"a-{c}-{s}"
            events.append(ehr.scheduled(clinic, mrn, when, appt))
            events.append(ehr.attended(clinic, mrn, when, appt))
            events.append(
                ehr.questionnaire(
                    clinic, mrn, when + timedelta(hours=1), f"r-{c}-{s}", "WAI-SR", WAI, appt=appt
                )
            )
        episodes = 1
        if c % 5 == 0:  # closed, then referred again weeks later: a second episode
            end = start + timedelta(days=30)
            events.append(ehr.closed(clinic, mrn, end, "planned"))
            events.append(ehr.referred(clinic, mrn, end + timedelta(days=20)))
            episodes = 2
        if c % 6 == 0:  # out of order: this client's events arrive newest first
            events.reverse()
        expect["episodes"] += episodes
        for env in events:
            records.append((key_of(env), encode(env)))
            kind = "responses" if env["event_type"] == "questionnaire.completed" else "care"
            expect[kind] += 1
        expect["valid"] += len(events)
    valid = list(ehr.sent)
    # Duplicates: re-sent copies of earlier events (same source and event_id).
    for env in rnd.sample(valid, 100):
        records.append((key_of(env), encode(env)))
    expect["duplicates"] = 100
    # Poison: every dead-letter code.
    bad: list[tuple[str, bytes]] = []
    for i in range(20):
        bad.append(("invalid_json", b'{"event_id": "x' + str(i).encode()))
        bad.append(("not_an_object", json.dumps([i, "x"]).encode()))
        wrong = dict(valid[i], event_id=f"bad-type-{i}", event_type="client.teleported")
        bad.append(("unknown_event_type", encode(wrong)))
        v2 = dict(valid[i], event_id=f"bad-ver-{i}", schema_version=2)
        bad.append(("unsupported_version", encode(v2)))
    for i in range(30):
        q = ehr.questionnaire("north-01", f"MRNBAD{i}", BASE, f"bad-{i}", "WAI-SR", [*WAI[:3], 7, *WAI[4:]])
        ehr.sent.pop()
        bad.append(("schema_violation", encode(q)))
    for i in range(10):
        big = dict(valid[i], event_id=f"big-{i}", padding="x" * 70_000)
        bad.append(("too_large", encode(big)))
    filler = 1000 - len(records) - len(bad)
    assert filler >= 0
    for i in range(filler):  # top up with more dead letters to reach exactly 1,000
        bad.append(("invalid_json", b"\xff\xfe not utf-8 " + str(i).encode()))
    rnd.shuffle(bad)
    # Interleave poison between the valid records without disturbing any client's own order.
    for code, value in bad:
        records.insert(rnd.randrange(len(records) + 1), (None, value))
        expect["dlq:" + code] += 1
    assert len(records) == 1000
    return records, expect, mrns


async def test_thousand_mixed_events_exact_counts_and_no_phi(namespace, mongo) -> None:
    records, expect, mrns = build_mixed_stream()
    bootstrap = namespace.settings.kafka_bootstrap_servers
    intake = ServiceProcess("intake", namespace.env, namespace.logs / "intake.log").start()
    try:
        intake.wait_ready()
        await produce(bootstrap, namespace.topic(Topics.EHR_EVENTS), records)
        await wait_drained(
            namespace.settings,
            namespace.settings.group("attune-intake"),
            [namespace.topic(Topics.EHR_EVENTS)],
        )
    finally:
        assert intake.stop() == 0, intake.tail()

    canonical = await read_all(bootstrap, namespace.topic(Topics.CARE))
    # One canonical stream: care events and questionnaire responses, each client's in order.
    responses = [r for r in canonical if json.loads(r.value)["event_type"] == "response.submitted"]
    care = [r for r in canonical if json.loads(r.value)["event_type"] != "response.submitted"]
    dlq = await read_all(bootstrap, namespace.topic(Topics.EHR_DLQ))
    care_types = Counter(json.loads(r.value)["event_type"] for r in care)
    assert care_types["episode.opened"] == expect["episodes"]
    assert len(care) == expect["care"] + expect["episodes"]
    assert len(responses) == expect["responses"]
    codes = Counter(json.loads(r.value)["error"]["code"] for r in dlq)
    assert codes == Counter({k[4:]: v for k, v in expect.items() if k.startswith("dlq:")})
    # Every dead letter names its field where the contract asks for it.
    for r in dlq:
        letter = json.loads(r.value)
        if letter["error"]["code"] == "schema_violation":
            assert "payload.items[3]" in letter["error"]["message"]
            assert "7" in letter["error"]["message"]
    db = mongo[namespace.db("intake")]
    assert await db["receipts"].count_documents({}) == expect["valid"]
    assert await db["dead_letters"].count_documents({}) == sum(codes.values())

    # Not one MRN in the output topics, the keys, intake's logs, or any other database.
    out_text = b"".join((r.key or b"") + r.value for r in [*care, *responses]).decode()
    log_text = intake.log_path.read_text()
    leaked = [m for m in mrns if m in out_text or m in log_text]
    assert leaked == []
    # Nor any identifier the EHR made (contract section 6): each leaves intake only as its pseudonym.
    raw_ids = _raw_ids(records)
    assert len(raw_ids) > 1000
    out_docs = [json.loads(r.value) for r in [*care, *responses]]
    assert not raw_ids & {s for d in out_docs for s in _strings(d)}
    event_ids = {i for i in raw_ids if len(i) >= 8}  # long enough to search for as text
    assert not [i for i in event_ids if i in out_text or i in log_text]
    assert not RAW_APPT_OR_RESPONSE.search(out_text) and not RAW_APPT_OR_RESPONSE.search(log_text)
    for d in out_docs:
        for name, pattern in ID_PATTERNS.items():
            assert d.get(name) is None or re.fullmatch(pattern, d[name]), (name, d.get(name))
    # Appointments still join: each response names the pseudonym its scheduled appointment carries.
    scheduled = {d["appointment_id"] for d in out_docs if d["event_type"] == "appointment.scheduled"}
    assert {d["appointment_id"] for d in out_docs if d["event_type"] == "response.submitted"} <= scheduled
    # and intake knew the start of every appointment scheduled before its response (all but the
    # clients whose events arrive newest first, c % 6 == 0: three responses each for the other 50).
    started = [d for d in out_docs if d["event_type"] == "response.submitted" and d["appointment_start"]]
    assert len(started) == 3 * sum(1 for c in range(60) if c % 6)
    for name in await mongo.list_database_names():
        if name.startswith(namespace.prefix) and name != namespace.db("intake"):
            for coll in await mongo[name].list_collection_names():
                async for doc in mongo[name][coll].find():
                    assert not any(m in str(doc) for m in mrns)
    # intake's own state holds pseudonyms; the MRN sits in its one field, for the audited
    # re-identification door, and nowhere else (the admin-only dead letters keep raw input).
    clients = 0
    async for doc in db["clients"].find():
        clients += 1
        assert doc.pop("mrn") in mrns
        assert not any(m in str(doc) for m in mrns)
        assert not raw_ids & _strings(json.loads(json.dumps(doc, default=str)))
    assert clients == len(mrns)
    print(
        f"\n1,000-event run: care={len(care)} ({dict(care_types)}), responses={len(responses)}, "
        f"dead letters={dict(codes)}, duplicates={expect['duplicates']}, receipts={expect['valid']}"
    )


async def test_sigkill_mid_batch_then_restart_has_exactly_one_effect(namespace, mongo) -> None:
    ehr = Ehr(source="ehr-crash")
    records = []
    for c in range(300):
        mrn, clinic = f"MRNK{c:05d}", "north-01"
        when = BASE + timedelta(days=c % 30)
        for s in range(4):
            appt = f"k-{c}-{s}"
            env = ehr.attended(clinic, mrn, when + timedelta(days=7 * s), appt)
            records.append((key_of(env), encode(env)))
    bootstrap = namespace.settings.kafka_bootstrap_servers
    env = {**namespace.env, "ATTUNE_BATCH_MAX_RECORDS": "50"}
    intake = ServiceProcess("intake", env, namespace.logs / "intake.log").start()
    intake.wait_ready()
    await produce(bootstrap, namespace.topic(Topics.EHR_EVENTS), records)
    receipts = mongo[namespace.db("intake")]["receipts"]
    for _ in range(200):  # kill once some, but not all, batches are durable
        if await receipts.count_documents({}) >= 100:
            break
        await asyncio.sleep(0.05)
    killed_at = await receipts.count_documents({})
    intake.kill(signal.SIGKILL)
    assert 0 < killed_at < len(records)
    intake = ServiceProcess("intake", env, namespace.logs / "intake2.log").start()
    try:
        intake.wait_ready()
        await wait_drained(
            namespace.settings,
            namespace.settings.group("attune-intake"),
            [namespace.topic(Topics.EHR_EVENTS)],
        )
    finally:
        intake.stop()
    care = await read_all(bootstrap, namespace.topic(Topics.CARE))
    ids = Counter(
        json.loads(r.value)["source_event_id"]
        for r in care
        if json.loads(r.value)["event_type"] == "session.attended"
    )
    # Every input has its effect; a record republished after the crash carries the same event id.
    # source_event_id is the pseudonym of the EHR's event id, under the key intake runs with.
    pseudonyms = Pseudonymiser(namespace.settings.pseudonym_key)
    assert set(ids) == {pseudonyms.event(parse_envelope(encode(e))) for e in ehr.sent}
    assert len(set(ids)) == len(records)
    distinct_event_ids = {json.loads(r.value)["event_id"] for r in care}
    assert len(distinct_event_ids) == len(records) + 300  # + one episode.opened per client
    assert await receipts.count_documents({}) == len(records)
    print(
        f"\nSIGKILL after {killed_at} receipts: {len(care)} records on the care topic, "
        f"{len(distinct_event_ids)} distinct ids, {len(care) - len(distinct_event_ids)} republished copies"
    )


@pytest.mark.parametrize("unused", [None])
def test_stream_builder_is_exact(unused) -> None:
    records, expect, _ = build_mixed_stream()
    assert len(records) == 1000 and expect["duplicates"] == 100
