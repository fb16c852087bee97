"""Folding is idempotent and order-free: twice, duplicated, or interleaved differently, same figures."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pytest

from attune_reporting.adapters.codec import ClientIndex, decode_parts, encode_parts
from attune_reporting.domain.access import Audience
from attune_reporting.domain.cells import Cell, cell_clients
from attune_reporting.domain.ledger import Ledger
from attune_reporting.domain.report import clinic_rows, network_rows
from tests.unit.reporting.builders import client_of
from tests.unit.reporting.scenario import N, build

MONTHS = ["2026-01", "2026-02"]
ADMIN = Audience(None, None)


def report(cells: list[Cell[Any]]) -> list[list[dict[str, Any]]]:
    out = [
        clinic_rows(cells, clinic_id=N, months=MONTHS, by=by, audience=ADMIN)
        for by in ("month", "clinician", "modality")
    ]
    out += [
        network_rows(cells, months=MONTHS, by=by, audience=ADMIN) for by in ("clinic", "modality", "month")
    ]
    return out


def fold(events: list[Any]) -> Ledger:
    ledger = Ledger()
    ledger.fold_all(events)
    return ledger


def interleave(events: list[Any], rnd: random.Random) -> list[Any]:
    """A random merge of the per-client sequences: each client's own order kept (Kafka's guarantee)."""
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


@pytest.fixture(scope="module")
def baseline() -> tuple[Ledger, list[list[dict[str, Any]]]]:
    ledger = fold(build())
    return ledger, report(ledger.cells())


def test_folding_the_same_events_twice_changes_nothing(baseline: tuple[Ledger, Any]) -> None:
    ledger, rows = baseline
    twice = fold(build() + build())
    assert (twice.care, twice.measures, twice.alerts) == (ledger.care, ledger.measures, ledger.alerts)
    assert report(twice.cells()) == rows
    again = fold(build())
    assert not any(again.fold(e) for e in build())  # a second fold of each event reports "no change"


@pytest.mark.parametrize("seed", range(12))
def test_any_per_client_interleaving_gives_the_same_figures(baseline: tuple[Ledger, Any], seed: int) -> None:
    _, rows = baseline
    rnd = random.Random(seed)
    events = interleave(build(), rnd)
    # ... with redeliveries: a random tenth of the events again, later in the stream
    for e in rnd.sample(events, len(events) // 10):
        events.insert(rnd.randrange(events.index(e) + 1, len(events) + 1), e)
    assert report(fold(events).cells()) == rows


@pytest.mark.parametrize("seed", range(4))
def test_even_a_full_shuffle_gives_the_same_facts(baseline: tuple[Ledger, Any], seed: int) -> None:
    """Stronger than Kafka's guarantee: the merge rules are commutative (older revisions and older
    alert transitions lose whatever order they come in)."""
    ledger, rows = baseline
    events = build()
    random.Random(seed).shuffle(events)
    shuffled = fold(events)
    assert (shuffled.care, shuffled.measures, shuffled.alerts) == (
        ledger.care,
        ledger.measures,
        ledger.alerts,
    )
    assert report(shuffled.cells()) == rows


def test_stored_cells_give_the_same_rows_whatever_the_client_index_order(
    baseline: tuple[Ledger, Any],
) -> None:
    ledger, rows = baseline
    cells = ledger.cells()
    for order in (sorted, lambda refs: sorted(refs, reverse=True)):
        indexes: dict[str, ClientIndex] = {}
        for cell in cells:
            indexes.setdefault(cell.clinic_id, ClientIndex()).add(order(cell_clients(cell)))
        stored = [
            Cell(c.clinic_id, c.month, decode_parts(encode_parts(c.parts, indexes[c.clinic_id])))
            for c in cells
        ]
        assert report(stored) == rows
