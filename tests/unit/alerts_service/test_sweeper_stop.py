"""A service stopping mid-escalation still finishes the claim it took (no half-done escalation)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from attune_alerts import sweeper as sweeper_module
from attune_alerts.sweeper import Sweeper
from tests.support.fakes import OneAlertSweep


class _SlowLedger:
    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def apply(self, alert_id: str, *, cause: str, change: Any) -> object:
        self.entered.set()
        await self.release.wait()
        return object()


async def test_a_cancelled_sweep_finishes_the_escalation_it_claimed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweeper_module, "escalation_due", lambda *_: 1)
    now = datetime(2026, 3, 2, tzinfo=UTC)
    alert = SimpleNamespace(
        alert_id="a-1",
        clinic_id="north-01",
        severity="urgent",
        status="open",
        raised_at=now,
        escalation_level=0,
        acknowledged_at=None,
    )
    store, ledger = OneAlertSweep(alert), _SlowLedger()
    sweeper = Sweeper(
        store=store,
        ledger=ledger,  # type: ignore[arg-type]
        pipeline=None,  # type: ignore[arg-type]
        thresholds=SimpleNamespace(for_clinic=lambda _: None),  # type: ignore[arg-type]
        lock=asyncio.Lock(),
        partitions=None,  # type: ignore[arg-type]
        clock="wall",
        interval_s=1,
        replica_id="r-1",
    )
    task = asyncio.ensure_future(sweeper.escalate(now))
    await ledger.entered.wait()
    task.cancel()  # the service stops while the escalation is being applied
    await asyncio.sleep(0)
    ledger.release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert store.finished == [("a-1:1", "escalated")]
