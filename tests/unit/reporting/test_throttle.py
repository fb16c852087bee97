"""While behind, the materializer pauses in proportion to its last run; a batch that is not full never waits."""

from __future__ import annotations

import time

from attune_reporting.materializer import Materializer
from attune_reporting.pipeline import ReportingPipeline
from attune_reporting.settings import ReportingSettings


def _pipeline(**overrides: float) -> ReportingPipeline:
    settings = ReportingSettings(**overrides)  # type: ignore[arg-type]
    return ReportingPipeline(settings, active=None, materializer=Materializer(settings))  # type: ignore[arg-type]


def test_a_batch_that_is_not_full_always_materializes() -> None:
    p = _pipeline(attune_reporting_backlog_materialize_s=600)
    p.materializer.ended, p.materializer.took = time.monotonic(), 30.0
    assert p._materialize_now(p.settings.attune_batch_max_records - 1)


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
