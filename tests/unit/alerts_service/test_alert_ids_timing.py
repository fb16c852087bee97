"""Alert ids and alert events do not depend on timing (issue 18): the same input gives the same alert
ids and byte-identical alert events whatever the batch boundaries, wherever the inactivity sweep
ticks, and when a batch is tried again after stopping half-way.

The pipeline and the sweeper run for real over an in-memory store (the Protocols of ports.py) and a
ledger that records what it publishes; the wall clock is frozen so that event bodies compare as bytes.
"""

from __future__ import annotations

import asyncio
import copy
import random
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from attune_alerts import pipeline as pipeline_module
from attune_alerts.domain.lifecycle import StoredAlert
from attune_alerts.pipeline import AlertsPipeline
from attune_alerts.ports import ChangeRecord, Current, EpisodeRow
from attune_alerts.settings import ClinicThresholds
from attune_alerts.sweeper import PartitionTracker, Sweeper
from attune_shared.events import Alert, InternalEvent, SeriesContext
from attune_shared.kafka import Inbound
from attune_shared.mongo import ConcurrentUpdate
from tests.support.ids import rs
from tests.unit.alerts_service.builders import T0, Client, encode, week

TOPIC = "clinic.measures.v1"
FROZEN = T0 + timedelta(days=400)  # the wall clock, frozen: raised_at and occurred_at of every change
CET = timezone(timedelta(hours=1))  # the EHR sends local times with their offset


def _read_back(s: StoredAlert) -> StoredAlert:
    """An alert as the store gives it back: BSON dates are UTC, to the millisecond."""
    data = s.alert.model_dump()
    for k, v in data.items():
        if isinstance(v, datetime):
            v = v.astimezone(UTC)
            data[k] = v.replace(microsecond=v.microsecond // 1000 * 1000)
    return replace(s, alert=Alert.model_validate(data))


class MemoryAlerts:
    """alerts' ConsumerStore and SweepStore in memory, with the stored store's semantics: versioned
    episodes, change records unique by `<alert_id>:<sequence>` and by cause, forward-only clocks."""

    def __init__(self) -> None:
        self.episodes: dict[str, EpisodeRow] = {}
        self.records: dict[str, ChangeRecord] = {}
        self.projected: dict[str, StoredAlert] = {}
        self.clocks: dict[str, datetime] = {}
        self.marks: dict[str, int] = {}
        self.fail_next_save = False

    # ConsumerStore
    def forget(self) -> None:
        pass

    async def load_episodes(self, *, episode_ids: Iterable[str]) -> dict[str, EpisodeRow]:
        return {e: copy.deepcopy(self.episodes[e]) for e in set(episode_ids) if e in self.episodes}

    async def save_episodes(self, *, rows: Sequence[EpisodeRow]) -> None:
        if self.fail_next_save:  # the process stops (or the store goes away) before episodes are saved
            self.fail_next_save = False
            raise RuntimeError("stopped before the episodes were saved")
        for row in rows:
            known = self.episodes.get(row.ctx.episode_id)
            if (known.version if known else 0) != row.version:
                raise ConcurrentUpdate(row.ctx.episode_id)
        for row in rows:
            self.episodes[row.ctx.episode_id] = replace(
                copy.deepcopy(row), version=row.version + 1, dirty=False
            )

    async def event_clocks(self, *, keys: Iterable[str]) -> dict[str, datetime]:
        return {k: self.clocks[k] for k in keys if k in self.clocks}

    async def input_marks(self, *, keys: Iterable[str]) -> dict[str, int]:
        return {k: self.marks[k] for k in keys if k in self.marks}

    async def advance_marks(self, *, through: Mapping[str, int]) -> None:
        for k, v in through.items():
            self.marks[k] = max(self.marks.get(k, -1), v)

    async def advance_clocks(self, *, newest: Mapping[str, datetime]) -> None:
        for k, v in newest.items():
            self.clocks[k] = max(self.clocks.get(k, v), v)

    async def records_for_origins(self, *, origin_event_ids: Iterable[str]) -> dict[str, ChangeRecord]:
        ids = set(origin_event_ids)
        return {r.cause_key: r for r in self.records.values() if r.origin_event_id in ids}

    async def current(self, *, alert_ids: Iterable[str]) -> dict[str, Current]:
        out: dict[str, Current] = {}
        for aid in set(alert_ids):
            mine = [r for r in self.records.values() if r.stored.alert_id == aid]
            newest = max(mine, key=lambda r: r.stored.sequence, default=None)
            shown = self.projected.get(aid)
            if newest is not None and (shown is None or shown.sequence < newest.stored.sequence):
                out[aid] = Current(newest.stored, newest)
            elif shown is not None:
                out[aid] = Current(shown)
        return out

    async def claim_changes(self, *, records: Sequence[ChangeRecord]) -> None:
        causes = {r.cause_key for r in self.records.values()}
        if any(r.record_id in self.records or r.cause_key in causes for r in records):
            raise ConcurrentUpdate("alert change(s) taken")
        self.records.update({r.record_id: r for r in records})

    # SweepStore (what the inactivity sweep uses)
    async def unacknowledged(self) -> list[StoredAlert]:
        return []

    async def count_unresolved(self) -> dict[str, int]:
        return {}

    async def inactivity_candidates(
        self, *, partitions: Iterable[int], due: Callable[[str, datetime], bool] | None = None
    ) -> list[EpisodeRow]:
        return [
            copy.deepcopy(r)
            for r in self.episodes.values()
            if r.state.episode_open
            and r.state.last_attended_at is not None
            and "engagement.dropout-risk" not in r.open_alert_ids
        ]

    async def newest_event_time(self) -> datetime | None:
        return max(self.clocks.values(), default=None)


class RecordingLedger:
    """The ledger's part the pipeline uses: publishes (records the bodies), marks published, projects."""

    def __init__(self, store: MemoryAlerts) -> None:
        self.store = store
        self.published: list[str] = []

    def is_stale(self, record: ChangeRecord) -> bool:
        return False

    async def complete(self, records: Sequence[ChangeRecord], latest: Iterable[StoredAlert]) -> None:
        for r in records:
            if not r.published:
                self.published.append(r.body)
                self.store.records[r.record_id] = replace(r, published=True)
        for s in latest:
            shown = self.store.projected.get(s.alert_id)
            if shown is None or shown.sequence < s.sequence:
                self.store.projected[s.alert_id] = _read_back(s)


def _world() -> list[InternalEvent]:
    """Four clients, one stream in EHR order: inactivity found by the sweep or by the next event,
    consecutive misses, re-engagement and closure, interleaved across clients."""
    a = Client(mrn="MRN-A", episode="ep_a")  # attends, then goes quiet: inactivity, later re-engages
    b = Client(mrn="MRN-B", episode="ep_b")  # two misses after attending: dropout by misses
    c = Client(mrn="MRN-C", episode="ep_c")  # attends, goes quiet for good (only a sweep can see it)
    d = Client(mrn="MRN-D", episode="ep_d")  # attends, a miss, a late-ish miss after the deadline
    events: list[InternalEvent] = [a.opened(T0), b.opened(T0), c.opened(T0), d.opened(T0)]
    events += [a.attended("a1", week(1)), b.attended("b1", week(1)), c.attended("c1", week(1))]
    events += [d.attended("d1", week(1.2).astimezone(CET))]
    events += [b.missed("b2", week(2).astimezone(CET)), d.missed("d2", week(2.5))]
    events += [b.missed("b3", week(3).astimezone(CET))]
    events += [d.missed("d3", week(4.5))]  # 23.1 days after d's last attended session
    events += [a.attended("a2", week(5)), b.attended("b4", week(5.5).astimezone(CET))]
    events += [c.attended("c2", week(6)), b.closed(week(7))]
    return sorted(events, key=lambda e: e.occurred_at)


def _records(events: Sequence[InternalEvent]) -> list[Inbound]:
    out = []
    for offset, e in enumerate(events):
        key, value = encode(e)
        out.append(Inbound(value=value, topic=TOPIC, key=key, partition=0, offset=offset))
    return out


def _system() -> tuple[MemoryAlerts, RecordingLedger, AlertsPipeline, Sweeper]:
    store = MemoryAlerts()
    ledger = RecordingLedger(store)
    pipe = AlertsPipeline(
        store=store,
        ledger=ledger,  # type: ignore[arg-type]
        thresholds=ClinicThresholds(),
        clock="event",
    )
    partitions = PartitionTracker([TOPIC])
    partitions.assigned = {(TOPIC, 0)}
    sweeper = Sweeper(
        store=store,
        ledger=ledger,  # type: ignore[arg-type]
        pipeline=pipe,
        thresholds=ClinicThresholds(),
        lock=asyncio.Lock(),
        partitions=partitions,
        clock="event",
        interval_s=1,
        replica_id="r-1",
    )
    return store, ledger, pipe, sweeper


async def _drive(records: Sequence[Inbound], cuts: Sequence[int], sweep_at: set[int]) -> list[str]:
    """Process the records in batches ending at `cuts`; after batch i in `sweep_at`, sweep (everything
    published so far has been processed there, as the sweep's drained check demands). The events
    published, sorted: their order across clients is timing, each alert's own order is its sequence."""
    _, ledger, pipe, sweeper = _system()
    start = 0
    for i, end in enumerate([*cuts, len(records)]):
        if end > start:
            await pipe.process(records[start:end])
        start = max(start, end)
        if i in sweep_at:
            await sweeper.inactivity()
    await sweeper.inactivity()  # the sweep after everything drained
    return sorted(ledger.published)


@pytest.fixture(autouse=True)
def frozen_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline_module, "now_ms", lambda: FROZEN)


async def test_same_alert_ids_and_events_whatever_the_batches_and_the_sweep_ticks() -> None:
    records = _records(_world())
    one_batch = await _drive(records, [], set())
    assert one_batch, "the scenario raises alerts"
    rules = {e.split('"rule_id":"')[1].split('"')[0] for e in one_batch}
    assert {"engagement.dropout-risk"} == rules
    per_record = await _drive(records, list(range(1, len(records))), set())
    swept_each = await _drive(records, list(range(1, len(records))), set(range(len(records))))
    assert per_record == one_batch
    assert swept_each == one_batch
    rng = random.Random(18)
    for _ in range(12):
        cuts = sorted(rng.sample(range(1, len(records)), rng.randint(1, len(records) - 1)))
        sweeps = {i for i in range(len(cuts) + 1) if rng.random() < 0.5}
        assert await _drive(records, cuts, sweeps) == one_batch, (cuts, sweeps)


async def test_a_batch_stopped_after_claiming_a_derived_tick_completes_with_the_same_ids() -> None:
    """An event 21+ days after the last session raises, in the stream, what the sweep would have; a
    batch stopped after claiming that change and before saving its episodes is tried again and
    re-publishes the same events (before, the tick's change was not looked up: its sequence was
    found taken on every attempt and the partition stalled)."""
    records = _records(_world())
    clean = await _drive(records, [], set())
    store, ledger, pipe, _ = _system()
    store.fail_next_save = True
    with pytest.raises(RuntimeError):
        await pipe.process(records)
    for _attempt in range(3):  # as the subscriber does: the same batch again until it goes through
        try:
            await pipe.process(records)
            break
        except ConcurrentUpdate:
            continue
    else:
        pytest.fail("the batch conflicted on every attempt")
    assert sorted(set(ledger.published)) == clean


async def test_the_sweep_judges_with_the_event_clock_read_before_the_drained_check() -> None:
    """Records processed while the sweep checks that the pipeline is drained must not move the clock it
    judges by: other clients' earlier events may still be in flight then."""
    records = _records(_world())
    store, ledger, pipe, sweeper = _system()
    c_last = week(1)  # client c attends at week 1; its next event (week 6) is still in flight
    first = [r for r in records if (parse := pipeline_module.parse(r)) and parse.occurred_at <= c_last]
    await pipe.process(first)
    later = store.newest_event_time

    async def drained_while_more_was_processed() -> bool:
        # meanwhile alerts processed records published after the check began (on another partition)
        store.clocks["elsewhere"] = c_last + timedelta(days=30)
        return True

    sweeper.drained = drained_while_more_was_processed
    assert await later() == c_last
    assert await sweeper.inactivity() == 0
    assert not any("inactivity" in body for body in ledger.published)


SRS_CONCERN = {"total": 33.0, "alliance_concern": True, "item_concern": False}
SRS_CALM = {"total": 39.0, "alliance_concern": False, "item_concern": False}


def _srs(c: Client, scores: Mapping[str, object], *, revision: int = 1) -> InternalEvent:
    """Session 4's SRS (no series statistics yet), filled in an hour after the session's WAI-SR."""
    m = c.measure(
        "s4",
        "SRS",
        dict(scores),
        at=week(4),
        revision=revision,
        status="amended" if revision > 1 else "completed",
        appointment_id="a4",
    )
    return m.model_copy(update={"occurred_at": week(4) + timedelta(hours=2)})


def _lenient_pair(srs_first: bool) -> list[InternalEvent]:
    """One client whose session-4 WAI-SR drops 1.5 SD (lenient, not strict) and whose session-4 SRS
    shows concern: a lenient rupture, raised by whichever of the two the rules see second."""
    c = Client(mrn="MRN-R", episode="ep_r")
    *history, w4 = c.wai_series([4.0, 4.2, 3.8, 3.55])
    srs = _srs(c, SRS_CONCERN)
    return [c.opened(T0), *history, *([srs, w4] if srs_first else [w4, srs])]


def _rupture_ids(published: Sequence[str]) -> list[str]:
    return sorted(
        {body.split('"alert_id":"')[1].split('"')[0] for body in published if "alliance.rupture" in body}
    )


@pytest.mark.parametrize("srs_first", [False, True])
async def test_a_lenient_rupture_has_the_same_id_and_events_whichever_of_its_responses_comes_second(
    srs_first: bool,
) -> None:
    """measures orders a batch's events (SRS before WAI-SR) but emits across batches in arrival order,
    so a batch boundary between a session's WAI-SR and its SRS decides which alerts sees second. The
    alert (its id, its events' ids and bytes, `triggered_at` included) must not depend on it."""
    reference = await _drive(_records(_lenient_pair(srs_first=False)), [], set())
    assert len(_rupture_ids(reference)) == 1, "the scenario raises one lenient rupture"
    assert '"criterion":"lenient"' in reference[0] or any('"criterion":"lenient"' in e for e in reference)
    records = _records(_lenient_pair(srs_first))
    n = len(records)
    for cuts in ([], list(range(1, n)), [n - 1]):  # one batch, one record per batch, the pair split
        assert await _drive(records, cuts, set()) == reference, (srs_first, cuts)


@pytest.mark.parametrize("srs_first", [False, True])
async def test_a_lenient_rupture_withdrawn_by_amendments_and_raised_again_is_a_new_alert(
    srs_first: bool,
) -> None:
    """Amendments withdraw the rupture (false_positive), later revisions raise it again for the same
    two responses: a new alert with its own id (the same one whatever the order of the first pair),
    never the withdrawn alert's id again (its first event's id would be taken: the batch would
    conflict on every attempt)."""
    events = _lenient_pair(srs_first)
    c = Client(mrn="MRN-R", episode="ep_r", counter=100)
    events += [c.wai("w4", [4.0, 4.2, 3.8], 4.0, position=4, revision=2)]  # no drop: w4 leaves the triggers
    events += [_srs(c, SRS_CALM, revision=2)]  # no concern: nothing supports the alert, withdrawn
    events += [_srs(c, SRS_CONCERN, revision=3), c.wai("w4", [4.0, 4.2, 3.8], 3.55, position=4, revision=3)]
    records = _records(events)
    published = await _drive(records, list(range(1, len(records))), set())
    ids = _rupture_ids(published)
    assert len(ids) == 2, published
    kinds = sorted(body.split('"event_type":"')[1].split('"')[0] for body in published)
    assert kinds.count("alert.raised") == 2 and '"resolution":"false_positive"' in "".join(published)
    other = _lenient_pair(not srs_first)
    other_ids = _rupture_ids(await _drive(_records(other), [], set()))
    assert other_ids[0] in ids


def _srs_series(c: Client, scores: Sequence[float]) -> list[InternalEvent]:
    """Client-rated SRS totals at weekly sessions 1..n with the series statistics measures computes
    (concern below 36), each filled in an hour after the session's WAI-SR."""
    out: list[InternalEvent] = []
    for i, score in enumerate(scores):
        earlier, mu, sd_eff, drop = scores[:i], None, None, None
        recent = list(earlier[-5:])
        if len(earlier) >= 3:
            mu = statistics.fmean(recent)
            sd_eff = max(statistics.stdev(recent), 2.0)
            drop = (mu - score) / sd_eff
        series = SeriesContext(
            series_key=f"{c.episode}:SRS",
            score=score,
            position=i + 1,
            earlier_count=len(earlier),
            earlier_response_ids=[rs(f"s{j + 1}") for j in range(len(earlier))],
            mu=mu,
            sd_within=None if mu is None else statistics.stdev(recent),
            sd_eff=sd_eff,
            drop=drop,
        )
        scores_i = {"total": score, "alliance_concern": score < 36, "item_concern": False}
        m = c.measure(f"s{i + 1}", "SRS", scores_i, at=week(i + 1), series=series, appointment_id=f"a{i + 1}")
        out.append(m.model_copy(update={"occurred_at": week(i + 1) + timedelta(hours=2)}))
    return out


@pytest.mark.parametrize("srs_first", [False, True])
async def test_a_rupture_on_the_srs_itself_completing_a_lenient_wai_sr_has_the_same_events_in_both_orders(
    srs_first: bool,
) -> None:
    """The session's SRS drops 1.8 SD with concern (a lenient rupture of its own) and its WAI-SR 1.5 SD
    (lenient with that SRS): SRS first raises on the SRS and the WAI-SR updates; WAI-SR first, the SRS
    raises and completes the waiting WAI-SR in one input. Both must publish the same two events (the
    second trigger is not folded into the raise)."""
    c = Client(mrn="MRN-S", episode="ep_s")
    *wai_history, w4 = c.wai_series([4.0, 4.2, 3.8, 3.55])
    *srs_history, s4 = _srs_series(c, [38.0, 40.0, 38.0, 35.0])
    events = [c.opened(T0), *wai_history, *srs_history, *([s4, w4] if srs_first else [w4, s4])]
    records = _records(events)
    published = await _drive(records, [len(records) - 1], set())
    assert len(_rupture_ids(published)) == 1
    assert sorted(body.split('"event_type":"')[1].split('"')[0] for body in published) == [
        "alert.raised",
        "alert.updated",
    ]
    assert await _drive(records, [], set()) == published
    other = [*events[:-2], *events[-2:][::-1]]
    assert await _drive(_records(other), [len(records) - 1], set()) == published
