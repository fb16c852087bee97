"""Making alert changes durable, the same way for every writer (consumer, API, escalation sweep).

One change = one record in `alert_events` claiming the alert's next sequence number. The record is
inserted BEFORE the event is published: its unique `_id` (`<alert_id>:<sequence>`) means only one
writer gets that number, and its unique `cause_key` means a replayed cause finds its earlier record
and re-publishes the very same event instead of deriving a new one. Then: publish (waiting for the
broker's acks) -> mark published -> project the alert document -> queue deliveries (outbox).

A record left unpublished by a writer that crashed is rolled forward by the next writer of that
alert once it is older than ATTUNE_ALERTS_STALE_CLAIM_SECONDS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from faststream.kafka import KafkaBroker

from attune_alerts import metrics
from attune_alerts.delivery import deliveries_for
from attune_alerts.domain.lifecycle import StoredAlert, alert_event, as_raised, now_ms
from attune_alerts.ports import ChangeLog, ChangeRecord, make_record
from attune_alerts.settings import AlertsSettings, Contacts
from attune_shared.kafka import OutRecord, publish_all
from attune_shared.mongo import ConcurrentUpdate
from attune_shared.topics import Topics

Change = Callable[[StoredAlert, datetime], tuple[StoredAlert, str] | None]


class AlertNotFound(LookupError):
    """No alert with that id."""


def observe(record: ChangeRecord) -> None:
    """Count a new change in the alert metrics."""
    a = record.stored.alert
    if record.event_type == "alert.raised":
        metrics.RAISED.labels(a.rule_id, a.severity).inc()
    elif record.event_type == "alert.updated":
        metrics.UPDATED.labels(a.rule_id).inc()
    elif record.event_type == "alert.resolved":
        metrics.RESOLVED.labels(a.rule_id, a.resolution or "").inc()
    elif record.event_type == "alert.escalated":
        metrics.ESCALATIONS.labels(a.severity).inc()
    elif record.event_type == "alert.acknowledged":
        metrics.ACKNOWLEDGED.labels(a.rule_id).inc()
        if a.acknowledged_at is not None:
            metrics.TIME_TO_ACKNOWLEDGE.observe(max(0.0, (a.acknowledged_at - a.raised_at).total_seconds()))


class AlertLedger:
    """Claims, publishes and projects alert changes."""

    def __init__(
        self, settings: AlertsSettings, broker: KafkaBroker, store: ChangeLog, contacts: Contacts
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.store = store
        self.contacts = contacts
        self.topic = settings.topic(Topics.ALERTS)

    def is_stale(self, record: ChangeRecord) -> bool:
        """True when an unpublished record is old enough to have been abandoned by its writer."""
        age = (now_ms() - record.recorded_at).total_seconds()
        return age >= self.settings.attune_alerts_stale_claim_seconds

    async def complete(self, records: Sequence[ChangeRecord], latest: Iterable[StoredAlert]) -> None:
        """Publish what is unpublished (keyed by client_ref), then project alerts and queue deliveries."""
        unpublished = [r for r in records if not r.published]
        await publish_all(
            self.broker,
            [OutRecord(self.topic, r.stored.alert.client_ref.encode(), r.body.encode()) for r in unpublished],
        )
        await self.store.mark_published(record_ids=[r.record_id for r in unpublished])
        await self.store.project(alerts=latest)
        docs = [d for r in records for d in deliveries_for(r, self.contacts, self.settings.email_enabled)]
        await self.store.add_deliveries(docs=docs)

    async def apply(
        self, alert_id: str, *, cause: str, change: Change, attempts: int = 40
    ) -> ChangeRecord | None:
        """Apply one change to one alert, exactly once per cause; None when `change` declines.

        `change` may raise (e.g. InvalidTransition); AlertNotFound when the alert does not exist.
        """
        cause_key = f"{alert_id}|{cause}"
        for attempt in range(attempts):
            done = await self.store.record_by_cause(cause_key=cause_key)
            if done is not None:  # this cause was applied before (a retry after a crash)
                if not done.published:
                    await self.complete([done], [done.stored])
                return done
            cur = (await self.store.current(alert_ids=[alert_id])).get(alert_id)
            if cur is None:
                raise AlertNotFound(alert_id)
            if cur.unprojected is not None:
                pending = cur.unprojected
                if not pending.published and not self.is_stale(pending):
                    await asyncio.sleep(min(1.0, 0.02 * 2**attempt))  # another writer is mid-change
                    continue
                await self.complete([pending], [pending.stored])  # roll an abandoned change forward
            at = now_ms()
            nxt = change(as_raised(cur.stored), at)
            if nxt is None:
                return None
            stored, event_type = nxt
            record = make_record(
                stored, alert_event(stored, event_type, at), cause=cause, origin_event_id=None
            )
            if not await self.store.try_claim_change(record=record):
                await asyncio.sleep(min(1.0, 0.02 * 2**attempt))  # someone took this sequence: re-read
                continue
            await self.complete([record], [record.stored])
            observe(record)
            return record
        raise ConcurrentUpdate(f"alert {alert_id}: could not apply {cause} after {attempts} attempts")
