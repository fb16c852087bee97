"""Every figure of a fixed story (scenario.py), folded without I/O, against hand-computed literals."""

from __future__ import annotations

from typing import Any

import pytest

from attune_reporting.domain.access import Audience
from attune_reporting.domain.cells import Cell
from attune_reporting.domain.ledger import Ledger
from attune_reporting.domain.report import clinic_rows, network_rows
from tests.unit.reporting import expected as x
from tests.unit.reporting.scenario import N, S, build

MONTHS = ["2026-01", "2026-02"]
ADMIN = Audience(suppress_below=None, clinics=None)


@pytest.fixture(scope="module")
def cells() -> list[Cell[frozenset[str]]]:
    ledger = Ledger()
    ledger.fold_all(build())
    return ledger.cells()


def clinic(cells: list[Cell[Any]], by: str) -> list[dict[str, Any]]:
    return clinic_rows(cells, clinic_id=N, months=MONTHS, by=by, audience=ADMIN)


def test_by_month(cells: list[Cell[Any]]) -> None:
    assert clinic(cells, "month") == [
        x.full(
            x.dims(clinic_id=N, month="2026-01", period_from="2026-01", period_to="2026-01"), **x.NORTH_JAN
        ),
        x.full(
            x.dims(clinic_id=N, month="2026-02", period_from="2026-02", period_to="2026-02"), **x.NORTH_FEB
        ),
        x.full(x.dims(row_type="total", clinic_id=N), **x.NORTH_TOTAL),
    ]


def test_by_clinician(cells: list[Cell[Any]]) -> None:
    assert clinic(cells, "clinician") == [
        x.full(x.dims(clinic_id=N, clinician_id="c-1"), **x.CLINICIAN_C1),
        x.full(x.dims(clinic_id=N, clinician_id="c-2"), **x.CLINICIAN_C2),
        x.full(x.dims(clinic_id=N, clinician_id="unassigned"), **x.CLINICIAN_UNASSIGNED),
        x.full(x.dims(row_type="total", clinic_id=N), **x.NORTH_TOTAL),
    ]


def test_by_modality(cells: list[Cell[Any]]) -> None:
    assert clinic(cells, "modality") == [
        x.modality(x.dims(clinic_id=N, modality="in_person"), **x.MODALITY_IN_PERSON),
        x.modality(x.dims(clinic_id=N, modality="video"), **x.MODALITY_VIDEO),
        x.modality(x.dims(clinic_id=N, modality="phone"), **x.MODALITY_PHONE),
        x.full(x.dims(row_type="total", clinic_id=N), **x.NORTH_TOTAL),
    ]


def test_network_by_clinic(cells: list[Cell[Any]]) -> None:
    assert network_rows(cells, months=MONTHS, by="clinic", audience=ADMIN) == [
        x.full(x.dims(clinic_id=N), **x.NORTH_TOTAL),
        x.full(x.dims(clinic_id=S), **x.SOUTH),
        x.full(x.dims(row_type="total"), **x.NETWORK_TOTAL),
    ]


def test_network_by_month(cells: list[Cell[Any]]) -> None:
    rows = network_rows(cells, months=MONTHS, by="month", audience=ADMIN)
    assert rows == [
        x.full(x.dims(month="2026-01", period_from="2026-01", period_to="2026-01"), **x.NETWORK_JAN),
        x.full(x.dims(month="2026-02", period_from="2026-02", period_to="2026-02"), **x.NORTH_FEB),
        x.full(x.dims(row_type="total"), **x.NETWORK_TOTAL),
    ]


def test_network_by_modality_adds_south_phone(cells: list[Cell[Any]]) -> None:
    rows = network_rows(cells, months=MONTHS, by="modality", audience=ADMIN)
    phone = x.MODALITY_PHONE | {"sessions_attended": 2, "attendance_rate": 0.5, "active_clients": 2}  # + f1
    assert rows[:3] == [
        x.modality(x.dims(modality="in_person"), **x.MODALITY_IN_PERSON),
        x.modality(x.dims(modality="video"), **x.MODALITY_VIDEO),
        x.modality(x.dims(modality="phone"), **phone),
    ]


def test_a_month_outside_the_data_is_all_zero(cells: list[Cell[Any]]) -> None:
    rows = clinic_rows(cells, clinic_id=N, months=["2026-03"], by="month", audience=ADMIN)
    assert rows[0] == x.full(x.dims(clinic_id=N, month="2026-03", period_from="2026-03", period_to="2026-03"))


def test_a_lead_network_report_covers_its_clinics_only(cells: list[Cell[Any]]) -> None:
    rows = network_rows(cells, months=MONTHS, by="clinic", audience=Audience(None, frozenset({S})))
    assert rows == [
        x.full(x.dims(clinic_id=S), **x.SOUTH),
        x.full(x.dims(row_type="total"), **x.SOUTH),
    ]
