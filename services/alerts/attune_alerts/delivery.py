"""The delivery outbox and its worker: webhooks and e-mail, fully apart from rule evaluation.

Deliveries are queued (one document per (event, channel, target), id derived from them) after the
event is on the alerts topic. The worker polls for due deliveries, claims each attempt by inserting
`{_id: "<delivery_id>:<attempt>"}` into `delivery_claims` (so two replicas never both send the same
attempt), sends with a bounded number in flight, records every attempt on the delivery document
(time, HTTP status or error, duration), retries with exponential backoff and jitter, and marks the
delivery dead after the last attempt. A slow receiver only ever holds one of the worker's slots.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from attune_alerts import metrics
from attune_alerts.domain.lifecycle import now_ms
from attune_alerts.ports import Mailer, Outbox, SendResult, Webhooks
from attune_alerts.settings import Contacts
from attune_shared.ids import derived_id
from attune_shared.logging import get_logger

log = get_logger("attune_alerts.delivery")

CLAIMS = "delivery_claims"


def deliveries_for(record: Any, contacts: Contacts, email_enabled: bool) -> list[dict[str, Any]]:
    """The outbox documents for one alert change (a ChangeRecord).

    Every event goes to the clinic's webhooks; an escalation also to the clinic's escalation contact
    (webhooks and e-mail); a newly raised alert also to the lead's e-mail.
    """
    alert = record.stored.alert
    c = contacts.of(alert.clinic_id)
    targets = [("webhook", h.url, "clinic") for h in c.webhooks]
    if record.event_type == "alert.escalated":
        targets += [("webhook", h.url, "escalation") for h in c.escalation.webhooks]
        if email_enabled and c.escalation.email:
            targets.append(("email", c.escalation.email, "escalation"))
    if record.event_type == "alert.raised" and email_enabled and c.lead_email:
        targets.append(("email", c.lead_email, "lead"))
    now = now_ms()
    docs: dict[str, dict[str, Any]] = {}
    for channel, target, purpose in targets:
        delivery_id = derived_id("delivery", record.event_id, channel, target)
        docs.setdefault(
            delivery_id,
            {
                "_id": delivery_id,
                "event_id": record.event_id,
                "event_type": record.event_type,
                "alert_id": alert.alert_id,
                "clinic_id": alert.clinic_id,
                "channel": channel,
                "target": target,
                "purpose": purpose,
                "body": record.body,
                "status": "pending",
                "attempt_count": 0,
                "attempts": [],
                "next_attempt_at": now,
                "created_at": now,
            },
        )
    return list(docs.values())


def backoff_seconds(attempt: int, base: float, cap: float, rnd: random.Random | None = None) -> float:
    """Delay after failed attempt n: base * 2^(n-1), capped, times a jitter in [0.5, 1)."""
    r = rnd or random
    return min(cap, base * 2 ** (attempt - 1)) * r.uniform(0.5, 1.0)


def email_text(body: str, public_url: str) -> tuple[str, str]:
    """Subject and text of an alert e-mail: title, rule, severity, clinic and a link; nothing else."""
    event = json.loads(body)
    a = event["alert"]
    kind = event["event_type"].removeprefix("alert.")
    subject = f"[Attune] {a['severity']} alert {kind}: {a['title']}"
    text = "\n".join(
        [
            a["title"],
            "",
            f"Rule: {a['rule_id']} (version {a['rule_version']})",
            f"Severity: {a['severity']}",
            f"Clinic: {a['clinic_id']}",
            f"Event: {event['event_type']}"
            + (f" (level {a['escalation_level']})" if kind == "escalated" else ""),
            f"Open it: {public_url.rstrip('/')}/v1/alerts/{a['alert_id']}",
        ]
    )
    return subject, text


class DeliveryWorker:
    """Polls the outbox and delivers, at most `concurrency` attempts at a time per process."""

    def __init__(
        self,
        *,
        store: Outbox,
        contacts: Contacts,
        webhooks: Webhooks,
        email: Mailer | None,
        worker_id: str,
        max_attempts: int,
        backoff_base_s: float,
        backoff_cap_s: float,
        timeout_s: float,
        concurrency: int,
        poll_s: float,
        public_url: str,
    ) -> None:
        self.store = store
        self.contacts = contacts
        self.webhooks = webhooks
        self.email = email
        self.worker_id = worker_id
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.lease_s = 2 * timeout_s + 30  # an attempt claimed longer ago than this was abandoned
        self.concurrency = concurrency
        self.poll_s = poll_s
        self.public_url = public_url
        self.inflight: dict[str, asyncio.Task[None]] = {}

    async def run_forever(self) -> None:
        """Poll until cancelled; a failed poll only skips a round."""
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("delivery_poll_failed", error=type(exc).__name__, detail=str(exc)[:200])
            await asyncio.sleep(self.poll_s)

    async def poll_once(self) -> int:
        """Start attempts for due deliveries while slots are free; return how many started."""
        free = self.concurrency - len(self.inflight)
        if free <= 0:
            return 0
        now = now_ms()
        due = await self.store.due_deliveries(now=now, limit=free, exclude=list(self.inflight))
        started = 0
        for d in due:
            attempt = await self._claim(d, now)
            if attempt is None:
                continue
            task = asyncio.create_task(self._attempt(d, attempt))
            self.inflight[d["_id"]] = task
            task.add_done_callback(self._forget(d["_id"]))
            started += 1
        return started

    def _forget(self, key: str) -> Callable[[asyncio.Task[None]], None]:
        def done(_task: asyncio.Task[None]) -> None:
            self.inflight.pop(key, None)

        return done

    async def drain(self) -> None:
        """Wait for the attempts in flight (tests and shutdown)."""
        if self.inflight:
            await asyncio.gather(*self.inflight.values(), return_exceptions=True)

    async def _claim(self, d: Mapping[str, Any], now: datetime) -> int | None:
        n = int(d["attempt_count"]) + 1
        claim_id = f"{d['_id']}:{n}"
        if await self.store.claim(collection=CLAIMS, claim_id=claim_id, worker=self.worker_id):
            return n
        held = await self.store.get_claim(collection=CLAIMS, claim_id=claim_id)
        if held is None or (now - held["claimed_at"]).total_seconds() < self.lease_s:
            return None  # another worker is on it
        # Its holder stopped before recording it: whoever claims the next attempt records it as lost.
        if not await self.store.claim(
            collection=CLAIMS, claim_id=f"{d['_id']}:{n + 1}", worker=self.worker_id
        ):
            return None
        lost = {"n": n, "at": held["claimed_at"], "outcome": "lost", "status": None, "duration_ms": None}
        lost["error"] = "the worker holding this attempt stopped before recording it"
        if n >= self.max_attempts:
            await self.store.record_attempt(
                delivery_id=d["_id"], attempt=lost, status="dead", next_attempt_at=None
            )
            metrics.WEBHOOK_DEAD.inc()
            return None
        await self.store.record_attempt(
            delivery_id=d["_id"], attempt=lost, status="pending", next_attempt_at=now
        )
        return n + 1

    async def _send(self, d: Mapping[str, Any], attempt: int) -> SendResult:
        if d["channel"] == "webhook":
            secret = self.contacts.secret_for(d["clinic_id"], d["target"])
            if secret is None:
                return SendResult(False, "error", error="endpoint is no longer configured", final=True)
            return await self.webhooks.post(
                d["target"], secret, d["body"], event_id=d["event_id"], attempt=attempt
            )
        if self.email is None:
            return SendResult(False, "error", error="e-mail is not configured (ATTUNE_SMTP_HOST)", final=True)
        subject, text = email_text(d["body"], self.public_url)
        return await self.email.send(d["target"], subject, text)

    async def _attempt(self, d: Mapping[str, Any], attempt: int) -> None:
        at = now_ms()
        started = time.monotonic()
        try:
            result = await self._send(d, attempt)
        except Exception as exc:  # a bug in a channel must not kill the worker
            result = SendResult(False, "error", error=f"{type(exc).__name__}: {str(exc)[:200]}")
        duration = time.monotonic() - started
        record = {
            "n": attempt,
            "at": at,
            "outcome": result.outcome,
            "status": result.status,
            "error": result.error,
            "duration_ms": round(duration * 1000, 1),
        }
        next_at: datetime | None = None
        if result.ok:
            status = "delivered"
        elif result.final or attempt >= self.max_attempts:
            status = "dead"
        else:
            status = "pending"
            next_at = now_ms() + timedelta(
                seconds=backoff_seconds(attempt, self.backoff_base_s, self.backoff_cap_s)
            )
        metrics.WEBHOOK_ATTEMPTS.labels(result.outcome).inc()
        metrics.WEBHOOK_SECONDS.observe(duration)
        if status == "dead":
            metrics.WEBHOOK_DEAD.inc()
        for retry in range(5):
            try:
                await self.store.record_attempt(
                    delivery_id=d["_id"], attempt=record, status=status, next_attempt_at=next_at
                )
                break
            except Exception as exc:  # the store is briefly away; after the lease another worker takes over
                log.warning("delivery_record_failed", error=type(exc).__name__, retry=retry)
                await asyncio.sleep(0.5 * 2**retry)
        log.info(
            "delivery_attempt",
            delivery_id=d["_id"],
            event_id=d["event_id"],
            channel=d["channel"],
            attempt=attempt,
            outcome=result.outcome,
            http_status=result.status,
            status=status,
        )
