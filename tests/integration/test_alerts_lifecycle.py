"""The alerts pipeline on the real store and broker: raise/update, repair, amendment, closure, replay."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import TopicPartition

from attune_alerts.adapters.store import AlertsStore
from attune_alerts.domain.lifecycle import alert_id_for
from attune_alerts.ledger import AlertLedger
from attune_alerts.pipeline import AlertsPipeline
from attune_alerts.settings import AlertsSettings, ClinicThresholds, Contacts
from attune_alerts.sweeper import PartitionTracker, Sweeper
from attune_shared.events import AlertEvent, InternalEvent
from attune_shared.kafka import Inbound, make_broker
from attune_shared.mongo import ConcurrentUpdate
from attune_shared.topics import Topics
from tests.support.ids import rs
from tests.support.kafka_io import read_all
from tests.unit.alerts_service.builders import Client, week

SAFETY, RUPTURE, DROPOUT = "safety.phq9-item9", "alliance.rupture", "engagement.dropout-risk"


@dataclass
class Harness:
    settings: AlertsSettings
    store: AlertsStore
    pipeline: AlertsPipeline
    offset: int = 0

    async def feed(self, events: Sequence[InternalEvent]) -> Any:
        batch = []
        for ev in events:
            # Everything alerts reads arrives on the measures topic (care events forwarded by measures).
            topic = self.settings.topic(Topics.MEASURES)
            batch.append(
                Inbound(value=ev.model_dump_json().encode(), topic=topic, partition=0, offset=self.offset)
            )
            self.offset += 1
        return await self.pipeline.process(batch)

    async def events(self) -> list[AlertEvent]:
        records = await read_all(self.settings.kafka_bootstrap_servers, self.settings.topic(Topics.ALERTS))
        return [AlertEvent.model_validate_json(r.value) for r in records]

    async def alerts(self, **query: Any) -> list[dict[str, Any]]:
        return [d async for d in self.store.alerts.find(query)]


@pytest.fixture
async def harness(namespace, mongo) -> AsyncIterator[Harness]:
    settings = AlertsSettings(attune_name_prefix=namespace.prefix)
    broker = make_broker(settings)
    await broker.connect()
    store = AlertsStore(mongo[settings.database_name])
    await store.ensure_indexes()
    ledger = AlertLedger(settings, broker, store, Contacts())
    pipeline = AlertsPipeline(store=store, ledger=ledger, thresholds=ClinicThresholds(), clock="wall")
    yield Harness(settings, store, pipeline)
    await broker.stop()


def by_alert(events: Sequence[AlertEvent]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in events:
        out.setdefault(e.alert.alert_id, []).append(e.event_type)
    return out


async def test_second_trigger_updates_the_open_alert_instead_of_raising(harness: Harness) -> None:
    c = Client()
    await harness.feed([c.opened(), c.phq9("q1", item9=1, at=week(1))])
    await harness.feed([c.phq9("q2", item9=2, at=week(2))])

    events = await harness.events()
    assert [e.event_type for e in events] == ["alert.raised", "alert.updated"]
    assert len({e.alert.alert_id for e in events}) == 1
    first_event_id = next(e.event_id for e in events if e.event_type == "alert.raised")
    assert events[0].alert.alert_id == alert_id_for(c.episode, SAFETY, c.sent[1].event_id)
    updated = events[1].alert
    assert updated.status == "open" and updated.severity == "urgent"
    assert updated.evidence["trigger_count"] == 2 and updated.evidence["latest_trigger"]["item9"] == 2
    assert updated.evidence["rule_version"] == 1 and updated.evidence["thresholds_used"] == {
        "phq9_item9_min": 1
    }
    docs = await harness.alerts(rule_id=SAFETY, episode_id=c.episode)
    assert len(docs) == 1 and docs[0]["sequence"] == 2 and docs[0]["status"] == "open"
    assert first_event_id != events[1].event_id


async def test_rupture_repairs_itself_and_records_sessions_to_repair(harness: Harness) -> None:
    c = Client()
    # Baseline around 4.0, a drop to 3.0 at session 5 (strict: >= 2 SD), recovery to 4.1 at session 7.
    series = c.wai_series([4.0, 4.1, 3.9, 4.0, 3.0, 3.5, 4.1])
    await harness.feed([c.opened(), *series[:5]])
    await harness.feed(series[5:])

    events = await harness.events()
    assert [e.event_type for e in events] == ["alert.raised", "alert.resolved"]
    raised, resolved = events[0].alert, events[1].alert
    assert raised.rule_id == RUPTURE and raised.severity == "high" and raised.title.startswith("Possible")
    assert raised.evidence["criterion"] == "strict" and raised.evidence["position"] == 5
    assert raised.evidence["thresholds_used"]["repair_window_sessions"] == 3
    assert resolved.status == "resolved" and resolved.resolution == "repaired"
    repair = resolved.evidence["resolution_evidence"]
    assert repair["sessions_to_repair"] == 2 and repair["sessions_to_repair_from"] == "trough"
    assert repair["sessions_since_raised"] == 2 and repair["repair_response_id"] == rs("w7")
    # The episode's state no longer holds the alert open: a new drop raises a new alert.
    episode = await harness.store.episodes.find_one({"_id": c.episode})
    assert episode is not None and episode["open_alerts"] == []


async def test_an_amended_revision_resolves_the_alert_false_positive(harness: Harness) -> None:
    c = Client()
    series = c.wai_series([4.0, 4.1, 3.9, 4.0, 3.0])
    await harness.feed([c.opened(), *series])
    amended = c.wai("w5", [4.0, 4.1, 3.9, 4.0], 3.9, position=5, revision=2, superseded=True)
    await harness.feed([amended])

    events = await harness.events()
    assert [e.event_type for e in events] == ["alert.raised", "alert.resolved"]
    resolved = events[1].alert
    assert resolved.resolution == "false_positive"
    assert "no longer meets the rule" in resolved.evidence["resolution_evidence"]["explanation"]
    # A replay of the original revision is older than what was applied: nothing happens.
    await harness.feed([series[-1]])
    assert len(await harness.events()) == 2


async def test_episode_closure_resolves_every_open_alert_episode_ended(harness: Harness) -> None:
    c = Client()
    await harness.feed(
        [
            c.opened(),
            c.attended("a1", week(1)),
            c.phq9("q1", item9=1, at=week(1)),
            *c.wai_series([4.0, 4.1, 3.9, 4.0, 3.0])[0:5],
            c.missed("a6", week(6)),
            c.missed("a7", week(7)),
        ]
    )
    open_rules = Counter(d["rule_id"] for d in await harness.alerts(status="open"))
    assert open_rules == Counter({SAFETY: 1, RUPTURE: 1, DROPOUT: 1})

    await harness.feed([c.closed(week(8))])
    events = await harness.events()
    resolved = [e.alert for e in events if e.event_type == "alert.resolved"]
    assert sorted(a.rule_id for a in resolved) == sorted([SAFETY, RUPTURE, DROPOUT])
    assert {a.resolution for a in resolved} == {"episode_ended"}
    rupture = next(a for a in resolved if a.rule_id == RUPTURE)
    assert rupture.evidence["resolution_evidence"]["unrepaired"] is True
    assert await harness.alerts(status={"$ne": "resolved"}) == []
    # The dropout alert was raised high: a rupture alert was open for the episode at the time.
    dropout = next(a for a in resolved if a.rule_id == DROPOUT)
    assert dropout.severity == "high"


async def test_replaying_the_same_input_produces_no_new_alert_or_event_ids(
    harness: Harness, monkeypatch
) -> None:
    c = Client()
    batch = [
        c.opened(),
        c.phq9("q1", item9=1, at=week(1)),
        *c.wai_series([4.0, 4.1, 3.9, 4.0, 3.0, 3.5, 4.1]),
        c.missed("a8", week(8)),
        c.missed("a9", week(9)),
    ]
    first = await harness.feed(batch)
    assert first.changes["alert.raised"] == 3
    events = await harness.events()
    ids = {e.event_id for e in events}
    alert_ids = {d["_id"] for d in await harness.alerts()}

    # 1. The same records consumed again (a redelivery after a crash before the commit).
    again = await harness.feed(batch)
    assert sum(again.changes.values()) == 0
    assert {e.event_id for e in await harness.events()} == ids
    assert {d["_id"] for d in await harness.alerts()} == alert_ids

    # 2. A crash after publishing, before the episode states were written: the retry re-derives the
    #    same changes, finds them recorded and publishes the same event ids.
    c2 = Client(mrn="MRN-2", episode="ep_2")
    batch2 = [
        c2.opened(),
        c2.phq9("p1", item9=3, at=week(1)),
        c2.missed("b1", week(2)),
        c2.missed("b2", week(3)),
    ]
    save = harness.store.save_episodes
    calls = {"n": 0}

    async def crash_once(*, rows):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConcurrentUpdate("simulated crash before the state write")
        await save(rows=rows)

    monkeypatch.setattr(harness.store, "save_episodes", crash_once)
    with pytest.raises(ConcurrentUpdate):
        await harness.feed(batch2)
    after_crash = await harness.events()
    retried = await harness.feed(batch2)
    assert sum(retried.changes.values()) == 0 and retried.reused == 2
    final = await harness.events()
    new_ids = {e.event_id for e in final} - ids
    assert {e.event_id for e in after_crash} - ids == new_ids  # nothing new after the crash
    assert len(new_ids) == 2  # raised safety + raised dropout for ep_2
    counts = Counter(e.event_id for e in final)
    assert all(n == 1 for n in counts.values()), "published changes are not published again"
    # Each alert's events carry consecutive sequence numbers: no gaps, no duplicates.
    docs = {d["_id"]: d async for d in harness.store.changes.find({})}
    per_alert: dict[str, list[int]] = {}
    for d in docs.values():
        per_alert.setdefault(d["alert_id"], []).append(d["seq"])
    assert all(sorted(s) == list(range(1, len(s) + 1)) for s in per_alert.values())
    assert json.loads(next(iter(docs.values()))["body"])["event_id"]


async def test_inactivity_sweep_on_the_event_clock_raises_once_and_re_engagement_resolves(
    namespace, mongo
) -> None:
    settings = AlertsSettings(attune_name_prefix=namespace.prefix, attune_alerts_clock="event")
    broker = make_broker(settings)
    await broker.connect()
    try:
        store = AlertsStore(mongo[settings.database_name])
        await store.ensure_indexes()
        ledger = AlertLedger(settings, broker, store, Contacts())
        pipeline = AlertsPipeline(store=store, ledger=ledger, thresholds=ClinicThresholds(), clock="event")
        h = Harness(settings, store, pipeline)
        tracker = PartitionTracker([settings.topic(Topics.MEASURES)])
        await tracker.on_partitions_assigned([TopicPartition(settings.topic(Topics.MEASURES), 0)])
        sweeper = Sweeper(
            store=store,
            ledger=ledger,
            pipeline=pipeline,
            thresholds=ClinicThresholds(),
            lock=asyncio.Lock(),
            partitions=tracker,
            clock="event",
            interval_s=30,
            replica_id="test",
        )
        quiet, busy = Client(mrn="Q", episode="ep_quiet"), Client(mrn="B", episode="ep_busy")
        await h.feed([quiet.opened(week(0)), quiet.attended("a1", week(1)), busy.opened(week(0))])
        # Weeks pass on the clinic's clock only through the other client's events (the wall clock,
        # months after these dates, would make every episode look inactive at once).
        await h.feed([busy.attended(f"b{n}", week(n)) for n in range(1, 3)])
        assert (await sweeper.sweep_once())["inactivity_ticks"] == 0  # 7 days: not yet
        await h.feed([busy.attended("b4", week(4))])
        assert (await sweeper.sweep_once())["inactivity_ticks"] == 1  # 21 days since quiet attended
        assert (await sweeper.sweep_once())["inactivity_ticks"] == 0  # the open alert is not raised again
        raised = [e.alert for e in await h.events() if e.event_type == "alert.raised"]
        assert [(a.episode_id, a.rule_id, a.severity) for a in raised] == [(quiet.episode, DROPOUT, "normal")]
        assert (
            raised[0].evidence["trigger"] == "inactivity" and raised[0].evidence["days_since_attended"] == 21
        )

        await h.feed([quiet.attended("a5", week(5))])
        resolved = [e.alert for e in await h.events() if e.event_type == "alert.resolved"]
        assert [(a.alert_id, a.resolution) for a in resolved] == [(raised[0].alert_id, "re_engaged")]
    finally:
        await broker.stop()


async def test_a_crash_between_claiming_and_publishing_publishes_the_claimed_ids_on_retry(
    harness: Harness, monkeypatch
) -> None:
    c = Client(mrn="MRN-3", episode="ep_3")
    batch = [c.opened(), c.phq9("q1", item9=1, at=week(1)), *c.wai_series([4.0, 4.1, 3.9, 4.0, 3.0])]
    complete = harness.pipeline.ledger.complete
    calls = {"n": 0}

    async def crash_once(records, latest):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("simulated broker loss before publishing")
        await complete(records, latest)

    monkeypatch.setattr(harness.pipeline.ledger, "complete", crash_once)
    with pytest.raises(ConnectionError):
        await harness.feed(batch)
    claimed = {d["event_id"] async for d in harness.store.changes.find({})}
    assert len(claimed) == 2 and await harness.events() == []  # claimed, nothing published yet
    retried = await harness.feed(batch)
    assert retried.reused == 2 and sum(retried.changes.values()) == 0
    assert {e.event_id for e in await harness.events()} == claimed
    assert {d["_id"] async for d in harness.store.alerts.find({})} == {
        alert_id_for(c.episode, SAFETY, c.sent[1].event_id),
        alert_id_for(c.episode, RUPTURE, c.sent[-1].event_id),
    }


async def test_marks_let_new_records_skip_the_replay_lookup_and_replays_still_find_their_changes(
    harness: Harness, monkeypatch
) -> None:
    c = Client(mrn="MRN-7", episode="ep_7")
    batch = [c.opened(), c.phq9("q1", item9=1, at=week(1))]
    looked_up: list[set[str]] = []
    lookup = harness.store.records_for_origins

    async def spy(*, origin_event_ids):  # type: ignore[no-untyped-def]
        looked_up.append(set(origin_event_ids))
        return await lookup(origin_event_ids=origin_event_ids)

    monkeypatch.setattr(harness.store, "records_for_origins", spy)
    first = await harness.feed(batch)
    assert first.changes["alert.raised"] == 1 and looked_up == []  # past every mark: nothing to look up
    key = f"{harness.settings.topic(Topics.MEASURES)}|0"
    assert (await harness.store.input_marks_coll.find_one({"_id": key}))["through"] == harness.offset - 1

    # The same offsets again (a redelivery): at or below the mark, so looked up and reused.
    harness.offset -= len(batch)
    harness.store.forget()  # as after a rebalance: the mark is read from the store
    again = await harness.feed(batch)
    assert looked_up and sum(again.changes.values()) == 0  # nothing new, nothing published twice
    assert len(await harness.events()) == 1
