"""Facts and episode summaries survive a trip through BSON exactly as the store keeps them."""

from __future__ import annotations

from typing import Any

import bson

from attune_reporting.adapters.codec import from_doc, to_doc
from attune_reporting.domain.episodes import summarize
from attune_reporting.domain.facts import (
    AlertFact,
    CareFact,
    MeasureFact,
    alert_fact,
    care_fact,
    measure_fact,
)
from attune_shared.events import AlertEvent, MeasureScored
from tests.unit.reporting import scenario


def _through_bson(doc: dict[str, Any]) -> dict[str, Any]:
    return bson.decode(bson.encode(doc))


def _nested_arrays(value: Any, inside_array: bool = False) -> bool:
    """FerretDB 1.x refuses an array directly inside an array."""
    if isinstance(value, list):
        return inside_array or any(_nested_arrays(v, True) for v in value)
    if isinstance(value, dict):
        return any(_nested_arrays(v) for v in value.values())
    return False


def test_every_fact_and_summary_round_trips() -> None:
    care: list[CareFact] = []
    measures: list[MeasureFact] = []
    alerts: list[AlertFact] = []
    for event in scenario.build():
        if isinstance(event, AlertEvent):
            alerts.append(alert_fact(event))
        elif isinstance(event, MeasureScored):
            measures.append(measure_fact(event))
        else:
            care.append(care_fact(event))
    summaries = [summarize(ep, care, measures) for ep in sorted({f.episode_id for f in care})]
    values: list[Any] = [*care, *measures, *alerts, *(s for s in summaries if s is not None)]
    assert len(values) > 80 and any(s is not None and s.appointments for s in summaries)
    for value in values:
        doc = to_doc(value)
        assert not _nested_arrays(doc), doc
        assert from_doc(type(value), _through_bson(doc)) == value
