"""Where the report endpoints read pre-aggregated cells from: the adapter over the read model (the port,
ReportSource, is in ports.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attune_reporting.adapters.codec import decode_parts
from attune_reporting.domain.cells import Cell
from attune_reporting.ports import Databases, ReportSource


class StoredReports(ReportSource):
    """Cells from the active data database's read model (never from facts)."""

    def __init__(self, active: Databases) -> None:
        self.active = active

    async def clinic_cells(self, clinic_id: str, months: Sequence[str]) -> list[Cell[Any]]:
        store = await self.active.store()
        wanted = set(months)
        bodies = await store.clinic_bodies(clinic_id=clinic_id)
        return [Cell(clinic_id, month, decode_parts(body)) for month, body in bodies if month in wanted]

    async def network_cells(self, months: Sequence[str]) -> list[Cell[Any]]:
        store = await self.active.store()
        bodies = await store.network_bodies(first=months[0], last=months[-1])
        return [Cell(clinic_id, month, decode_parts(body)) for clinic_id, month, body in bodies]
