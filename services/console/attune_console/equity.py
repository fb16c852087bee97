"""The equity page's figures: which columns of reporting's equity view are shown, and how a figure
with its 95% interval reads (docs/equity.md says how to read them)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from attune_console.dashboard import cell

BY: Final = {
    "language": "Preferred language",
    "interpreter": "Interpreter needed",
    "age_band": "Age band at referral",
    "modality": "Modality",
}
VALUES: Final = {
    "unknown": "Unknown",
    "other": "Other languages",
    "yes": "Yes",
    "no": "No",
    "in_person": "In person",
    "video": "Telehealth (video)",
    "phone": "Telehealth (phone)",
}
# (column, label, kind): rates and means have a `_low`/`_high` interval; counts say what they rest on.
FIGURES: Final = [
    ("attendance_rate", "Attendance", "share"),
    ("wai_sr_mean", "Alliance (WAI-SR mean)", "mean"),
    ("srs_total_mean", "Alliance (SRS mean)", "mean"),
    ("rupture_rate", "Episodes with a rupture", "share"),
    ("repair_rate", "Rupture repair rate", "share"),
    ("dropout_unilateral_rate", "Dropout (unilateral)", "share"),
    ("dropout_last_missed_rate", "Dropout (last session missed)", "share"),
    ("dropout_low_dose_rate", "Dropout (low dose)", "share"),
    ("reliable_improvement_rate", "Reliable improvement (of measured)", "share"),
]
COUNTS: Final = [
    ("sessions_attended", "Sessions attended", "count"),
    ("sessions_missed", "Sessions missed", "count"),
    ("wai_sr_responses", "WAI-SR responses", "count"),
    ("srs_responses", "SRS responses", "count"),
    ("ruptures_raised", "Ruptures raised", "count"),
    ("episodes_closed", "Episodes closed", "count"),
    ("outcome_measured", "Closed episodes with an outcome measure", "count"),
]
MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


@dataclass(frozen=True)
class Figure:
    """A figure as shown: the value's text, its interval's text (empty when there is none), and
    whether it is suppressed (then the interval is too)."""

    text: str
    interval: str
    suppressed: bool


def _fmt(value: float, kind: str) -> str:
    return f"{value * 100:.0f}%" if kind == "share" else f"{value:.2f}"


def figure(row: dict[str, Any], column: str, kind: str) -> Figure:
    """One figure of an equity row with its interval; a suppressed figure shows neither number."""
    shown = cell(row, column, kind)
    if shown.suppressed:
        return Figure("suppressed", "", True)
    low, high = row.get(f"{column}_low"), row.get(f"{column}_high")
    if kind == "count" or shown.value is None or low is None or high is None:
        return Figure(shown.text, "", False)
    return Figure(shown.text, f"{_fmt(float(low), kind)} to {_fmt(float(high), kind)}", False)


def label(value: Any) -> str:
    """A stratum's name as people read it (language subtags stay as sent: en, pt, so)."""
    if value is None:
        return "All"
    return VALUES.get(str(value), str(value))
