"""Which published measures a change to an episode + instrument group revises. Pure.

After any change to a group the whole group is recomputed in session order, and a response is
(re)published, with its revision + 1, exactly when its published content changed. The
content excludes the event's own bookkeeping (id, revision, superseded, occurred_at, source_event_id),
so recomputing an unchanged group publishes nothing and a replay re-derives the same revisions and ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from attune_measures.domain.change import change_from_intake
from attune_measures.domain.scoring import Score, UnscorableResponse, score
from attune_measures.domain.series import context_for
from attune_measures.domain.thresholds import RULE_VERSIONS, ScoringThresholds
from attune_measures.domain.trajectories import TRAJECTORY_INSTRUMENTS, ModelBook, TrajectoryModel, expected
from attune_measures.domain.versions import Applied, ResponseVersion, Tracked, apply_versions, groups
from attune_shared.events import ChangeFromIntake, ExpectedBand, MeasureScored, SeriesContext
from attune_shared.ids import derived_id

ALLIANCE_INSTRUMENTS: Final = frozenset({"WAI-SR", "SRS"})
# Event bookkeeping that is not part of what a measure says; a change to these alone republishes nothing.
_NOT_CONTENT: Final = frozenset({"event_id", "revision", "superseded", "occurred_at", "source_event_id"})
_NO_MODELS: Final = ModelBook()


@dataclass(frozen=True, slots=True)
class Revised:
    """One group member after recomputation; `event` is None when its published content is unchanged."""

    tracked: Tracked
    event: MeasureScored | None


def fingerprint(event: MeasureScored) -> str:
    """A digest of what a measure says (its content, not its id or revision)."""
    # Without an expectation the content is what it was before `expected` existed, so measures
    # published then keep their fingerprint (nothing is republished for the new field).
    exclude = _NOT_CONTENT if event.expected is not None else _NOT_CONTENT | {"expected"}
    content = event.model_dump_json(exclude=set(exclude))
    return hashlib.sha256(content.encode()).hexdigest()


def measure_event_id(source: str, response_id: str, revision: int) -> str:
    """The event id of one revision of a scored response (the same on every replay)."""
    return derived_id("measure.scored", source, response_id, str(revision))


@dataclass(frozen=True, slots=True)
class Computed:
    """What one recomputation of a member found: the digest of its content, computed from exactly
    `basis`, and its primary score. A later recomputation with an equal basis would find the same
    content, so when the member's stored fingerprint is that digest it is unchanged and no event needs
    building (a group's every member is recomputed whenever one of them changes)."""

    basis: tuple[Any, ...]
    digest: str
    primary: float | None


def _basis(
    tracked: Tracked,
    thresholds: ScoringThresholds,
    intake: tuple[str, float] | None,
    alliance: Sequence[tuple[str, float]] | None,
    window: int,
    trajectory: tuple[str, int] | None = None,
) -> tuple[Any, ...]:
    """Everything a member's published content depends on: its response, the thresholds, the intake
    response and score, for an alliance point the earlier points' count and its window, and for an
    expectation the model version and session index. The last three as one string (repr is exact for
    ids and floats), which the process remembers for tens of thousands of members at a fraction of
    the tuples' memory."""
    series = (len(alliance), alliance[-window:]) if alliance is not None else None
    if trajectory is None:
        return (tracked.response, thresholds, repr((intake, series)))
    return (tracked.response, thresholds, repr((intake, series, trajectory)))


def _known(tracked: Tracked, thresholds: ScoringThresholds) -> Computed | None:
    """What was last computed here for the member's same response and thresholds, if anything."""
    c = tracked.computed
    if isinstance(c, Computed) and c.basis[0] == tracked.response and c.basis[1] == thresholds:
        return c
    return None


def recompute_group(
    group: Sequence[Tracked], thresholds: ScoringThresholds, models: ModelBook = _NO_MODELS
) -> list[Revised]:
    """Recompute every member of one episode + instrument group; revise those whose content changed.

    An ORS, PHQ-9 or GAD-7 member at session index s >= 2 (its place among the group's scored members)
    carries the expected band of the model it is pinned to (models.model_for): the current model when
    it is first published, that same version on every later revision."""
    ordered = sorted(group, key=lambda t: t.response.order)
    # (member, its score if computed now, its primary score)
    scored: list[tuple[Tracked, Score | None, float | None]] = []
    out: list[Revised] = []
    for tracked in ordered:
        known = _known(tracked, thresholds)
        if known is not None:
            scored.append((tracked, None, known.primary))
            continue
        try:
            now = score(tracked.response.instrument, tracked.response.items, thresholds=thresholds)
        except UnscorableResponse:
            # Cannot happen for a version accepted under the same rules; left as published, not crashed on.
            out.append(Revised(tracked, None))
            continue
        scored.append((tracked, now, now.primary))
    # The intake: the first member with a primary score, as (response_id, score).
    intake = next(((t.response.response_id, p) for t, _, p in scored if p is not None), None)
    alliance: list[tuple[str, float]] = []  # (response_id, score) of the client-rated series so far
    index = 0  # session index: the place among the scored members, 1 = the intake
    for tracked, result, primary in scored:
        r = tracked.response
        in_series = r.instrument in ALLIANCE_INSTRUMENTS and r.respondent == "client" and primary is not None
        index += primary is not None
        model = None
        if r.instrument in TRAJECTORY_INSTRUMENTS:
            model = models.model_for(r.instrument, revision=tracked.revision, pinned=tracked.trajectory)
        at = (model.version, index) if model is not None and index >= 2 and primary is not None else None
        basis = _basis(
            tracked, thresholds, intake, alliance if in_series else None, thresholds.series_window, at
        )
        known = tracked.computed
        if isinstance(known, Computed) and known.basis == basis and known.digest == tracked.fingerprint:
            out.append(Revised(tracked, None))
        else:
            if result is None:
                result = score(r.instrument, r.items, thresholds=thresholds)
            change = None
            if intake is not None and primary is not None:
                change = intake_change(r.instrument, intake, primary, thresholds)
            series = None
            if in_series:
                assert primary is not None
                series = alliance_context(r.series_key, alliance, primary, thresholds, r.instrument)
            band = None
            if model is not None and at is not None and intake is not None:
                band = expected_band(model, intake[1], index)
            pin = model.version if model is not None else None
            out.append(_revise(tracked, result, change, series, basis, band, pin))
        if in_series:
            assert primary is not None
            alliance.append((r.response_id, primary))
    return out


def intake_change(
    instrument: str, intake: tuple[str, float], value: float, thresholds: ScoringThresholds
) -> ChangeFromIntake | None:
    """Change of `value` from the intake `(response_id, score)`; None for instruments without a rule."""
    intake_response_id, intake_score = intake
    found = change_from_intake(instrument, intake_score, value, thresholds)
    if found is None:
        return None
    return ChangeFromIntake(
        intake_response_id=intake_response_id,
        intake_score=found.intake_score,
        change=found.change,
        reliable_improvement=found.reliable_improvement,
        reliable_deterioration=found.reliable_deterioration,
        threshold=found.threshold,
    )


def expected_band(model: TrajectoryModel, intake_score: float, session_index: int) -> ExpectedBand:
    """The model's expected band at this session for this intake score."""
    band = expected(model, intake_score, session_index)
    return ExpectedBand(
        session_index=session_index,
        median=band.median,
        low=band.low,
        high=band.high,
        quantiles=model.quantiles,
        model_version=model.version,
        model_fitted_at=model.fitted_at,
        model_episodes=model.episodes,
    )


def alliance_context(
    series_key: str,
    earlier: Sequence[tuple[str, float]],
    value: float,
    thresholds: ScoringThresholds,
    instrument: str,
) -> SeriesContext:
    """Where `value` sits in its alliance series after the `earlier` `(response_id, score)` points."""
    window = thresholds.series_window
    ctx = context_for(
        [s for _, s in earlier],
        value,
        sd_floor=thresholds.sd_floor(instrument),
        window=window,
        k_min=thresholds.series_k_min,
    )
    return SeriesContext(
        series_key=series_key,
        score=ctx.score,
        position=len(earlier) + 1,
        earlier_count=ctx.earlier_count,
        earlier_response_ids=[rid for rid, _ in earlier[-window:]],
        mu=ctx.mu,
        sd_within=ctx.sd_within,
        sd_eff=ctx.sd_eff,
        drop=ctx.drop,
    )


def _revise(
    tracked: Tracked,
    result: Score,
    change: ChangeFromIntake | None,
    series: SeriesContext | None,
    basis: tuple[Any, ...],
    band: ExpectedBand | None = None,
    pin: str | None = None,
) -> Revised:
    r = tracked.response
    revision = tracked.revision + 1
    rule_versions = {result.rule_id: result.rule_version}
    if change is not None:
        rule_versions["reliable-change"] = RULE_VERSIONS["reliable-change"]
    event = MeasureScored(
        event_id=measure_event_id(r.source, r.response_id, revision),
        occurred_at=r.occurred_at,
        source=r.source,
        source_event_id=r.source_event_id,
        clinic_id=r.clinic_id,
        client_ref=r.client_ref,
        episode_id=r.episode_id,
        response_id=r.response_id,
        revision=revision,
        status=r.status,
        instrument=r.instrument,
        respondent=r.respondent,
        clinician_id=r.clinician_id,
        appointment_id=r.appointment_id,
        session_at=r.session_at,
        scores=dict(result.values),
        change=change,
        series=series,
        expected=band,
        rule_versions=rule_versions,
        superseded=revision > 1,
    )
    digest = fingerprint(event)
    computed = Computed(basis, digest, result.primary)
    if digest == tracked.fingerprint:
        return Revised(replace(tracked, computed=computed), None)
    revised = replace(
        tracked,
        revision=revision,
        fingerprint=digest,
        scores=dict(result.values),
        trajectory=pin if tracked.revision == 0 else tracked.trajectory,
        computed=computed,
    )
    return Revised(revised, event)


@dataclass(frozen=True, slots=True)
class Settled:
    """What a batch changes: the events to publish (in order) and the responses to write."""

    events: list[MeasureScored]
    changed: dict[str, Tracked]
    book: dict[str, Tracked]
    # The primary scores in session order (what a trajectory fit reads once the episode is closed) of
    # each ORS, PHQ-9 or GAD-7 group with a changed member, or that an amendment moved a member out of.
    series: dict[str, tuple[float, ...]] = field(default_factory=dict)


def settle(
    applied: Applied,
    book: Mapping[str, Tracked],
    thresholds_for: Callable[[str], ScoringThresholds],
    models: ModelBook = _NO_MODELS,
) -> Settled:
    """Recompute every touched group of `book` (applied's book plus any group members read since).

    Events come out in session order (then group, then response), so a consumer of one client's
    partition sees a late response before the later points it revised.
    """
    out = dict(book)
    changed: dict[str, Tracked] = {
        v.key: out[v.key] for v, verdict in applied.verdicts if verdict in ("new", "replaced")
    }
    events: list[MeasureScored] = []
    series: dict[str, tuple[float, ...]] = {}
    named = {v.series_key for v, _ in applied.verdicts}  # a touched group not named lost a member
    for series_key, group in sorted(groups(out, applied.touched).items()):
        if not group:  # its only response moved to another episode
            if series_key.rsplit(":", 1)[-1] in TRAJECTORY_INSTRUMENTS:
                series[series_key] = ()
            continue
        revisions = recompute_group(group, thresholds_for(group[0].response.clinic_id), models)
        for revised in revisions:
            key = revised.tracked.response.key
            out[key] = revised.tracked
            if revised.event is not None or key in changed:
                changed[key] = revised.tracked
            if revised.event is not None:
                events.append(revised.event)
        if group[0].response.instrument in TRAJECTORY_INSTRUMENTS and (
            series_key not in named or any(r.tracked.response.key in changed for r in revisions)
        ):
            series[series_key] = primaries(r.tracked for r in revisions)
    events.sort(key=lambda e: (e.session_at, e.episode_id, e.instrument, e.source, e.response_id))
    return Settled(events, changed, out, series)


def primaries(members: Iterable[Tracked]) -> tuple[float, ...]:
    """The primary scores of a recomputed group's members, in session order."""
    found = [
        (t.response.order, t.computed.primary)
        for t in members
        if isinstance(t.computed, Computed) and t.computed.primary is not None
    ]
    return tuple(p for _, p in sorted(found))


def run_batch(
    book: Mapping[str, Tracked],
    incoming: Iterable[ResponseVersion],
    thresholds_for: Callable[[str], ScoringThresholds],
    models: ModelBook = _NO_MODELS,
) -> tuple[Applied, Settled]:
    """Apply a batch to a book that already holds every member of the groups it touches, and settle it."""
    applied = apply_versions(book, incoming)
    return applied, settle(applied, applied.book, thresholds_for, models)
