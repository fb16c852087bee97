"""The equity view is fold-safe: the same rows whatever order the care events arrive in (a referral
after the client's first sessions, a changed language), after replays, and through the service's
own incremental path (pipeline.fold + the materializer over an in-memory store, batch by batch),
which recomputes only the cells a batch's changes reach."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attune_reporting.adapters.codec import ClientIndex, decode_parts
from attune_reporting.domain.access import Audience
from attune_reporting.domain.cells import Cell
from attune_reporting.domain.episodes import EpisodeSummary
from attune_reporting.domain.equity import BY, equity_rows
from attune_reporting.domain.facts import AlertFact, CareFact, MeasureFact
from attune_reporting.domain.ledger import Ledger
from attune_reporting.materializer import Materializer
from attune_reporting.pipeline import fold
from attune_reporting.ports import DataStore, Mark
from attune_reporting.settings import ReportingSettings
from attune_shared.events import ClientReferred
from tests.unit.reporting.builders import Stream, client_of, ref
from tests.unit.reporting.equity_scenario import build_equity
from tests.unit.reporting.scenario import N, S

MONTHS = ["2026-01", "2026-02"]
ADMIN = Audience(None, None)
OPS = Audience(5, None)


def answers(cells: list[Cell[Any]]) -> list[list[dict[str, Any]]]:
    out = []
    for audience in (ADMIN, OPS):
        for clinic_id in (N, S, None):
            for by in BY:
                out.append(equity_rows(cells, months=MONTHS, by=by, audience=audience, clinic_id=clinic_id))
    return out


def ledger_answers(events: Iterable[Any]) -> list[list[dict[str, Any]]]:
    ledger = Ledger()
    ledger.fold_all(events)
    return answers(ledger.cells())


BASELINE = ledger_answers(build_equity())


class MemoryStore(DataStore):
    """reporting's DataStore in memory: facts per cell, marks, a lease, summaries and the read model."""

    name = "memory"

    def __init__(self) -> None:
        self.facts: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(dict)
        self.dirty: dict[str, Mark] = {}
        self.summaries: dict[str, dict[str, EpisodeSummary]] = defaultdict(dict)
        self.indexes: dict[str, ClientIndex] = {}
        self.bodies: dict[tuple[str, str], tuple[bytes, bytes]] = {}
        self.owner: str | None = None

    async def insert_care(self, *, clinic_id: str, month: str, facts: Sequence[CareFact]) -> tuple[int, int]:
        cell = self.facts["care", clinic_id, month]
        new = [f for f in facts if f.fact_id not in cell]
        for f in new:
            cell.setdefault(f.fact_id, f)
        return len({f.fact_id for f in new}), len(facts) - len({f.fact_id for f in new})

    async def load_measures(
        self, *, clinic_id: str, month: str, ids: Iterable[str]
    ) -> dict[str, MeasureFact]:
        cell = self.facts["measures", clinic_id, month]
        return {i: cell[i] for i in ids if i in cell}

    async def load_alerts(self, *, clinic_id: str, month: str, ids: Iterable[str]) -> dict[str, AlertFact]:
        cell = self.facts["alerts", clinic_id, month]
        return {i: cell[i] for i in ids if i in cell}

    async def claim_new(
        self, *, kind: str, clinic_id: str, month: str, facts: Sequence[MeasureFact | AlertFact]
    ) -> set[str]:
        cell = self.facts[kind, clinic_id, month]
        clashing = {f.fact_id for f in facts if f.fact_id in cell}
        for f in facts:
            cell.setdefault(f.fact_id, f)
        return clashing

    async def replace(
        self, *, kind: str, clinic_id: str, month: str, facts: Sequence[MeasureFact | AlertFact]
    ) -> None:
        for f in facts:
            self.facts[kind, clinic_id, month][f.fact_id] = f

    async def mark(self, *, marks: Sequence[Mark]) -> None:
        for m in marks:
            self.dirty[m.mark_id] = m

    async def keep_rejected(self, *, docs: Sequence[dict[str, Any]]) -> None:
        raise AssertionError("nothing is rejected here")

    async def marks(self, *, limit: int = 500) -> list[Mark]:
        return list(self.dirty.values())[:limit]

    async def clear(self, *, mark_ids: Sequence[str]) -> None:
        for i in mark_ids:
            self.dirty.pop(i, None)

    async def pending(self) -> int:
        return len(self.dirty)

    async def try_lock(self, *, owner: str, lease_s: float) -> bool:
        if self.owner in (None, owner):
            self.owner = owner
            return True
        return False

    async def renew_lock(self, *, owner: str, lease_s: float) -> None:
        assert self.owner == owner

    async def unlock(self, *, owner: str) -> None:
        self.owner = None

    async def cell_facts(
        self, *, clinic_id: str, month: str
    ) -> tuple[list[CareFact], list[MeasureFact], list[AlertFact]]:
        care, measures, alerts = (
            list(self.facts[kind, clinic_id, month].values()) for kind in ("care", "measures", "alerts")
        )
        return care, measures, alerts

    async def episode_facts(
        self, *, clinic_id: str, episode_ids: Sequence[str]
    ) -> dict[str, tuple[list[CareFact], list[MeasureFact], list[AlertFact]]]:
        out: dict[str, tuple[list[CareFact], list[MeasureFact], list[AlertFact]]] = {}
        for (kind, clinic, _), cell in sorted(self.facts.items()):
            for f in cell.values() if clinic == clinic_id else ():
                if f.episode_id in episode_ids:
                    out.setdefault(f.episode_id, ([], [], []))[
                        ("care", "measures", "alerts").index(kind)
                    ].append(f)
        return out

    async def episodes(self, *, clinic_id: str) -> dict[str, EpisodeSummary]:
        return dict(self.summaries[clinic_id])

    async def save_episodes(
        self, *, clinic_id: str, changed: Sequence[EpisodeSummary], removed: Sequence[str]
    ) -> None:
        for s in changed:
            self.summaries[clinic_id][s.episode_id] = s
        for i in removed:
            self.summaries[clinic_id].pop(i, None)

    async def client_index(self, *, clinic_id: str) -> ClientIndex:
        return ClientIndex(self.indexes.get(clinic_id, ClientIndex()).refs)

    async def save_client_index(self, *, clinic_id: str, index: ClientIndex, stored: int) -> None:
        self.indexes[clinic_id] = ClientIndex(index.refs)

    async def write_cell(self, *, clinic_id: str, month: str, body: bytes, network_body: bytes) -> None:
        self.bodies[clinic_id, month] = (body, network_body)

    async def clinic_bodies(self, *, clinic_id: str) -> list[tuple[str, bytes]]:
        return [(m, b) for (c, m), (b, _) in sorted(self.bodies.items()) if c == clinic_id]

    async def network_bodies(self, *, first: str, last: str) -> list[tuple[str, str, bytes]]:
        return [(c, m, nb) for (c, m), (_, nb) in sorted(self.bodies.items()) if first <= m <= last]

    def cells(self) -> list[Cell[Any]]:
        """The read model as the clinic endpoint reads it (all parts, decoded)."""
        return [Cell(c, m, decode_parts(b)) for (c, m), (b, _) in sorted(self.bodies.items())]


async def _served(batches: Iterable[Sequence[Any]]) -> list[list[dict[str, Any]]]:
    store = MemoryStore()
    materializer = Materializer(ReportingSettings())
    for batch in batches:
        await fold(store, batch)
        await materializer.run(store)
    return answers(store.cells())


def served(batches: Iterable[Sequence[Any]]) -> list[list[dict[str, Any]]]:
    return asyncio.run(_served(list(batches)))


def interleave(events: list[Any], rnd: random.Random) -> list[Any]:
    """A random merge of the per-client sequences (each client's own order kept: Kafka's guarantee)."""
    queues: dict[str, list[Any]] = defaultdict(list)
    for e in events:
        queues[client_of(e)].append(e)
    out: list[Any] = []
    while queues:
        client = rnd.choice(sorted(queues))
        out.append(queues[client].pop(0))
        if not queues[client]:
            del queues[client]
    return out


def batched(events: list[Any], rnd: random.Random) -> list[list[Any]]:
    out, i = [], 0
    while i < len(events):
        n = rnd.randint(1, 12)
        out.append(events[i : i + n])
        i += n
    return out


def test_the_service_path_in_one_batch_matches_the_reference_fold() -> None:
    assert served([build_equity()]) == BASELINE


@pytest.mark.parametrize("seed", range(6))
def test_the_service_path_batch_by_batch_in_any_client_interleaving(seed: int) -> None:
    rnd = random.Random(seed)
    events = interleave(build_equity(), rnd)
    assert served(batched(events, rnd)) == BASELINE


def _referrals_last(events: list[Any], client: str | None = None) -> list[Any]:
    """The referrals (of one client, or of all) moved after every other event."""

    def late(e: Any) -> bool:
        return isinstance(e, ClientReferred) and (client is None or e.client_ref == ref(client))

    return [e for e in events if not late(e)] + [e for e in events if late(e)]


@pytest.mark.parametrize("client", [None, "A", "B", "C", "E", "F"])
def test_referrals_that_arrive_after_everything_else_reattribute_every_month(client: str | None) -> None:
    """The worst case for the incremental path: a client's language, interpreter need and age band
    become known only after all its sessions, responses, closures and alerts were materialized as
    `unknown` (C's late referral is dated January: its February session must be recomputed too)."""
    events = _referrals_last(build_equity(), client)
    assert served([[e] for e in events]) == BASELINE


def test_a_changed_language_counts_under_the_latest_whatever_the_order() -> None:
    events = build_equity()
    es, pt = (e for e in events if isinstance(e, ClientReferred) and e.preferred_language in ("es", "pt"))
    for a, b in ((pt, es), (es, pt)):  # the later referral (by occurred_at) wins in either order
        reordered = [e for e in events if e not in (a, b)] + [a, b]
        assert served([[e] for e in reordered]) == BASELINE
        assert ledger_answers(reordered) == BASELINE


def test_replays_change_nothing() -> None:
    events = build_equity()
    assert ledger_answers(events + events) == BASELINE
    rnd = random.Random(7)
    # every batch delivered twice, and the whole stream again at the end (a rebuild's catch-up)
    batches = batched(events, rnd)
    assert served([b for batch in batches for b in (batch, batch)] + [events]) == BASELINE


@settings(max_examples=25, deadline=None)
@given(st.randoms(use_true_random=False))
def test_any_full_shuffle_gives_the_same_equity_rows(rnd: random.Random) -> None:
    """Stronger than Kafka's per-client order: the fold's merge rules are commutative."""
    events = build_equity()
    rnd.shuffle(events)
    assert ledger_answers(events) == BASELINE


def test_an_alert_in_a_month_without_other_facts_is_reattributed_by_a_late_referral() -> None:
    """A swept dropout-risk alert for C in March, when C had no session: the episode summary keeps
    its alerts' months, so C's late referral recomputes March too."""
    events = build_equity()
    s = Stream(source="ehr-sweep")
    late: dict[str, Any] = {
        "alert_id": "al-9",
        "clinic": N,
        "client": "C",
        "episode": "epC",
        "clinician": "c-2",
    }
    late |= {"rule": "alliance.rupture", "severity": "high", "raised": "2026-03-10 09:00"}
    s.alert("alert.raised", "2026-03-10 09:00", **late)
    events = _referrals_last(events + s.events, "C")
    ledger = Ledger()
    ledger.fold_all(events)
    months = ["2026-01", "2026-02", "2026-03"]

    def rows(cells: list[Cell[Any]]) -> list[dict[str, Any]]:
        return equity_rows(cells, months=months, by="language", audience=ADMIN, clinic_id=N)

    expected = rows(ledger.cells())
    assert next(r for r in expected if r["value"] == "en")["ruptures_raised"] == 2  # al-1 and al-9

    async def run() -> list[dict[str, Any]]:
        store = MemoryStore()
        materializer = Materializer(ReportingSettings())
        for e in events:
            await fold(store, [e])
            await materializer.run(store)
        return rows(store.cells())

    assert asyncio.run(run()) == expected
