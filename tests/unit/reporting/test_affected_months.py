"""The materializer recomputes only the months an episode's change reaches (materializer._affected),
and those are all the months whose figures change.

A new session most often adds one appointment to its episode: only the months of the facts that
borrow that appointment's modality (a measure of the session, a cancellation without a modality) are
recomputed, not every month of the episode. The stories below put a borrower in a month nothing
else of the batch touches (a session late on the 31st whose attendance is recorded after midnight,
a measure that arrives before the attendance), or change the episode's main modality, which its
alerts in every month count under in the equity view. Each is served batch by batch through
pipeline.fold and the materializer and compared with the reference fold of everything at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from attune_reporting.domain.access import Audience
from attune_reporting.domain.cells import Cell
from attune_reporting.domain.episodes import EpisodeSummary
from attune_reporting.domain.equity import BY, equity_rows
from attune_reporting.domain.ledger import Ledger
from attune_reporting.domain.report import clinic_rows
from attune_reporting.materializer import Materializer, _affected
from attune_reporting.pipeline import fold
from attune_reporting.settings import ReportingSettings
from tests.unit.reporting.builders import Stream
from tests.unit.reporting.equity_scenario import referral
from tests.unit.reporting.test_equity_fold import MemoryStore

N = "north-01"
MONTHS = ["2025-12", "2026-01", "2026-02", "2026-03"]
ADMIN = Audience(None, None)
WAI = {"total": 42.0, "mean": 3.5, "task": 3.5, "bond": 3.5, "goal": 3.5, "items_missing": 0}


def rows(cells: list[Cell[Any]]) -> list[Any]:
    out: list[Any] = [
        clinic_rows(cells, clinic_id=N, months=MONTHS, by=by, audience=ADMIN)
        for by in ("month", "clinician", "modality")
    ]
    out += [equity_rows(cells, months=MONTHS, by=by, audience=ADMIN, clinic_id=N) for by in BY]
    return out


def reference(batches: Sequence[Sequence[Any]]) -> list[Any]:
    ledger = Ledger()
    ledger.fold_all([e for batch in batches for e in batch])
    return rows(ledger.cells())


def served(batches: Sequence[Sequence[Any]]) -> tuple[list[Any], list[int]]:
    """The rows served after the last batch, and how many cells each batch's run recomputed."""

    async def run() -> tuple[list[Any], list[int]]:
        store = MemoryStore()
        materializer = Materializer(ReportingSettings())
        cells = []
        for batch in batches:
            await fold(store, batch)
            cells.append((await materializer.run(store)).cells)
        return rows(store.cells()), cells

    return asyncio.run(run())


def history(s: Stream) -> None:
    """Client X's episode opened in December, with in-person sessions in December and January (so
    its main modality is in person) and a referral that places it in the equity strata; and three
    other clients' episodes (so that a later run, which changes X's alone, summarizes it from its
    own facts: `episode_facts`)."""
    for other in ("Y1", "Y2", "Y3"):
        s.opened(N, other, f"ep{other}", "2026-01-02", "c-2")
    s.opened(N, "X", "epX", "2025-12-01", "c-1")
    referral(s, N, "X", "2025-12-01", {"preferred_language": "en", "interpreter_needed": False})
    for appt, when in (("x1", "2025-12-08 10:00"), ("x2", "2026-01-05 10:00"), ("x3", "2026-01-12 10:00")):
        s.attended(N, "X", "epX", appt, when, "in_person", "c-1")


def late_attendance() -> list[list[Any]]:
    """Session x4 was at 23:30 on January 31 (its WAI-SR is in January's cell); its attendance was
    recorded at 00:30 on February 1 (February's cell), in a later batch than the WAI-SR."""
    s = Stream()
    history(s)
    s.measure(N, "X", "epX", "rX4", "WAI-SR", WAI, "2026-01-31 23:30", clinician="c-1", appt="x4")
    first = list(s.events)
    s.events.clear()
    s.attended(N, "X", "epX", "x4", "2026-02-01 00:30", "video", "c-1")
    return [first, list(s.events)]


def test_a_measure_read_before_its_session_counts_under_the_session_modality_once_it_arrives() -> None:
    """Session x4 was at 23:30 on January 31 (its WAI-SR is in January's cell); its attendance was
    recorded at 00:30 on February 1 (February's cell). The WAI-SR arrives first, so January is
    first computed without its modality: the attendance must recompute January too."""
    batches = late_attendance()
    got, _ = served(batches)
    assert got == reference(batches)
    video = next(r for r in got[2] if r.get("modality") == "video")
    assert video["wai_sr_responses"] == 1  # counted under the session's modality, in January


def test_a_cancellation_without_modality_borrows_its_appointment_from_a_later_month() -> None:
    """Appointment x4 is cancelled by the client in January (no modality of its own); the schedule
    naming its modality arrives later, dated in March."""
    s = Stream()
    history(s)
    s.cancelled(N, "X", "epX", "x4", "2026-01-20 09:00", "c-1", "client")
    first = list(s.events)
    s.events.clear()
    s.scheduled(N, "X", "epX", "x4", "2026-03-20 10:00", "phone", "c-1")  # recorded Mar 13
    batches = [first, list(s.events)]
    got, _ = served(batches)
    assert got == reference(batches)


def test_a_new_main_modality_recomputes_the_alerts_of_every_month() -> None:
    """An alert raised in January counts under the episode's main modality in the equity view;
    video sessions in March make video the main modality (with the fourth, in the last batch)."""
    s = Stream()
    history(s)
    al = {"alert_id": "al-x", "clinic": N, "client": "X", "episode": "epX", "clinician": "c-1"}
    s.alert(
        "alert.raised",
        "2026-01-12 15:00",
        **al,
        rule="alliance.rupture",
        severity="high",
        raised="2026-01-12 15:00",
    )
    first = list(s.events)
    s.events.clear()
    for day in ("02", "09", "16", "23"):  # four video sessions against three in person
        s.attended(N, "X", "epX", f"v{day}", f"2026-03-{day} 10:00", "video", "c-1")
    later = list(s.events)
    batches = [first, later[:2], later[2:3], later[3:]]
    got, _ = served(batches)
    assert got == reference(batches)


def test_a_new_session_recomputes_its_own_month_only() -> None:
    """The cost the change removes: x4 in February recomputes February alone (before: December,
    January and February, every month of the episode)."""
    s = Stream()
    history(s)
    first = list(s.events)
    s.events.clear()
    s.attended(N, "X", "epX", "x4", "2026-02-02 10:00", "in_person", "c-1")
    batches = [first, list(s.events)]
    got, cells = served(batches)
    assert got == reference(batches)
    assert cells == [2, 1]


def test_a_reassigned_episode_recomputes_the_month_it_opened() -> None:
    """The opened month counts the episode under its clinician: a reassignment in February moves
    December's opening from c-1 to c-2 (the latest explicit assignment wins)."""
    s = Stream()
    history(s)
    first = list(s.events)
    s.events.clear()
    s.assigned(N, "X", "epX", "2026-02-03 09:00", "c-2")
    batches = [first, list(s.events)]
    got, _ = served(batches)
    assert got == reference(batches)
    c2 = next(r for r in got[1] if r.get("clinician_id") == "c-2")
    assert c2["episodes_opened"] == 4  # X and the three others


def test_a_run_that_stopped_before_writing_its_cells_recomputes_them_when_run_again() -> None:
    """The materializer stops (a crash, a conflict) after summarizing X's changed episode and before
    writing the cells that change reaches: its marks are still there, and the run again must see the
    same change (the summaries are saved last) and write January too."""
    batches = late_attendance()

    async def run() -> list[Any]:
        store = MemoryStore()
        materializer = Materializer(ReportingSettings())
        await fold(store, batches[0])
        await materializer.run(store)
        await fold(store, batches[1])
        write = store.write_cell

        async def stopped(**_: Any) -> None:
            raise RuntimeError("stopped before writing the cells")

        store.write_cell = stopped  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            await materializer.run(store)
        store.write_cell = write  # type: ignore[method-assign]
        await materializer.run(store)  # the marks are still there
        return rows(store.cells())

    assert asyncio.run(run()) == reference(batches)


def test_an_amendment_that_moves_a_measure_to_another_episode_summarizes_the_one_it_left() -> None:
    """X's ORS, reliably improved, is amended to name X's other episode: the closed episode A no
    longer has an outcome measured in February (A's summary must be computed again)."""
    s = Stream()
    s.opened(N, "X", "epA", "2026-01-05", "c-1")
    s.opened(N, "X", "epB", "2026-01-06", "c-1")
    s.closed(N, "X", "epA", "2026-02-10", "planned")
    s.measure(
        N, "X", "epA", "r1", "ORS", {"total": 30.0}, "2026-01-20 10:00", clinician="c-1", change=(True, False)
    )
    first = list(s.events)
    s.events.clear()
    s.measure(
        N,
        "X",
        "epB",
        "r1",
        "ORS",
        {"total": 30.0},
        "2026-01-20 10:00",
        clinician="c-1",
        revision=2,
        change=(True, False),
    )
    batches = [first, list(s.events)]
    got, _ = served(batches)
    assert got == reference(batches)
    february = next(r for r in got[0] if r.get("month") == "2026-02")
    assert february["outcome_measured"] == 0


def summary(**kw: Any) -> EpisodeSummary:
    base: dict[str, Any] = {
        "episode_id": "ep",
        "clinic_id": N,
        "client_ref": "cr",
        "clinician_id": "c-1",
        "opened_on": None,
        "closed_on": None,
        "close_reason": None,
        "attended": 0,
        "last_missed": False,
        "outcome_measured": False,
        "improved": False,
        "deteriorated": False,
        "appointments": (("a1", "video"),),
        "months": ("2026-01", "2026-02", "2026-03"),
        "borrowers": (("a1", "2026-01"),),
    }
    return EpisodeSummary(**(base | kw))


@pytest.mark.parametrize(
    ("old", "new", "months"),
    [
        # a new appointment with a measure in February: February only
        (
            summary(),
            summary(
                appointments=(("a1", "video"), ("a2", "video")),
                borrowers=(("a1", "2026-01"), ("a2", "2026-02")),
            ),
            {"2026-02"},
        ),
        # a summary stored before borrowers were kept: every month
        (
            summary(borrowers=None),
            summary(appointments=(("a1", "video"), ("a2", "video"))),
            {"2026-01", "2026-02", "2026-03"},
        ),
        # nothing about appointments or strata changed: no month beyond opened and closed
        (summary(), summary(attended=3), set()),
    ],
)
def test_affected(old: EpisodeSummary, new: EpisodeSummary, months: set[str]) -> None:
    assert _affected(old, new) == months
