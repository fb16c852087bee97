"""Report rows from pre-aggregated cells: a clinic's report and the network report."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from attune_reporting.domain.access import Audience
from attune_reporting.domain.cells import ALL, GROUPS, MODALITIES, MODALITY_GROUPS, Cell, modality_key
from attune_reporting.domain.figures import Totals, complement, row, total

CLINIC_BY = ("month", "clinician", "modality")
NETWORK_BY = ("clinic", "modality", "month")


def _ordered(cells: Iterable[Cell[Any]]) -> list[Cell[Any]]:
    return sorted(cells, key=lambda c: (c.clinic_id, c.month))


def _parts(cells: Iterable[Cell[Any]], key: str) -> list[tuple[str, Any]]:
    return [(c.clinic_id, c.parts[key]) for c in cells if key in c.parts]


class _Rows:
    """A report's rows as they are built, with the sums behind each (for complementary suppression)."""

    def __init__(self, suppress_below: int | None) -> None:
        self.cut = suppress_below
        self.built: list[tuple[dict[str, Any], Totals]] = []

    def add(self, dims: dict[str, Any], t: Totals, groups: Iterable[str] | None = None) -> None:
        kw: dict[str, Any] = {} if groups is None else {"groups": groups}
        self.built.append((row(dims, t, suppress_below=self.cut, **kw), t))

    def finish(
        self, dims: dict[str, Any], t: Totals, groups: Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        """Add the total row; where small cells are withheld, withhold what subtraction would reveal."""
        self.add(dims, t, groups)
        if self.cut is not None:
            complement(self.built[:-1], self.built[-1])
        return [out for out, _ in self.built]


def clinic_rows(
    cells: Iterable[Cell[Any]], *, clinic_id: str, months: Sequence[str], by: str, audience: Audience
) -> list[dict[str, Any]]:
    """One clinic's rows by month, clinician or modality, then its total row."""
    wanted = set(months)
    mine = _ordered(c for c in cells if c.clinic_id == clinic_id and c.month in wanted)
    first, last = months[0], months[-1]
    rows = _Rows(audience.suppress_below)
    base = {"row_type": "row", "clinic_id": clinic_id, "period_from": first, "period_to": last}
    if by == "month":
        for m in months:
            dims = {**base, "month": m, "period_from": m, "period_to": m}
            rows.add(dims, total(_parts((c for c in mine if c.month == m), ALL)))
    elif by == "clinician":
        keys = sorted({k for c in mine for k in c.parts if k.startswith("clinician:")})
        for key in keys:
            dims = {**base, "clinician_id": key.split(":", 1)[1]}
            rows.add(dims, total(_parts(mine, key)))
    elif by == "modality":
        for modality in MODALITIES:
            dims = {**base, "modality": modality}
            parts = _parts(mine, modality_key(modality))
            rows.add(dims, total(parts), MODALITY_GROUPS)
    else:
        raise ValueError(f"by must be one of {CLINIC_BY}")
    return rows.finish({**base, "row_type": "total"}, total(_parts(mine, ALL)))


def network_rows(
    cells: Iterable[Cell[Any]], *, months: Sequence[str], by: str, audience: Audience
) -> list[dict[str, Any]]:
    """Network rows by clinic, modality or month (over the audience's clinics), then the total row."""
    wanted = set(months)
    scope = audience.clinics
    mine = _ordered(c for c in cells if c.month in wanted and (scope is None or c.clinic_id in scope))
    first, last = months[0], months[-1]
    base = {"row_type": "row", "period_from": first, "period_to": last}
    rows = _Rows(audience.suppress_below)
    if by == "clinic":
        for clinic_id in sorted({c.clinic_id for c in mine}):
            ours = [c for c in mine if c.clinic_id == clinic_id]
            rows.add({**base, "clinic_id": clinic_id}, total(_parts(ours, ALL)))
    elif by == "modality":
        for modality in MODALITIES:
            parts = _parts(mine, modality_key(modality))
            rows.add({**base, "modality": modality}, total(parts), MODALITY_GROUPS)
    elif by == "month":
        for m in months:
            parts = _parts((c for c in mine if c.month == m), ALL)
            rows.add({**base, "month": m, "period_from": m, "period_to": m}, total(parts))
    else:
        raise ValueError(f"by must be one of {NETWORK_BY}")
    return rows.finish({**base, "row_type": "total"}, total(_parts(mine, ALL)), GROUPS)
