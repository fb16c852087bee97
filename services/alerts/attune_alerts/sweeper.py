"""The periodic sweep: escalate unacknowledged alerts, raise dropout risk on inactivity, export gauges.

Escalation is safe with any number of replicas sweeping at once: each due (alert, level) is claimed
by inserting `{_id: "<alert_id>:<level>"}` into `escalation_claims`; only the replica whose insert
succeeds applies it (and the change itself is recorded under the cause `escalation:<level>`, once).

Inactivity is judged only for episodes on partitions this replica consumes, under the same lock as
the consumer, so each episode's state keeps a single writer; the ticks go through the pipeline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition

from attune_alerts import metrics
from attune_alerts.domain.escalation import EscalationView, escalation_due
from attune_alerts.domain.lifecycle import StoredAlert, escalated, now_ms
from attune_alerts.ledger import AlertLedger
from attune_alerts.pipeline import AlertsPipeline, Input, tick
from attune_alerts.ports import SweepStore
from attune_alerts.settings import ClinicThresholds
from attune_shared.logging import get_logger
from attune_shared.mongo import ConcurrentUpdate

log = get_logger("attune_alerts.sweeper")

CLAIMS = "escalation_claims"
SEVERITIES = ("urgent", "high", "normal")


class PartitionTracker(ConsumerRebalanceListener):
    """Which partitions of the input topics this replica consumes right now."""

    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = tuple(topics)
        self.assigned: set[tuple[str, int]] = set()
        # Called at every rebalance: what is remembered about our partitions' episodes is only good
        # while they stay ours (the store's memory of episodes and clocks).
        self.on_rebalance: list[Callable[[], None]] = []

    def _rebalanced(self) -> None:
        for forget in self.on_rebalance:
            forget()

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.assigned -= {(tp.topic, tp.partition) for tp in revoked}
        self._rebalanced()

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.assigned |= {(tp.topic, tp.partition) for tp in assigned}
        self._rebalanced()

    def owned(self) -> set[int]:
        """Partition numbers owned on every input topic (topics are co-partitioned by client_ref)."""
        per_topic = [{p for t, p in self.assigned if t == topic} for topic in self.topics]
        return set.intersection(*per_topic) if per_topic else set()


class Sweeper:
    """Runs the sweep every `interval_s` seconds."""

    def __init__(
        self,
        *,
        store: SweepStore,
        ledger: AlertLedger,
        pipeline: AlertsPipeline,
        thresholds: ClinicThresholds,
        lock: asyncio.Lock,
        partitions: PartitionTracker,
        clock: str,
        interval_s: float,
        replica_id: str,
        drained: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.pipeline = pipeline
        self.thresholds = thresholds
        self.lock = lock
        self.partitions = partitions
        self.clock = clock
        self.interval_s = interval_s
        self.replica_id = replica_id
        self.drained = drained or _always
        # A claim not finished after this long was left by a replica that died mid-escalation.
        self.takeover_after = timedelta(seconds=max(60.0, 4 * interval_s))

    async def run_forever(self) -> None:
        """Sweep until cancelled; a failed sweep is logged and the next one runs on time."""
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.sweep_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("sweep_failed", error=type(exc).__name__, detail=str(exc)[:200])

    async def sweep_once(self) -> dict[str, int]:
        """One sweep; returns what it did."""
        escalations = await self.escalate()
        inactive = await self.inactivity()
        counts = await self.store.count_unresolved()
        for severity in SEVERITIES:
            metrics.OPEN.labels(severity).set(counts.get(severity, 0))
        return {"escalated": escalations, "inactivity_ticks": inactive}

    async def escalate(self, now: datetime | None = None) -> int:
        """Escalate every due level of every open, unacknowledged alert, each exactly once."""
        now = now or now_ms()
        done = 0
        for s in await self.store.unacknowledged():
            a = s.alert
            view = EscalationView(
                a.severity, a.status, a.raised_at, a.escalation_level, a.acknowledged_at is not None
            )
            level = escalation_due(view, now, self.thresholds.for_clinic(a.clinic_id))
            if level is None:
                continue
            claim_id = f"{a.alert_id}:{level}"
            if not await self._claim(claim_id, a.alert_id, level, now):
                continue
            # A claim taken is finished even when the service stops meanwhile: cancelled between
            # the escalation and finish_claim, it would be left half done until another replica
            # took it over (takeover_after), and its escalation would look unfinished.
            step = asyncio.ensure_future(self._escalate_claimed(a.alert_id, level, claim_id))
            try:
                escalated = await asyncio.shield(step)
            except asyncio.CancelledError:
                await step
                raise
            if escalated:
                done += 1
                log.info("alert_escalated", alert_id=a.alert_id, level=level, severity=a.severity)
        return done

    async def _escalate_claimed(self, alert_id: str, level: int, claim_id: str) -> bool:
        record = await self.ledger.apply(alert_id, cause=f"escalation:{level}", change=_escalate(level))
        outcome = "escalated" if record is not None else "no_longer_due"
        await self.store.finish_claim(collection=CLAIMS, claim_id=claim_id, outcome=outcome)
        return record is not None

    async def _claim(self, claim_id: str, alert_id: str, level: int, now: datetime) -> bool:
        fields: dict[str, Any] = {"alert_id": alert_id, "level": level, "replica": self.replica_id}
        if await self.store.claim(collection=CLAIMS, claim_id=claim_id, done_at=None, **fields):
            return True
        held = await self.store.get_claim(collection=CLAIMS, claim_id=claim_id)
        if held is None or held.get("done_at") is not None or now - held["claimed_at"] < self.takeover_after:
            return False  # another replica has it (or did it)
        # Its holder died before finishing: one replica may take it over (the change is idempotent).
        return await self.store.claim(
            collection=CLAIMS, claim_id=f"{claim_id}:takeover", done_at=None, **fields
        )

    async def inactivity(self) -> int:
        """Feed inactivity ticks for this replica's inactive open episodes through the pipeline."""
        owned = self.partitions.owned()
        if not owned:
            return 0
        event_now = None
        if self.clock == "event":
            # On the event clock "now" is the newest event time seen, which says nothing of a client
            # whose events are still on their way through intake or measures: judge inactivity only
            # once every event published so far has been processed, and with the clock as it was
            # BEFORE that was checked. Everything published before the record that set this clock has
            # then been through the pipeline; read after the check (as it once was), the clock could
            # include records published meanwhile, processed on one partition while another client's
            # earlier events were still in flight, and raise that client's inactivity ahead of them
            # (another trigger, another alert id than a run where no sweep ran then).
            event_now = await self.store.newest_event_time()
            if event_now is None or not await self.drained():
                return 0
        async with self.lock:
            now = now_ms() if self.clock == "wall" else event_now

            def due(clinic_id: str, last: datetime) -> bool:
                days = self.thresholds.for_clinic(clinic_id).inactivity_days
                return now is not None and now - last >= timedelta(days=days)

            rows = await self.store.inactivity_candidates(partitions=owned, due=due)
            ticks: list[Input] = []
            for row in rows:
                last = row.state.last_attended_at
                if now is None or last is None:
                    continue
                days = self.thresholds.for_clinic(row.ctx.clinic_id).inactivity_days
                if now - last >= timedelta(days=days):
                    ticks.append(tick(row, now, due=last + timedelta(days=days)))
            if not ticks:
                return 0
            try:
                await self.pipeline.run(ticks)
            except ConcurrentUpdate as exc:
                log.info("inactivity_conflict", detail=str(exc)[:200])  # the next sweep tries again
                return 0
            return len(ticks)


async def _always() -> bool:
    return True


def _escalate(level: int) -> Any:
    def change(cur: StoredAlert, _at: datetime) -> tuple[StoredAlert, str] | None:
        nxt = escalated(cur, level=level)
        return None if nxt is None else (nxt, "alert.escalated")

    return change
