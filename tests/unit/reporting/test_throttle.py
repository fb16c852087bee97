"""While behind, the materializer pauses in proportion to its last run; a batch that leaves nothing waiting never waits."""

from __future__ import annotations

import asyncio
import time

import pytest

import attune_reporting.materializer as materializer_module
from attune_reporting.materializer import Materializer
from attune_reporting.pipeline import ReportingPipeline
from attune_reporting.settings import ReportingSettings


def _pipeline(**overrides: float) -> ReportingPipeline:
    settings = ReportingSettings(**overrides)  # type: ignore[arg-type]
    return ReportingPipeline(settings, active=None, materializer=Materializer(settings))  # type: ignore[arg-type]


def test_a_drained_batch_materializes_unless_the_last_run_asks_for_a_pause_then_the_sweep_runs_it() -> None:
    # A steady trickle: every batch is small and leaves nothing waiting. Recomputing after each one
    # took most of the service's time, and its lag grew for as long as the trickle lasted.
    p = _pipeline(attune_reporting_backlog_materialize_s=600, attune_reporting_backlog_materialize_share=0.25)
    small, m = p.settings.attune_batch_max_records - 1, p.materializer
    assert p._materialize_now(small)  # never ran; the 600 s floor is for backlogs only
    assert not m._wanted.is_set()
    m.ended, m.took = time.monotonic() - 0.5, 1.0  # a 1 s run earns a 3 s pause
    assert not p._materialize_now(small)
    assert m._wanted.is_set()  # the sweep runs it when the pause is over
    m.ended = time.monotonic() - 3.5
    assert p._materialize_now(small)


async def test_the_sweep_runs_a_wanted_run_when_the_pause_is_over_not_at_its_next_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m = Materializer(ReportingSettings(attune_reporting_sweep_interval_s=3600))
    runs: list[float] = []
    second = asyncio.Event()

    class Store:
        async def pending(self) -> bool:
            return True

    async def run(store: object, progress: object = None) -> None:
        runs.append(time.monotonic())
        m.ended, m.took = time.monotonic(), 0.0
        if len(runs) == 2:
            second.set()

    async def stores() -> Store:
        return Store()

    async def no_gauges(store: object) -> None:
        pass

    monkeypatch.setattr(m, "run", run)
    monkeypatch.setattr(materializer_module, "refresh_gauges", no_gauges)
    sweep = asyncio.create_task(m.sweep_forever(stores))
    try:
        await asyncio.sleep(0.05)
        assert len(runs) == 1  # the sweep's first pass
        m.ended, m.took = time.monotonic(), 0.1  # just ran for 0.1 s: 0.3 s of pause (share 1/4)
        pause_over = m.ended + 0.3
        m.want()
        await asyncio.wait_for(second.wait(), 10)  # the sweep's interval is an hour
        assert runs[1] >= pause_over - 0.01  # not before the pause is over
    finally:
        sweep.cancel()


def test_full_batches_wait_the_floor_then_a_multiple_of_the_last_run() -> None:
    p = _pipeline(attune_reporting_backlog_materialize_s=2, attune_reporting_backlog_materialize_share=0.25)
    full = p.settings.attune_batch_max_records
    m = p.materializer
    assert p._materialize_now(full)  # never ran
    m.ended, m.took = time.monotonic() - 1.0, 0.1
    assert not p._materialize_now(full)  # inside the 2 s floor
    m.ended = time.monotonic() - 2.5
    assert p._materialize_now(full)  # past the floor; 3 x 0.1 s is shorter
    m.ended, m.took = time.monotonic() - 2.5, 4.0
    assert not p._materialize_now(full)  # a 4 s run earns a 12 s pause (share 1/4)
    m.ended = time.monotonic() - 12.5
    assert p._materialize_now(full)


def test_the_pause_is_capped_and_the_sweep_keeps_to_it() -> None:
    m = Materializer(ReportingSettings(attune_reporting_backlog_materialize_share=0.1))
    assert m.rested()
    m.ended, m.took = time.monotonic() - 61.0, 600.0  # a long recovery run: 9 x 600 s, capped at 60 s
    assert m.rested()
    m.ended = time.monotonic() - 30.0
    assert not m.rested()


def test_a_small_batch_with_more_records_waiting_is_throttled_like_a_full_one() -> None:
    # The end of a backlog comes in small batches (the upstream services are slower): recomputing
    # the dirty cells after each of them made reporting the last service to drain.
    p = _pipeline(attune_reporting_backlog_materialize_s=2)
    small = p.settings.attune_batch_max_records - 1
    m = p.materializer
    m.ended, m.took = time.monotonic() - 1.0, 0.1
    assert not p._materialize_now(small, behind=True)
    assert p._materialize_now(small, behind=False)  # nothing waiting: up to date at once
    m.ended = time.monotonic() - 2.5
    assert p._materialize_now(small, behind=True)


def test_records_wait_when_a_partition_of_the_batch_has_a_higher_watermark() -> None:
    from aiokafka import ConsumerRecord, TopicPartition

    from attune_shared.kafka import more_waiting as waiting

    class Consumer:
        def __init__(self, marks: dict[TopicPartition, int | None]) -> None:
            self.marks = marks

        def highwater(self, tp: TopicPartition) -> int | None:
            assert tp in self.marks, "Partition is not assigned"
            return self.marks[tp]

    def rec(partition: int, offset: int) -> ConsumerRecord[bytes, bytes]:
        return ConsumerRecord("care", partition, offset, 0, 0, None, b"{}", None, 0, 2, [])

    batch = [rec(0, 7), rec(0, 8), rec(1, 3)]
    a, b = TopicPartition("care", 0), TopicPartition("care", 1)
    assert not waiting(Consumer({a: 9, b: 4}), batch)  # each partition read to its end
    assert waiting(Consumer({a: 9, b: 6}), batch)  # two more records on partition 1
    assert not waiting(Consumer({a: None, b: None}), batch)  # not known yet: nothing waiting
    assert not waiting(Consumer({a: 9}), batch)  # partition 1 revoked meanwhile
    assert waiting(Consumer({b: 5}), batch)


def test_readyz_says_the_reports_are_behind_from_a_skipped_run_until_a_later_check_covers_it() -> None:
    p = _pipeline(attune_reporting_backlog_materialize_s=2, attune_reporting_backlog_materialize_share=0.25)
    m, small, full = (
        p.materializer,
        p.settings.attune_batch_max_records - 1,
        p.settings.attune_batch_max_records,
    )
    assert m.state()["reports_pending"] is False
    m.ended, m.took = time.monotonic() - 0.5, 1.0
    assert not p._materialize_now(full)  # behind, inside the pause: left for later
    assert m.state()["reports_pending"] is True
    checked = time.monotonic()
    assert not p._materialize_now(small)  # drained, still inside the pause: wanted from the sweep
    m._covered(checked)  # a run (or an empty check) that began before the second skip ...
    assert m.state()["reports_pending"] is True  # ... does not cover the first: it began earlier
    m._covered(time.monotonic())
    assert m.state()["reports_pending"] is False
