"""measures' batch pipeline: read responses, keep the winning version, recompute the touched series, publish.

Effects are made durable in an order that makes a crash anywhere safe to replay: every changed measure
(and every dead letter) is published first, with an id derived from `(source, response_id, revision)`,
then the responses are written, and only then does the caller commit the offsets. Consumed again, the
same input finds either the old store (and recomputes the same revisions, so the same ids) or the new
one (and then nothing has changed, so nothing is published).
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from faststream.kafka import KafkaBroker

from attune_measures import metrics
from attune_measures.dead_letters import MeasuresDeadLetter, Rejected, dead_letter, read_record, unscorable
from attune_measures.domain.clinic_thresholds import ThresholdBook
from attune_measures.domain.revisions import settle
from attune_measures.domain.scoring import UnscorableResponse, score
from attune_measures.domain.trajectories import EpisodeClosure, ModelBook
from attune_measures.domain.versions import ResponseVersion, Tracked, Verdict, apply_versions
from attune_measures.ports import Loaded, ResponseStore
from attune_measures.trajectory_models import TrajectoryModels
from attune_shared.events import DeadLetterOrigin, EpisodeClosed, MeasureScored, ResponseSubmitted, record_key
from attune_shared.kafka import Inbound, OutRecord, publish_all
from attune_shared.logging import get_logger
from attune_shared.settings import ServiceSettings
from attune_shared.topics import Topics

log = get_logger("attune_measures.pipeline")


@dataclass
class BatchResult:
    """What one batch did."""

    verdicts: Tally[Verdict] = field(default_factory=Tally)
    published: list[MeasureScored] = field(default_factory=list)
    dead: list[MeasuresDeadLetter] = field(default_factory=list)
    written: int = 0
    forwarded: int = 0
    closed: list[EpisodeClosure] = field(default_factory=list)


def runs(
    items: list[ResponseVersion | OutRecord],
) -> list[tuple[list[ResponseVersion], OutRecord | None]]:
    """The responses before each forwarded care event (and after the last one), in order."""
    out: list[tuple[list[ResponseVersion], OutRecord | None]] = []
    run: list[ResponseVersion] = []
    for item in items:
        if isinstance(item, OutRecord):
            out.append((run, item))
            run = []
        else:
            run.append(item)
    if run:
        out.append((run, None))
    return out


def waves(
    versions: list[ResponseVersion], prior: Mapping[str, str] | None = None
) -> list[list[ResponseVersion]]:
    """Split versions, in order, so that no wave holds two versions that touch one group (or one
    response). A version touches its own group and, when it moves its response out of another one
    (an amendment naming another episode), that group too: `prior` is the group each stored
    response is in before the run (the book's index)."""
    out: list[list[ResponseVersion]] = []
    seen: list[set[str]] = []
    group_of = dict(prior or {})  # where each response is, as the run goes
    for v in versions:
        touched = {v.series_key, v.key}
        if (before := group_of.get(v.key)) is not None:
            touched.add(before)
        group_of[v.key] = v.series_key
        # The first wave after every wave that already names one of them.
        i = 0
        for j in range(len(out) - 1, -1, -1):
            if touched & seen[j]:
                i = j + 1
                break
        if i == len(out):
            out.append([])
            seen.append(set())
        out[i].append(v)
        seen[i].update(touched)
    return out


def series_of(event: MeasureScored) -> str:
    """The group a published measure belongs to (ResponseVersion.series_key)."""
    return f"{event.episode_id}:{event.instrument}"


def wave_causes(wave: list[ResponseVersion], arrival: dict[int, int], index: SeriesIndex) -> dict[str, int]:
    """Each group a wave recomputes, with the place in its run of the version that makes it recompute:
    the version's own group and the group an amendment moves it out of (`waves` keeps versions that
    touch one group in different waves, so each group has one cause)."""
    cause: dict[str, int] = {}
    for v in wave:
        at = arrival[id(v)]
        cause[v.series_key] = at
        old = index.series_of.get(v.key)
        if old is not None:
            cause[old] = at
    return cause


class SeriesIndex:
    """Which keys of a batch's book belong to which group, kept in step with the book."""

    def __init__(self, book: dict[str, Tracked]) -> None:
        self.series_of: dict[str, str] = {}
        self.keys: dict[str, set[str]] = {}
        for key, tracked in book.items():
            self._put(key, tracked.response.series_key)

    def _put(self, key: str, series: str) -> None:
        old = self.series_of.get(key)
        if old == series:
            return
        if old is not None:
            self.keys[old].discard(key)
        self.series_of[key] = series
        self.keys.setdefault(series, set()).add(key)

    def members(self, book: dict[str, Tracked], series: set[str]) -> dict[str, Tracked]:
        """The part of the book in these groups."""
        return {k: book[k] for s in series for k in self.keys.get(s, ())}

    def part(self, book: dict[str, Tracked], wave: list[ResponseVersion]) -> dict[str, Tracked]:
        """What applying the wave reads: its responses and every member of their groups."""
        part = self.members(book, {v.series_key for v in wave})
        part.update((v.key, book[v.key]) for v in wave if v.key in book)
        return part

    def merge(self, book: dict[str, Tracked], changed: dict[str, Tracked]) -> None:
        """Write a part back into the book."""
        book.update(changed)
        for key, tracked in changed.items():
            self._put(key, tracked.response.series_key)


class MeasuresPipeline:
    """Processes batches of response records; safe to run again on the same batch."""

    def __init__(
        self,
        settings: ServiceSettings,
        broker: KafkaBroker,
        store: ResponseStore,
        thresholds: ThresholdBook | None = None,
        trajectories: TrajectoryModels | None = None,
    ) -> None:
        self.broker = broker
        self.store = store
        self.thresholds = thresholds or ThresholdBook()
        self.trajectories = trajectories
        self.out_measures = settings.topic(Topics.MEASURES)
        self.out_dlq = settings.topic(Topics.MEASURES_DLQ)
        self._last_models: tuple[tuple[object, ...], ModelBook] | None = None

    def _models_for(self, records: list[Inbound]) -> ModelBook:
        """The trajectory models a batch is scored with (the same for every attempt at one batch)."""
        if self.trajectories is None:
            return ModelBook()
        first = records[0] if records else None
        batch = (
            (len(records),) if first is None else (first.topic, first.partition, first.offset, len(records))
        )
        if self._last_models is not None and self._last_models[0] == batch:
            return self._last_models[1]
        self._last_models = (batch, self.trajectories.book)
        return self._last_models[1]

    def read(self, rec: Inbound, closed: list[EpisodeClosure] | None = None) -> ResponseVersion | OutRecord:
        """The response version in one record, the care event to forward, or Rejected (a closed
        episode is also added to `closed`)."""
        event = read_record(rec.value)
        if not isinstance(event, ResponseSubmitted):
            if isinstance(event, EpisodeClosed) and closed is not None:
                closed.append(
                    EpisodeClosure(
                        event.episode_id, event.clinic_id, event.closed_on, event.reason, event.occurred_at
                    )
                )
            return OutRecord(self.out_measures, rec.key, rec.value or b"")
        try:
            score(event.instrument, event.items, thresholds=self.thresholds.for_clinic(event.clinic_id))
        except UnscorableResponse as exc:
            raise unscorable(exc) from None
        return ResponseVersion.from_event(event)

    async def process(self, records: list[Inbound]) -> BatchResult:
        """Make every record's effect durable exactly once (see module docstring)."""
        started = time.monotonic()
        now = datetime.now(UTC)
        result = BatchResult()
        items: list[ResponseVersion | OutRecord] = []
        for rec in records:
            try:
                items.append(self.read(rec, result.closed))
            except Rejected as exc:
                origin = DeadLetterOrigin(
                    topic=rec.topic,
                    partition=rec.partition,
                    offset=rec.offset,
                    key=record_key(rec.key),
                )
                result.dead.append(dead_letter(rec.value, origin, exc, now))

        versions = [i for i in items if isinstance(i, ResponseVersion)]
        # One query for the batch: the responses named and every member of their groups.
        queried = {v.series_key for v in versions}
        loaded = await self.store.load(keys=(v.key for v in versions), series_keys=queried)
        state = Loaded(dict(loaded.book), dict(loaded.versions))
        # The models as the batch starts: a refit meanwhile applies from the next batch. A batch run
        # again in this process (a retry after a conflict, its records maybe already published) uses
        # the models its first attempt used, so a refit in between cannot publish another band
        # under the same event ids.
        models = self._models_for(records)
        series: dict[str, tuple[float, ...]] = {}
        changed: dict[str, Tracked] = {}
        verdicts: list[tuple[ResponseVersion, Verdict]] = []
        out: list[OutRecord] = []
        # Care events are forwarded where they stood, so alerts reads each client's scores and
        # sessions in the EHR's order. The responses between two of them are settled wave by wave,
        # each wave holding at most one version per series, so the output is the same as
        # record-at-a-time processing whatever the batch boundaries: an original and its amendment
        # in one batch still publish the original first, as in two batches.
        # Each wave works on the members of its own groups only (a backfill's batch holds hundreds
        # of waves and thousands of members): the index finds them without scanning the book.
        index = SeriesIndex(state.book)
        for run, forward in runs(items):
            # Waves reorder a run (a later version of another group joins an earlier wave; a group's
            # events come out in session and instrument order), so each event is published where the
            # version that caused it stood in the run, as record-at-a-time processing would: a
            # session's WAI-SR that came before its SRS is published before it in every batching.
            caused: list[tuple[int, int, MeasureScored]] = []
            arrival = {id(v): i for i, v in enumerate(run)}
            for wave in waves(run, index.series_of):
                cause = wave_causes(wave, arrival, index)
                applied = apply_versions(index.part(state.book, wave), wave)
                index.merge(state.book, applied.book)
                missing = applied.touched - queried
                if missing:  # an amendment moved a response out of a group not yet read
                    before = set(state.book)
                    state.merge(await self.store.load(series_keys=missing))
                    index.merge(state.book, {k: state.book[k] for k in state.book.keys() - before})
                    queried |= missing
                members = index.members(state.book, applied.touched)
                if self.trajectories is not None:  # the older versions members are pinned to
                    models = await self.trajectories.covering(models, members.values())
                settled = settle(applied, members, self.thresholds.for_clinic, models)
                series.update(settled.series)
                index.merge(state.book, settled.book)
                caused.extend(
                    (cause.get(series_of(e), len(run)), len(caused) + n, e)
                    for n, e in enumerate(settled.events)
                )
                changed.update(settled.changed)
                verdicts.extend(applied.verdicts)
            events = [e for _, _, e in sorted(caused, key=lambda c: (c[0], c[1]))]
            result.published.extend(events)
            out.extend(
                OutRecord(self.out_measures, e.kafka_key.encode(), e.model_dump_json().encode())
                for e in events
            )
            if forward is not None:
                out.append(forward)
                result.forwarded += 1

        out += [
            OutRecord(
                self.out_dlq, d.origin.key.encode() if d.origin.key else None, d.model_dump_json().encode()
            )
            for d in result.dead
        ]
        await publish_all(self.broker, out)
        if changed:
            await self.store.save(
                changed=list(changed.values()), versions=state.versions, book=state.book, series=series
            )
        if result.closed and self.trajectories is not None:
            await self.trajectories.record_closures(result.closed)
        if result.dead:
            await self.store.keep_dead_letters(letters=result.dead)
        result.written = len(changed)

        self._count(verdicts, result, records)
        result.verdicts.update(verdict for _, verdict in verdicts)
        log.info(
            "batch_done",
            records=len(records),
            **{k: n for k, n in result.verdicts.items()},
            dead_lettered=len(result.dead),
            published=len(result.published),
            forwarded=result.forwarded,
            written=len(changed),
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return result

    @staticmethod
    def _count(
        verdicts: list[tuple[ResponseVersion, Verdict]], result: BatchResult, records: list[Inbound]
    ) -> None:
        for version, verdict in verdicts:
            if verdict in ("new", "replaced"):
                metrics.SCORED.labels(version.instrument).inc()
                if version.status == "amended":
                    metrics.AMENDED.labels(version.instrument).inc()
            else:
                metrics.IGNORED.labels(verdict).inc()
        for event in result.published:
            metrics.PUBLISHED.labels(event.instrument).inc()
        for dead in result.dead:
            metrics.REJECTED.labels(dead.error.code).inc()
            log.warning(
                "dead_lettered",
                dlq_id=dead.dlq_id,
                code=dead.error.code,
                message=dead.error.message,
                partition=dead.origin.partition,
                offset=dead.origin.offset,
            )
        now_ms = time.time() * 1000
        for rec in records:
            if rec.timestamp_ms:
                metrics.LATENCY.observe(max(0.0, (now_ms - rec.timestamp_ms) / 1000))
