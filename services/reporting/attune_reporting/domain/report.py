"""Report rows from pre-aggregated cells: a clinic's report and the network report."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from attune_reporting.domain.access import Audience
from attune_reporting.domain.cells import ALL, GROUPS, MODALITIES, MODALITY_GROUPS, Cell, modality_key
from attune_reporting.domain.figures import row, total

CLINIC_BY = ("month", "clinician", "modality")
NETWORK_BY = ("clinic", "modality", "month")


def _ordered(cells: Iterable[Cell[Any]]) -> list[Cell[Any]]:
    return sorted(cells, key=lambda c: (c.clinic_id, c.month))


def _parts(cells: Iterable[Cell[Any]], key: str) -> list[tuple[str, Any]]:
    return [(c.clinic_id, c.parts[key]) for c in cells if key in c.parts]


def clinic_rows(
    cells: Iterable[Cell[Any]], *, clinic_id: str, months: Sequence[str], by: str, audience: Audience
) -> list[dict[str, Any]]:
    """One clinic's rows by month, clinician or modality, then its total row."""
    wanted = set(months)
    mine = _ordered(c for c in cells if c.clinic_id == clinic_id and c.month in wanted)
    first, last = months[0], months[-1]
    cut = audience.suppress_below
    rows: list[dict[str, Any]] = []
    base = {"row_type": "row", "clinic_id": clinic_id, "period_from": first, "period_to": last}
    if by == "month":
        for m in months:
            dims = {**base, "month": m, "period_from": m, "period_to": m}
            rows.append(row(dims, total(_parts((c for c in mine if c.month == m), ALL)), suppress_below=cut))
    elif by == "clinician":
        keys = sorted({k for c in mine for k in c.parts if k.startswith("clinician:")})
        for key in keys:
            dims = {**base, "clinician_id": key.split(":", 1)[1]}
            rows.append(row(dims, total(_parts(mine, key)), suppress_below=cut))
    elif by == "modality":
        for modality in MODALITIES:
            dims = {**base, "modality": modality}
            parts = _parts(mine, modality_key(modality))
            rows.append(row(dims, total(parts), groups=MODALITY_GROUPS, suppress_below=cut))
    else:
        raise ValueError(f"by must be one of {CLINIC_BY}")
    rows.append(row({**base, "row_type": "total"}, total(_parts(mine, ALL)), suppress_below=cut))
    return rows


def network_rows(
    cells: Iterable[Cell[Any]], *, months: Sequence[str], by: str, audience: Audience
) -> list[dict[str, Any]]:
    """Network rows by clinic, modality or month (over the audience's clinics), then the total row."""
    wanted = set(months)
    scope = audience.clinics
    mine = _ordered(c for c in cells if c.month in wanted and (scope is None or c.clinic_id in scope))
    first, last = months[0], months[-1]
    cut = audience.suppress_below
    base = {"row_type": "row", "period_from": first, "period_to": last}
    rows: list[dict[str, Any]] = []
    if by == "clinic":
        for clinic_id in sorted({c.clinic_id for c in mine}):
            ours = [c for c in mine if c.clinic_id == clinic_id]
            rows.append(row({**base, "clinic_id": clinic_id}, total(_parts(ours, ALL)), suppress_below=cut))
    elif by == "modality":
        for modality in MODALITIES:
            parts = _parts(mine, modality_key(modality))
            dims = {**base, "modality": modality}
            rows.append(row(dims, total(parts), groups=MODALITY_GROUPS, suppress_below=cut))
    elif by == "month":
        for m in months:
            parts = _parts((c for c in mine if c.month == m), ALL)
            rows.append(
                row({**base, "month": m, "period_from": m, "period_to": m}, total(parts), suppress_below=cut)
            )
    else:
        raise ValueError(f"by must be one of {NETWORK_BY}")
    rows.append(
        row({**base, "row_type": "total"}, total(_parts(mine, ALL)), groups=GROUPS, suppress_below=cut)
    )
    return rows
