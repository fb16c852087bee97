"""Versions of a response: which one counts (amendments, replays), and the groups a batch touches. Pure.

A response is kept per `(source, response_id)`. An amended version replaces a completed one, never the
reverse; between versions of the same status the later `occurred_at` wins; the same version again is a
replay. Every response of one episode and instrument forms a group (`series_key`), recomputed as a whole.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final, Literal, TypeVar, cast

from attune_measures.domain.scoring import Item
from attune_shared.events import Respondent, ResponseStatus, ResponseSubmitted
from attune_shared.instruments import InstrumentName

Verdict = Literal["new", "replaced", "replay", "stale"]
_STATUS_RANK: Final = {"completed": 0, "amended": 1}


def response_key(source: str, response_id: str) -> str:
    """The store key of a response (`source` cannot contain "|", so the key is unambiguous)."""
    return f"{source}|{response_id}"


def _exact(value: datetime) -> datetime:
    # One tzinfo class whatever parsed it (Pydantic's TzInfo or the stdlib's), so stored and fresh
    # versions compare and serialise identically.
    return datetime.fromisoformat(value.isoformat())


S = TypeVar("S", bound=str | None)


def shared(text: S) -> S:
    """One copy of a string that many responses repeat (source, clinic, client, episode, instrument,
    ...): measures remembers tens of thousands of responses, and each decoded copy costs 50-80 bytes."""
    return cast(S, sys.intern(text)) if isinstance(text, str) else text


@dataclass(frozen=True, slots=True)
class ResponseVersion:
    """One version of a questionnaire response, as submitted (the input measures keeps)."""

    source: str
    response_id: str
    source_event_id: str
    clinic_id: str
    client_ref: str
    episode_id: str
    instrument: InstrumentName
    respondent: Respondent
    clinician_id: str
    appointment_id: str | None
    status: ResponseStatus
    items: tuple[Item, ...]
    occurred_at: datetime
    session_at: datetime  # the appointment's start when known, else the completion time

    def __post_init__(self) -> None:
        object.__setattr__(self, "occurred_at", _exact(self.occurred_at))
        object.__setattr__(self, "session_at", _exact(self.session_at))
        object.__setattr__(self, "items", tuple(self.items))

    @classmethod
    def from_event(cls, event: ResponseSubmitted) -> ResponseVersion:
        """The version a ResponseSubmitted event carries."""
        return cls(
            source=shared(event.source),
            response_id=event.response_id,
            source_event_id=event.source_event_id,
            clinic_id=shared(event.clinic_id),
            client_ref=shared(event.client_ref),
            episode_id=shared(event.episode_id),
            instrument=shared(event.instrument),
            respondent=shared(event.respondent),
            clinician_id=shared(event.clinician_id),
            appointment_id=event.appointment_id,
            status=shared(event.status),
            items=tuple(event.items),
            occurred_at=event.occurred_at,
            session_at=event.appointment_start or event.occurred_at,
        )

    @property
    def key(self) -> str:
        """The store key, `source|response_id`."""
        return response_key(self.source, self.response_id)

    @property
    def series_key(self) -> str:
        """The episode + instrument group this response belongs to."""
        return f"{self.episode_id}:{self.instrument}"

    @property
    def rank(self) -> tuple[int, datetime, str]:
        """Precedence: amended over completed, then the later occurred_at, then the later event id."""
        return (_STATUS_RANK[self.status], self.occurred_at, self.source_event_id)

    @property
    def order(self) -> tuple[datetime, str, str]:
        """Position in its series: session time, with the key breaking ties."""
        return (self.session_at, self.source, self.response_id)


@dataclass(frozen=True, slots=True)
class Tracked:
    """A response's current version with what was last published for it (revision 0: never)."""

    response: ResponseVersion
    revision: int = 0
    fingerprint: str | None = None
    scores: Mapping[str, Any] | None = None
    # The trajectory model version its expectation uses, fixed when it was first published (None: it
    # had no model then, and keeps none); see trajectories.ModelBook.model_for.
    trajectory: str | None = None
    # What the pipeline last computed for it (revisions.Computed), stored with it so a member read back
    # is not recomputed while its basis is unchanged (adapters/store.py); not compared.
    computed: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Applied:
    """The book after applying a batch of versions, each version's verdict, and the groups to recompute."""

    book: dict[str, Tracked]
    verdicts: list[tuple[ResponseVersion, Verdict]]
    touched: set[str] = field(default_factory=set)


def precedence(current: ResponseVersion | None, incoming: ResponseVersion) -> Verdict:
    """Whether `incoming` replaces the stored version of the same response.

    An amended version replaces a completed one and never the reverse; between two versions of the
    same status the later `occurred_at` wins; the very same version again is a replay (a no-op).
    """
    if current is None:
        return "new"
    if incoming.rank == current.rank:
        return "replay"
    return "replaced" if incoming.rank > current.rank else "stale"


def apply_versions(book: Mapping[str, Tracked], incoming: Iterable[ResponseVersion]) -> Applied:
    """Apply versions in arrival order; every group an input names is touched, even by a replay.

    Touching on a replay lets a batch that crashed between publishing and a partial store write
    finish the write when it is consumed again: recomputation then republishes the same revisions.
    """
    out = dict(book)
    verdicts: list[tuple[ResponseVersion, Verdict]] = []
    touched: set[str] = set()
    for version in incoming:
        current = out.get(version.key)
        verdict = precedence(current.response if current else None, version)
        verdicts.append((version, verdict))
        touched.add(version.series_key)
        if verdict in ("new", "replaced"):
            if current is None:
                out[version.key] = Tracked(version)
            else:
                touched.add(current.response.series_key)  # an amendment may move to another episode
                out[version.key] = replace(current, response=version)
    return Applied(out, verdicts, touched)


def groups(book: Mapping[str, Tracked], series_keys: Iterable[str]) -> dict[str, list[Tracked]]:
    """The responses of each of these groups, in session order (a group may be empty)."""
    out: dict[str, list[Tracked]] = {key: [] for key in series_keys}
    for tracked in book.values():
        group = out.get(tracked.response.series_key)
        if group is not None:
            group.append(tracked)
    for group in out.values():
        group.sort(key=lambda t: t.response.order)
    return out
