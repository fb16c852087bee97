"""Builders for measures' unit tests: response versions, events and a book to run batches against."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from attune_measures.domain.revisions import run_batch
from attune_measures.domain.thresholds import DEFAULT, ScoringThresholds
from attune_measures.domain.versions import ResponseVersion, Tracked
from attune_shared.events import MeasureScored, ResponseSubmitted
from attune_shared.ids import (
    client_ref,
    derived_id,
)
from tests.support.ids import ap, as_episode, as_event, as_response

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
SOURCE = "ehr-north"
CLINIC = "north-01"
CLIENT = client_ref(b"unit-test-key", CLINIC, "MRN-UNIT-1")

# SRS item sets for a total (four items 0..10).
SRS = {
    28: [7, 7, 7, 7],
    33: [8, 8, 8, 9],
    34: [8, 8, 9, 9],
    35: [8, 9, 9, 9],
    36: [9, 9, 9, 9],
    37: [9, 9, 9, 10],
    38: [9, 9, 10, 10],
    39: [9, 10, 10, 10],
    40: [10, 10, 10, 10],
}


def session(day: float) -> datetime:
    """The session of week `day` (weekly sessions from T0)."""
    return T0 + timedelta(days=7 * day)


def version(
    rid: str,
    instrument: str,
    items: list[Any],
    day: float,
    *,
    status: str = "completed",
    occurred: datetime | None = None,
    episode: str = "ep_1",
    respondent: str = "client",
    clinic: str = CLINIC,
    event: str | None = None,
) -> ResponseVersion:
    """One response version at a weekly session (completed an hour after it, unless `occurred`).

    rid, episode and event are test labels (or pseudonyms), carried as their pseudonyms: response
    "s1" is `rs("s1")`, episode "ep_1" is `ep("ep_1")`.
    """
    when = occurred or session(day) + timedelta(hours=1)
    return ResponseVersion(
        source=SOURCE,
        response_id=as_response(rid),
        source_event_id=as_event(event or f"{rid}:{status}:{when.isoformat()}"),
        clinic_id=clinic,
        client_ref=CLIENT,
        episode_id=as_episode(episode),
        instrument=instrument,  # type: ignore[arg-type]
        respondent=respondent,  # type: ignore[arg-type]
        clinician_id="c-1",
        appointment_id=ap(f"a-{day}"),
        status=status,  # type: ignore[arg-type]
        items=tuple(items),
        occurred_at=when,
        session_at=session(day),
    )


def srs(rid: str, total: int, day: float, **kw: Any) -> ResponseVersion:
    """A client-rated SRS response with the given total."""
    return version(rid, "SRS", SRS[total], day, **kw)


def ors(rid: str, total: int, day: float, **kw: Any) -> ResponseVersion:
    """An ORS response with the given (integer) total, spread over four items."""
    q, r = divmod(total, 4)
    return version(rid, "ORS", [q + (1 if i < r else 0) for i in range(4)], day, **kw)


def submitted(v: ResponseVersion, *, appointment_start: datetime | None = None) -> ResponseSubmitted:
    """The ResponseSubmitted event carrying a version (as intake would publish it)."""
    return ResponseSubmitted(
        event_id=derived_id("intake", v.source, v.source_event_id),
        occurred_at=v.occurred_at,
        source=v.source,
        source_event_id=v.source_event_id,
        clinic_id=v.clinic_id,
        client_ref=v.client_ref,
        episode_id=v.episode_id,
        response_id=v.response_id,
        status=v.status,
        instrument=v.instrument,
        respondent=v.respondent,
        clinician_id=v.clinician_id,
        appointment_id=v.appointment_id,
        appointment_start=appointment_start if appointment_start is not None else v.session_at,
        items=list(v.items),
    )


class Book:
    """measures' store in memory: run batches through the pure domain and keep what they change."""

    def __init__(self, thresholds: Mapping[str, ScoringThresholds] | None = None) -> None:
        self.tracked: dict[str, Tracked] = {}
        self.published: list[MeasureScored] = []
        self.thresholds = dict(thresholds or {})

    def run(self, batch: Iterable[ResponseVersion]) -> list[MeasureScored]:
        """Apply one batch; return the events it publishes (and keep them)."""
        _, settled = run_batch(self.tracked, list(batch), lambda c: self.thresholds.get(c, DEFAULT))
        self.tracked.update(settled.changed)
        self.published.extend(settled.events)
        return settled.events

    def latest(self) -> dict[str, MeasureScored]:
        """The highest revision published per response_id."""
        out: dict[str, MeasureScored] = {}
        for e in self.published:
            if e.response_id not in out or e.revision > out[e.response_id].revision:
                out[e.response_id] = e
        return out


def revisions(events: Iterable[MeasureScored]) -> dict[str, int]:
    """response_id -> revision of each event."""
    return {e.response_id: e.revision for e in events}
