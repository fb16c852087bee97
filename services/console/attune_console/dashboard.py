"""The operations dashboard's figures: which report columns are shown, and how a cell reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# (column, label, kind): kind picks the formatting (count, share as %, mean with 2 decimals).
TILES: list[tuple[str, str, str]] = [
    ("active_clients", "Active clients", "count"),
    ("attendance_rate", "Attendance", "share"),
    ("wai_sr_mean", "Alliance (WAI-SR mean)", "mean"),
    ("srs_total_mean", "Alliance (SRS mean)", "mean"),
    ("repair_rate", "Rupture repair rate", "share"),
    ("ruptures_raised", "Ruptures", "count"),
    ("improved_share", "Reliable improvement", "share"),
    ("dropout_unilateral_rate", "Dropout (unilateral)", "share"),
    ("dropout_last_missed_rate", "Dropout (last session missed)", "share"),
    ("dropout_low_dose_rate", "Dropout (low dose)", "share"),
    ("alerts_open", "Open alerts", "count"),
]
TREND: list[tuple[str, str, str]] = [
    ("active_clients", "Active clients", "count"),
    ("attendance_rate", "Attendance", "share"),
    ("wai_sr_mean", "WAI-SR mean", "mean"),
    ("improved_share", "Reliable improvement", "share"),
    ("dropout_unilateral_rate", "Dropout (unilateral)", "share"),
    ("alerts_raised", "Alerts raised", "count"),
]
# A lead's per-clinician rows: the figures a lead acts on for one clinician's caseload.
CLINICIAN_TILES: list[tuple[str, str, str]] = [
    ("active_clients", "Active clients", "count"),
    ("attendance_rate", "Attendance", "share"),
    ("wai_sr_mean", "WAI-SR mean", "mean"),
    ("srs_total_mean", "SRS mean", "mean"),
    ("repair_rate", "Repair rate", "share"),
    ("improved_share", "Reliable improvement", "share"),
    ("dropout_unilateral_rate", "Dropout (unilateral)", "share"),
    ("alerts_open", "Open alerts", "count"),
]
MODALITIES = {"in_person": "In person", "video": "Telehealth (video)", "phone": "Telehealth (phone)"}
ALERT_RULES = [
    ("alerts_raised_safety_phq9_item9", "Self-harm item"),
    ("alerts_raised_alliance_rupture", "Alliance rupture"),
    ("alerts_raised_outcome_deterioration", "Deterioration"),
    ("alerts_raised_engagement_dropout_risk", "Dropout risk"),
    ("alerts_raised_outcome_not_on_track", "Not on track"),
]


@dataclass(frozen=True)
class Cell:
    """One figure as shown: its text, the number behind it (None when there is none), suppressed or not."""

    text: str
    value: float | None
    suppressed: bool


def cell(row: dict[str, Any], column: str, kind: str) -> Cell:
    """A report cell; a suppressed one is never a zero."""
    if column in (row.get("suppressed_columns") or []):
        return Cell("suppressed", None, True)
    value = row.get(column)
    if value is None or isinstance(value, bool):
        return Cell("no data", None, False)
    number = float(value)
    if kind == "share":
        return Cell(f"{number * 100:.0f}%", number * 100, False)
    if kind == "mean":
        return Cell(f"{number:.2f}", number, False)
    return Cell(f"{number:,.0f}", number, False)


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return next((r for r in rows if r.get("row_type") == "total"), {})


def body_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("row_type") != "total"]


def shown(rows: list[dict[str, Any]], figures: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The figures that some row has (a value, or a suppressed cell): all-empty rows are left out."""
    return [
        f
        for f in figures
        if any(r.get(f[0]) is not None or f[0] in (r.get("suppressed_columns") or []) for r in rows)
    ]
