"""Scoring as clinical-rules.md writes it, implemented here on purpose (never imported from services/)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class MarginError(Exception):
    """A rule decision would sit too close to its threshold (or hang on an ambiguous reading): redraw."""


SD_FLOOR = {"WAI-SR": 0.30, "SRS": 2.0}  # the alliance instruments and their sd_floor
RELIABLE_CHANGE = {"ORS": 5.0, "PHQ-9": 6.0, "GAD-7": 4.0}
HIGHER_IS_BETTER = frozenset({"WAI-SR", "SRS", "ORS"})
SRS_CUTOFF = 36.0  # alliance_concern = total < 36
SRS_ITEM_CUTOFF = 9.0  # item_concern = any item < 9
PSQ_TENSION_MIN = 3
PSQ_REPAIR_MIN = 4  # in_session_repair = resolution >= 4


@dataclass(frozen=True, slots=True)
class Score:
    """A scored response: `value` is the WAI-SR mean or the instrument's total."""

    value: float
    concern: bool = False  # SRS alliance_concern or item_concern
    item9: int = 0
    rupture_reported: bool = False
    tension: int = 0
    resolution: int = 0


def _pro_rated(items: list[Any], group: range, answered_of: int, name: str) -> int:
    """The total of the first `answered_of` items; one missing in `group`: round(sum * n / (n - 1))."""
    missing = sum(items[i] is None for i in group)
    total = sum(v for v in items[:answered_of] if v is not None)
    if missing == 0:
        return int(total)
    if missing > 1:
        raise ValueError(f"{name} with {missing} missing items is rejected, never scored")
    scaled, divisor = total * answered_of, answered_of - 1
    if 2 * (scaled % divisor) == divisor:
        raise MarginError(f"{name} pro-rating lands on .5: round-half-even and half-up disagree")
    return round(scaled / divisor)


def score(instrument: str, items: list[Any]) -> Score:
    """Score one response (the simulator only sends responses that the rules accept)."""
    if instrument == "WAI-SR":
        if any(v is None for v in items):
            raise MarginError("WAI-SR with a missing item: how the total is pro-rated is not written down")
        return Score(sum(items) / 12)
    if instrument in ("SRS", "ORS"):
        total = round(sum(round(v * 10) for v in items)) / 10  # one decimal: sum in tenths, exactly
        concern = instrument == "SRS" and (total < SRS_CUTOFF or any(v < SRS_ITEM_CUTOFF for v in items))
        return Score(total, concern=concern)
    if instrument == "PHQ-9":
        if items[8] is None:
            raise ValueError("PHQ-9 item 9 must be present")
        return Score(_pro_rated(items, range(8), 9, "PHQ-9"), item9=int(items[8]))
    if instrument == "GAD-7":
        return Score(_pro_rated(items, range(7), 7, "GAD-7"))
    if instrument == "PSQ":
        return Score(0.0, rupture_reported=items[0] == 1, tension=int(items[1]), resolution=int(items[2]))
    raise ValueError(f"unknown instrument {instrument!r}")
