"""Who may see which report, and how (contract section 7)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

By = Literal["month", "clinician", "modality", "clinic"]


class Forbidden(Exception):
    """The caller's role or clinics do not cover this report (HTTP 403)."""


@dataclass(frozen=True, slots=True)
class Audience:
    """How a report is cut for one caller."""

    suppress_below: int | None  # ops: ATTUNE_MIN_CELL_SIZE; lead and admin: None (no suppression)
    clinics: frozenset[str] | None  # network scope; None for every clinic


def _all(clinics: Collection[str]) -> bool:
    return "*" in clinics


def clinic_audience(role: str, clinics: Collection[str], clinic_id: str, by: str, min_cell: int) -> Audience:
    """ops: any clinic, aggregates only, small cells suppressed; lead: own clinics, per clinician
    too, nothing suppressed; admin: everything."""
    if role == "admin":
        return Audience(None, None)
    if role == "ops":
        if by == "clinician":
            raise Forbidden("role ops sees aggregates only: no per-clinician rows")
        return Audience(min_cell, None)
    if role == "lead":
        if not (_all(clinics) or clinic_id in clinics):
            raise Forbidden(f"clinic {clinic_id} is not one of this token's clinics")
        return Audience(None, None)
    raise Forbidden(f"role {role} may not read reports")


def network_audience(role: str, clinics: Collection[str], min_cell: int) -> Audience:
    """The network report: ops and admin see every clinic; a lead sees the network restricted to
    its own clinics (rows and totals over those clinics only), unsuppressed."""
    if role == "admin":
        return Audience(None, None)
    if role == "ops":
        return Audience(min_cell, None)
    if role == "lead":
        return Audience(None, None if _all(clinics) else frozenset(clinics))
    raise Forbidden(f"role {role} may not read reports")
