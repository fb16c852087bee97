"""The batch pipeline with an in-memory store and broker: order of effects, crash replay, dead letters."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from attune_measures.pipeline import MeasuresPipeline
from attune_measures.settings import MeasuresSettings
from attune_shared.kafka import Inbound
from tests.support.fakes import Crash, MemoryResponses
from tests.support.ids import rs
from tests.unit.measures_service.builders import CLIENT, session, srs, submitted, version

SETTINGS = MeasuresSettings(attune_name_prefix="u_")
TOPIC = "u_clinic.care.v1"
TOPIC_OUT = "u_clinic.measures.v1"


class MemoryBroker:
    def __init__(self, log: list[str]) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.log = log

    async def publish(
        self, value: bytes, topic: str, *, key: bytes | None = None, no_confirm: bool = False
    ) -> Any:
        self.sent.append((topic, key, value))
        self.log.append(f"publish:{topic}")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    def events(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(v) for t, _, v in self.sent if t == topic]


def records(values: list[bytes | None]) -> list[Inbound]:
    return [
        Inbound(value=v, key=CLIENT.encode(), topic=TOPIC, partition=0, offset=i, timestamp_ms=None)
        for i, v in enumerate(values)
    ]


def make() -> tuple[MeasuresPipeline, MemoryBroker, MemoryResponses, list[str]]:
    log: list[str] = []
    broker, store = MemoryBroker(log), MemoryResponses(log)
    return MeasuresPipeline(SETTINGS, broker, store), broker, store, log  # type: ignore[arg-type]


def encoded(*versions: Any) -> list[bytes | None]:
    return [submitted(v).model_dump_json().encode() for v in versions]


async def test_poison_is_dead_lettered_and_the_rest_is_scored() -> None:
    pipeline, broker, store, log = make()
    values = [b"not json {", *encoded(srs("s1", 36, 0), srs("s2", 37, 1)), b"[1]", None]
    result = await pipeline.process(records(values))
    assert [d.error.code for d in result.dead] == ["invalid_json", "not_an_object", "invalid_json"]
    dlq = broker.events("u_clinic.measures.dlq.v1")
    assert [d["raw"] for d in dlq] == ["not json {", "[1]", ""]
    assert [d["origin"]["offset"] for d in dlq] == [0, 3, 4]
    assert len(store.dead) == 3
    measures = broker.events("u_clinic.measures.v1")
    assert [(m["response_id"], m["revision"]) for m in measures] == [(rs("s1"), 1), (rs("s2"), 1)]
    assert len(store.docs) == 2
    # Broker acks before the store write; one store read for the whole batch.
    assert log.index("save") > max(i for i, x in enumerate(log) if x.startswith("publish"))
    assert store.loads == 1


async def test_a_crash_mid_write_replays_the_same_ids_and_then_nothing() -> None:
    pipeline, broker, store, _ = make()
    await pipeline.process(
        records(encoded(srs("s0", 36, 0), srs("s1", 37, 1), srs("s3", 28, 3), srs("s4", 33, 4)))
    )
    batch = records(encoded(srs("s2", 38, 2), srs("s4", 35, 4, status="amended", occurred=session(9))))
    store.fail_saves = 1
    broker.sent.clear()
    with pytest.raises(Crash):
        await pipeline.process(batch)
    first = broker.events("u_clinic.measures.v1")
    # Record at a time: s2 revises s3 and s4 (rev 2), then the amendment revises s4 again (rev 3).
    assert sorted((m["response_id"], m["revision"]) for m in first) == sorted(
        [(rs("s2"), 1), (rs("s3"), 2), (rs("s4"), 2), (rs("s4"), 3)]
    )
    broker.sent.clear()
    await pipeline.process(batch)  # not committed, so consumed again
    again = broker.events("u_clinic.measures.v1")
    by_id = {m["event_id"]: m for m in first}
    assert again and all(by_id[m["event_id"]] == m for m in again)
    broker.sent.clear()
    result = await pipeline.process(batch)  # a third time, after a complete write: no effect
    assert broker.sent == [] and result.verdicts == {"replay": 2}
    assert {t.response.response_id: t.revision for t, _ in store.docs.values()} == {
        rs("s0"): 1,
        rs("s1"): 1,
        rs("s2"): 1,
        rs("s3"): 2,
        rs("s4"): 3,
    }


async def test_batch_boundaries_do_not_change_what_is_published() -> None:
    stream = encoded(
        srs("s0", 36, 0),
        srs("s1", 37, 1),
        srs("s3", 28, 3),
        srs("s2", 38, 2),
        srs("s3", 39, 3, status="amended", occurred=session(8)),
        srs("s4", 35, 4),
    )
    whole, broker_whole, _, _ = make()
    await whole.process(records(stream))
    single, broker_single, _, _ = make()
    for one in stream:
        await single.process(records([one]))
    published = broker_whole.events("u_clinic.measures.v1")
    assert len(published) > len(stream)  # late and amended responses revised earlier points
    assert published == broker_single.events("u_clinic.measures.v1")


async def test_a_batch_tried_again_is_scored_with_the_models_of_its_first_attempt() -> None:
    """A refit between two attempts at one batch (a retry after a conflict) must not change what the
    batch publishes under the same event ids: the second attempt uses the first attempt's models."""
    from attune_measures.domain.trajectories import ModelBook

    class Models:
        def __init__(self) -> None:
            self.book, self.seen = ModelBook(), []

        async def covering(self, book: ModelBook, members: Any) -> ModelBook:
            self.seen.append(book)
            return book

    log: list[str] = []
    models = Models()
    pipeline = MeasuresPipeline(SETTINGS, MemoryBroker(log), MemoryResponses(log), trajectories=models)  # type: ignore[arg-type]
    batch = records(encoded(srs("s1", 36, 0), srs("s2", 37, 1)))
    first = models.book
    await pipeline.process(batch)
    models.book = ModelBook()  # a refit meanwhile
    await pipeline.process(batch)
    assert models.seen and all(b is first for b in models.seen)
    await pipeline.process(records(encoded(srs("s3", 38, 2))))  # the next batch: the new models
    assert models.seen[-1] is models.book


def wai(rid: str, level: int, day: float, **kw: Any) -> Any:
    """A client-rated WAI-SR response with every item at `level` (1..5)."""
    return version(rid, "WAI-SR", [level] * 12, day, **kw)


async def test_a_sessions_wai_sr_and_srs_are_published_in_their_arrival_order_in_any_batching() -> None:
    """Issue 18: a batch settles one version per group at a time (waves) and each group's events in
    session and instrument order, so a session's SRS came out before its WAI-SR when both were in one
    batch and after it when a batch boundary fell between them; alerts, which names an alert by the
    input that raised it, then raised the same rupture under another id. Every batching now publishes
    what record-at-a-time processing does, in the same order."""
    stream = []
    for day, (level, total) in enumerate([(5, 38), (5, 39), (4, 38), (5, 38), (2, 28), (5, 40)]):
        stream += [wai(f"w{day}", level, day), srs(f"s{day}", total, day)]
    stream.append(wai("w3", 3, 3, status="amended", occurred=session(8)))  # a group revised late
    stream.append(srs("s6", 36, 6))
    values = encoded(*stream)
    single, broker_single, _, _ = make()
    for one in values:
        await single.process(records([one]))
    expected = [(m["instrument"], m["response_id"], m["revision"]) for m in broker_single.events(TOPIC_OUT)]
    assert expected[:2] == [("WAI-SR", rs("w0"), 1), ("SRS", rs("s0"), 1)]
    for cut in range(len(values) + 1):
        split, broker_split, _, _ = make()
        for part in (values[:cut], values[cut:]):
            if part:
                await split.process(records(part))
        got = [(m["instrument"], m["response_id"], m["revision"]) for m in broker_split.events(TOPIC_OUT)]
        assert got == expected, f"cut at {cut}"
        assert broker_split.events(TOPIC_OUT) == broker_single.events(TOPIC_OUT)


async def test_an_amendment_moving_a_response_out_of_a_group_and_a_late_response_in_it_publish_as_one_at_a_time() -> (
    None
):
    """Two versions that touch one group in one batch: an amendment that moves a response to another
    episode (its old group loses a member) and a late response of the old group. Settled in one wave,
    the group was recomputed once for both, so a revision record-at-a-time processing publishes was
    never published; they now go in separate waves (review of issue 18's fix)."""
    history = encoded(srs("s0", 38, 0), srs("s1", 28, 1), srs("s2", 36, 2), srs("s3", 37, 3))
    stream = encoded(
        srs("s1", 28, 1, episode="ep_2", status="amended", occurred=session(9)),  # out of ep_1
        wai("w9", 5, 2),  # another group
        srs("s25", 33, 2.5),  # late, in ep_1
    )
    single, broker_single, _, _ = make()
    await single.process(records(history))
    for one in stream:
        await single.process(records([one]))
    for cut in range(len(stream) + 1):
        split, broker_split, _, _ = make()
        await split.process(records(history))
        for part in (stream[:cut], stream[cut:]):
            if part:
                await split.process(records(part))
        assert broker_split.events(TOPIC_OUT) == broker_single.events(TOPIC_OUT), f"cut at {cut}"
