"""`outcome.not-on-track` through the alerts pipeline on the real store and broker: raised from a
measure's expected band, resolved back on track and at closure, replayed without new events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from attune_alerts.adapters.store import AlertsStore
from attune_alerts.ledger import AlertLedger
from attune_alerts.pipeline import AlertsPipeline
from attune_alerts.settings import AlertsSettings, ClinicThresholds, Contacts
from attune_shared.events import AlertEvent, ExpectedBand, InternalEvent, MeasureScored
from attune_shared.kafka import Inbound, make_broker
from attune_shared.topics import Topics
from tests.support.kafka_io import read_all
from tests.unit.alerts_service.builders import Client, week

NOT_ON_TRACK = "outcome.not-on-track"
FITTED = datetime(2026, 2, 1, 3, 0, tzinfo=UTC)


def banded(ev: MeasureScored, session_index: int, low: float = 20.0, high: float = 32.0) -> MeasureScored:
    band = ExpectedBand(
        session_index=session_index,
        median=(low + high) / 2,
        low=low,
        high=high,
        quantiles=(0.1, 0.5, 0.9),
        model_version="ors-test-1",
        model_fitted_at=FITTED,
        model_episodes=57,
    )
    return ev.model_copy(update={"expected": band})


class Feeder:
    def __init__(self, settings: AlertsSettings, pipeline: AlertsPipeline) -> None:
        self.settings, self.pipeline, self.offset = settings, pipeline, 0

    async def feed(self, events: Sequence[InternalEvent]) -> Any:
        topic = self.settings.topic(Topics.MEASURES)
        batch = []
        for ev in events:
            batch.append(
                Inbound(value=ev.model_dump_json().encode(), topic=topic, partition=0, offset=self.offset)
            )
            self.offset += 1
        return await self.pipeline.process(batch)

    async def events(self) -> list[AlertEvent]:
        records = await read_all(self.settings.kafka_bootstrap_servers, self.settings.topic(Topics.ALERTS))
        return [AlertEvent.model_validate_json(r.value) for r in records]


@pytest.fixture
async def feeder(namespace, mongo) -> AsyncIterator[Feeder]:
    settings = AlertsSettings(attune_name_prefix=namespace.prefix)
    broker = make_broker(settings)
    await broker.connect()
    store = AlertsStore(mongo[settings.database_name])
    await store.ensure_indexes()
    ledger = AlertLedger(settings, broker, store, Contacts())
    pipeline = AlertsPipeline(store=store, ledger=ledger, thresholds=ClinicThresholds(), clock="wall")
    yield Feeder(settings, pipeline)
    await broker.stop()


async def test_not_on_track_raises_resolves_back_on_track_and_at_closure(feeder: Feeder) -> None:
    c = Client()
    # ORS 18 at intake; 15 at session 3 is below its band (20..32) but not reliably worse than intake.
    intake = c.ors("o1", 18, intake=18, at=week(1))
    unfit = c.ors("o2", 16, intake=18, at=week(2))  # no band (no fitted model): never alerts
    behind = banded(c.ors("o3", 15, intake=18, at=week(3)), 3)
    batch = [c.opened(), intake, unfit, behind]
    first = await feeder.feed(batch)
    assert first.changes["alert.raised"] == 1
    raised = [e.alert for e in await feeder.events()]
    assert [a.rule_id for a in raised] == [NOT_ON_TRACK]
    alert = raised[0]
    assert (alert.severity, alert.status, alert.rule_version) == ("normal", "open", 1)
    ev = alert.evidence
    assert (ev["instrument"], ev["score"], ev["session_index"]) == ("ORS", 15.0, 3)
    assert (ev["expected_low"], ev["expected_median"], ev["expected_high"]) == (20.0, 26.0, 32.0)
    assert ev["quantiles"] == [0.1, 0.5, 0.9] and ev["worse_side"] == "below"
    assert (ev["model_version"], ev["model_episodes"]) == ("ors-test-1", 57)
    assert ev["model_fitted_at"] == FITTED.isoformat()
    assert ev["thresholds_used"]["not_on_track_min_session"] == 3
    for domain in ("alliance", "motivation", "social support", "life events"):
        assert domain in alert.suggested_action

    # The same records again: no new change, no new event.
    again = await feeder.feed(batch)
    assert sum(again.changes.values()) == 0
    before = len(await feeder.events())

    # Back inside the band at session 4: resolved by the rule.
    await feeder.feed([banded(c.ors("o4", 21, intake=18, at=week(4)), 4)])
    resolved = [e.alert for e in (await feeder.events())[before:] if e.alert.rule_id == NOT_ON_TRACK]
    assert [(a.alert_id, a.status, a.resolution) for a in resolved] == [
        (alert.alert_id, "resolved", "addressed")
    ]
    note = resolved[0].evidence["resolution_evidence"]
    assert note["auto"] is True and note["reason"] == "back inside the expected band"

    # Behind again at session 5: a new alert, which the episode's closure resolves episode_ended.
    await feeder.feed([banded(c.ors("o5", 14, intake=18, at=week(5)), 5)])
    await feeder.feed([c.closed(week(6), reason="planned")])
    mine = [e for e in await feeder.events() if e.alert.rule_id == NOT_ON_TRACK]
    second = [e.alert for e in mine if e.alert.alert_id != alert.alert_id]
    assert [(e.status, e.resolution) for e in second] == [("open", None), ("resolved", "episode_ended")]
