"""alerts' batch pipeline: scored measures and care events -> rule decisions -> alert changes.

Per batch: load the affected episodes (one query), their open alerts and any changes already
recorded for this batch's inputs; apply the rules input by input; claim each alert change in
`alert_events` (see ledger.py); publish the events and wait for the acks; project the alerts and
queue deliveries; write the episode states with an optimistic version check; then the subscriber
commits. A crash or a conflict anywhere means the batch runs again: the rules see the same states
and inputs, derive the same changes, find them recorded under the same causes, and re-publish the
same event ids (never new ones). The inactivity sweep feeds "ticks" through the same path.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from attune_alerts import metrics
from attune_alerts.domain.decisions import Decision, Raise, Resolve, Update
from attune_alerts.domain.errors import AlertDomainError
from attune_alerts.domain.inputs import CareEvent as DomainCare
from attune_alerts.domain.inputs import Measure
from attune_alerts.domain.lifecycle import (
    EpisodeContext,
    StoredAlert,
    alert_event,
    as_raised,
    now_ms,
    raised,
    raised_alert_id,
    resolved_by_rule,
    updated,
)
from attune_alerts.domain.rules import on_care, on_inactivity_sweep, on_measure, on_person_resolved
from attune_alerts.domain.state import EpisodeState
from attune_alerts.domain.translate import repair_extras, to_care, to_measure, tracking_at_raise
from attune_alerts.ledger import AlertLedger, observe
from attune_alerts.ports import ChangeRecord, ConsumerStore, EpisodeRow, make_record
from attune_alerts.settings import ClinicThresholds
from attune_shared.events import CareEvent, MeasureScored, parse_internal
from attune_shared.ids import derived_id
from attune_shared.kafka import Inbound
from attune_shared.logging import get_logger
from attune_shared.mongo import ConcurrentUpdate

log = get_logger("attune_alerts.pipeline")

EVENT_TYPES = {Raise: "alert.raised", Update: "alert.updated", Resolve: "alert.resolved"}


@dataclass(frozen=True, slots=True)
class Input:
    """One thing for the rules: a measure, a care event, a context-only event, or an inactivity tick."""

    event_id: str
    ctx: EpisodeContext
    occurred_at: datetime
    partition: int | None = None
    measure: Measure | None = None
    care: DomainCare | None = None
    tick_at: datetime | None = None
    origin: tuple[str, int] | None = None  # ("topic|partition", offset) of a consumed record


def tick(row: EpisodeRow, at: datetime, due: datetime | None = None) -> Input:
    """The inactivity sweep's input for an episode; its id is fixed by the last attended session, so
    every replica and every run derives the same alert for the same stretch of inactivity."""
    last = row.state.last_attended_at
    event_id = derived_id("inactivity", row.ctx.episode_id, last.isoformat() if last else "-")
    # Judged at the moment the episode became inactive (`due`, fixed by the data), not at the sweep's
    # own time, so the alert and its severity do not depend on when a sweep happened to run.
    return Input(event_id, row.ctx, due or at, partition=row.partition, tick_at=due or at)


def parse(rec: Inbound) -> Input | None:
    """The rules' input for a record; None for records the rules do not use (counted)."""
    if rec.value is None:
        metrics.INPUTS_SKIPPED.labels("tombstone").inc()
        return None
    try:
        ev = parse_internal(rec.value)
    except ValidationError:
        # No dead-letter topic belongs to alerts; the producer's own validation makes this a bug
        # upstream, so it is logged with its position (never its content) and counted.
        metrics.INPUTS_SKIPPED.labels("invalid").inc()
        log.warning("input_invalid", topic=rec.topic, partition=rec.partition, offset=rec.offset)
        return None
    if not isinstance(ev, MeasureScored | CareEvent):
        metrics.INPUTS_SKIPPED.labels("unexpected_type").inc()
        return None
    ctx = EpisodeContext(ev.episode_id, ev.clinic_id, ev.client_ref, getattr(ev, "clinician_id", None))
    origin = (
        (f"{rec.topic}|{rec.partition}", rec.offset)
        if rec.partition is not None and rec.offset is not None
        else None
    )
    if isinstance(ev, MeasureScored):
        return Input(ev.event_id, ctx, ev.occurred_at, rec.partition, measure=to_measure(ev), origin=origin)
    return Input(ev.event_id, ctx, ev.occurred_at, rec.partition, care=to_care(ev), origin=origin)


@dataclass
class BatchResult:
    """What one batch did."""

    inputs: int = 0
    changes: Counter[str] = field(default_factory=Counter)
    reused: int = 0
    published: int = 0


class _SkippedLookup(ConcurrentUpdate):
    """A change was taken already for an input whose recorded changes were not looked up: a record
    past its mark, or an inactivity tick the batch derived itself (`also`: their ids)."""

    def __init__(self, detail: str, also: frozenset[str] = frozenset()) -> None:
        super().__init__(detail)
        self.also = also


@dataclass
class _Batch:
    """Working state of one attempt at a batch."""

    rows: dict[str, EpisodeRow]
    alerts: dict[str, StoredAlert]
    recorded: dict[str, ChangeRecord]
    clocks: dict[str, datetime]
    looked_up: set[str]  # the inputs (and derived ticks) whose recorded changes were looked up
    new: list[ChangeRecord] = field(default_factory=list)
    touched: dict[str, ChangeRecord] = field(default_factory=dict)
    skipped: bool = False  # some inputs' recorded changes were not looked up (past their marks)


class AlertsPipeline:
    """Processes batches of inputs; safe to run again on the same batch."""

    def __init__(
        self, *, store: ConsumerStore, ledger: AlertLedger, thresholds: ClinicThresholds, clock: str
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.thresholds = thresholds
        self.clock = clock
        self.careful = False  # after a conflict: look up every input's recorded changes

    async def process(self, records: Sequence[Inbound]) -> BatchResult:
        """Parse and run a consumed batch."""
        return await self.run([i for i in (parse(r) for r in records) if i is not None])

    async def run(self, inputs: Sequence[Input]) -> BatchResult:
        """Make every input's alert changes durable exactly once (see module docstring)."""
        try:
            return await self._run(inputs)
        except _SkippedLookup as exc:
            # A record past its mark was processed before all the same (an upstream duplicate under
            # a new offset), or an inactivity tick derived in the stream was (by an earlier attempt
            # at this batch that stopped before its episodes were saved): at once again, looking
            # every input and those ticks up this time.
            return await self._run(inputs, also=exc.also)

    async def _run(self, inputs: Sequence[Input], also: frozenset[str] = frozenset()) -> BatchResult:
        started = time.monotonic()
        result = BatchResult(inputs=len(inputs))
        if not inputs:
            return result
        try:
            b = await self._load(inputs, also)
        except ConcurrentUpdate:
            self._conflict()
            raise
        for inp in inputs:
            self._apply(b, inp)
        try:
            await self.store.claim_changes(records=b.new)
        except ConcurrentUpdate as exc:
            self._conflict()
            # The ticks `_inactive_before` derived are not inputs, so their changes were looked up
            # only if asked for: without this, a batch tried again after its changes were claimed
            # but before its episodes were saved would re-derive a tick's raise, find its sequence
            # taken, and conflict on every attempt (the partition stalls).
            unseen = frozenset(
                o for r in b.new if (o := r.origin_event_id) is not None and o not in b.looked_up
            )
            if b.skipped or unseen:
                raise _SkippedLookup(str(exc), unseen) from exc
            raise
        for r in b.new:
            b.touched[r.record_id] = r
        records = list(b.touched.values())
        result.published = sum(1 for r in records if not r.published)
        latest = {r.stored.alert_id: b.alerts[r.stored.alert_id] for r in records}
        await self.ledger.complete(records, latest.values())
        try:
            await self.store.save_episodes(rows=[r for r in b.rows.values() if r.dirty])
        except ConcurrentUpdate:
            self._conflict()
            raise
        if self.clock == "event" and b.clocks:
            await self.store.advance_clocks(newest=b.clocks)
        self.careful = False
        for r in b.new:
            observe(r)
            result.changes[r.event_type] += 1
        result.reused = len(records) - len(b.new)
        log.info(
            "batch_done",
            inputs=len(inputs),
            episodes=len(b.rows),
            changes=dict(result.changes),
            reused=result.reused,
            published=result.published,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return result

    def _conflict(self) -> None:
        """Someone else wrote what this batch read: forget what the store remembers, and look up
        every input's recorded changes on the next attempt."""
        self.store.forget()
        self.careful = True

    async def _maybe_seen(self, inputs: Sequence[Input]) -> set[str]:
        """Inputs that may have been processed before (their changes recorded): ticks, and records at
        or below their partition's mark. Marks are raised before any change is claimed, so a record
        past its mark is new and its lookup (a query the embedded store answers by reading every
        change) is skipped; after a conflict every input is looked up."""
        ids = {i.event_id for i in inputs}
        consumed = [i for i in inputs if i.origin is not None]
        if self.careful or not consumed:
            seen = ids
        else:
            marks = await self.store.input_marks(keys={o[0] for i in consumed if (o := i.origin)})
            seen = {
                i.event_id for i in inputs if i.origin is None or i.origin[1] <= marks.get(i.origin[0], -1)
            }
        through: dict[str, int] = {}
        for i in consumed:
            assert i.origin is not None
            key, offset = i.origin
            through[key] = max(through.get(key, -1), offset)
        await self.store.advance_marks(through=through)
        return seen

    async def _load(self, inputs: Sequence[Input], also: frozenset[str] = frozenset()) -> _Batch:
        ids = {i.event_id for i in inputs} | also
        seen = await self._maybe_seen(inputs) | also
        rows = await self.store.load_episodes(episode_ids=(i.ctx.episode_id for i in inputs))
        recorded = await self.store.records_for_origins(origin_event_ids=seen) if seen else {}
        alert_ids = {a for r in rows.values() for a in r.open_alert_ids.values()}
        alert_ids |= {r.stored.alert_id for r in recorded.values()}
        current = await self.store.current(alert_ids=alert_ids)
        clocks: dict[str, datetime] = {}
        if self.clock == "event":
            clocks = await self.store.event_clocks(keys=(i.ctx.episode_id for i in inputs))
        b = _Batch(
            rows,
            {aid: as_raised(c.stored) for aid, c in current.items()},
            recorded,
            clocks,
            seen,
            skipped=seen != ids,
        )
        for c in current.values():
            pending = c.unprojected
            if pending is None:
                continue
            if (
                not pending.published
                and pending.origin_event_id not in ids
                and not self.ledger.is_stale(pending)
            ):
                raise ConcurrentUpdate(f"alert {pending.stored.alert_id} is mid-change elsewhere")
            b.touched[pending.record_id] = pending  # ours from an earlier attempt, or abandoned: roll forward
        for row in rows.values():
            self._heal(row, b)
        return b

    def _heal(self, row: EpisodeRow, b: _Batch) -> None:
        """Forget alerts a person resolved whose episode state was not updated (a lost race)."""
        for rule_id, alert_id in list(row.open_alert_ids.items()):
            s = b.alerts.get(alert_id)
            if s is None or s.is_open or s.resolved_by == "rules":
                continue  # rules' own resolutions are re-derived by the replay that left them
            at = s.alert.resolved_at or now_ms()
            if self.clock == "event":
                at = b.clocks.get(row.ctx.episode_id, at)
            row.state = on_person_resolved(row.state, rule_id, s.alert.resolution or "addressed", at)
            del row.open_alert_ids[rule_id]
            row.dirty = True

    def _now(self, b: _Batch, inp: Input) -> datetime:
        if inp.tick_at is not None:
            return inp.tick_at
        if self.clock == "wall":
            return now_ms()
        # The event clock is the episode's own: the newest time among its events. Another client's
        # events say nothing about this one's, since partitions (and intake's batches) run at
        # different paces during a replay.
        episode = inp.ctx.episode_id
        known = b.clocks.get(episode)
        b.clocks[episode] = inp.occurred_at if known is None else max(known, inp.occurred_at)
        return b.clocks[episode]

    def _inactive_before(self, b: _Batch, row: EpisodeRow, inp: Input) -> None:
        """An event that comes N days or more after the last attended session shows the episode went
        inactive before it: raise what the sweep would have raised by then (same tick, same alert id),
        whether or not a sweep ran in between."""
        last = row.state.last_attended_at
        if last is None or not row.state.episode_open:
            return
        due = last + timedelta(days=self.thresholds.for_clinic(row.ctx.clinic_id).inactivity_days)
        if inp.occurred_at >= due:
            self._apply(b, tick(row, due, due=due))

    def _row(self, b: _Batch, inp: Input) -> EpisodeRow:
        row = b.rows.get(inp.ctx.episode_id)
        if row is None:
            row = b.rows[inp.ctx.episode_id] = EpisodeRow(ctx=inp.ctx, partition=inp.partition, dirty=True)
        if inp.ctx.clinician_id and inp.ctx.clinician_id != row.ctx.clinician_id:
            row.ctx = replace(row.ctx, clinician_id=inp.ctx.clinician_id)
            row.dirty = True
        if inp.partition is not None and row.partition != inp.partition:
            row.partition = inp.partition
            row.dirty = True
        return row

    def _apply(self, b: _Batch, inp: Input) -> None:
        row = self._row(b, inp)
        if inp.tick_at is None:
            self._inactive_before(b, row, inp)
        now = self._now(b, inp)
        th = self.thresholds.for_clinic(row.ctx.clinic_id)
        before = row.state
        try:
            if inp.measure is not None:
                state, decisions = on_measure(before, inp.measure, th, now)
            elif inp.care is not None:
                state, decisions = on_care(before, inp.care, th, now)
            elif inp.tick_at is not None:
                state, decisions = on_inactivity_sweep(before, now, th)
            else:
                return  # context only
        except AlertDomainError as exc:
            metrics.INPUTS_SKIPPED.labels("rejected_by_rules").inc()
            log.warning("input_rejected", event_id=inp.event_id, error=str(exc)[:200])
            return
        if state != before:
            row.state = state
            row.dirty = True
        per_alert: Counter[str] = Counter()
        at = now_ms()
        for d in decisions:
            self._decide(b, row, inp, d, before, per_alert, at)

    def _decide(
        self,
        b: _Batch,
        row: EpisodeRow,
        inp: Input,
        d: Decision,
        before: EpisodeState,
        per_alert: Counter[str],
        at: datetime,
    ) -> None:
        if isinstance(d, Raise):
            alert_id: str | None = raised_alert_id(row.ctx.episode_id, d, inp.event_id)
        else:
            alert_id = row.open_alert_ids.get(d.rule_id)
        if alert_id is None or (not isinstance(d, Raise) and alert_id not in b.alerts):
            log.warning("decision_without_alert", rule_id=d.rule_id, episode_id=row.ctx.episode_id)
            return
        cause = f"in:{inp.event_id}:{per_alert[alert_id]}"
        per_alert[alert_id] += 1
        done = b.recorded.get(f"{alert_id}|{cause}")
        stored: StoredAlert | None
        if done is not None:  # this change was recorded by an earlier attempt at this input
            stored = done.stored
            b.touched[done.record_id] = done
            known = b.alerts.get(alert_id)
            if known is None or known.sequence < stored.sequence:
                b.alerts[alert_id] = stored
        else:
            stored = self._change(b, row, inp, d, before, alert_id, at)
            if stored is not None:
                record = make_record(
                    stored,
                    alert_event(stored, EVENT_TYPES[type(d)], at),
                    cause=cause,
                    origin_event_id=inp.event_id,
                )
                b.new.append(record)
                b.alerts[alert_id] = stored
        if isinstance(d, Raise):
            row.open_alert_ids[d.rule_id] = alert_id
        elif isinstance(d, Resolve):
            row.open_alert_ids.pop(d.rule_id, None)
        row.dirty = True

    def _change(
        self,
        b: _Batch,
        row: EpisodeRow,
        inp: Input,
        d: Decision,
        before: EpisodeState,
        alert_id: str,
        at: datetime,
    ) -> StoredAlert | None:
        if isinstance(d, Raise):
            tracking: dict[str, Any] = tracking_at_raise(d.rule_id, row.state)
            return raised(
                row.ctx,
                d,
                origin_event_id=inp.event_id,
                at=at,
                tracking=tracking,
                triggered_at=inp.occurred_at,
            )
        cur = b.alerts[alert_id]
        if isinstance(d, Update):
            return updated(cur, d)
        extra = repair_extras(d, cur.tracking, inp.measure, before)
        return resolved_by_rule(cur, d, at=at, extra=extra)
