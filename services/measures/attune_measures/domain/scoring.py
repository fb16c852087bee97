"""Scoring rules per instrument (clinical-rules.md, "Scoring"), as pure functions."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType
from typing import Final, TypeAlias

from attune_measures.domain.thresholds import DEFAULT, RULE_VERSIONS, ScoringThresholds

ScoreValue: TypeAlias = float | int | bool | str | None
Item: TypeAlias = float | int | None

INSTRUMENTS: Final = ("WAI-SR", "SRS", "ORS", "PHQ-9", "GAD-7", "PSQ")

# WAI-SR subscales as 0-based item indexes (the rules give them 1-based).
WAI_SR_SUBSCALES: Final[Mapping[str, tuple[int, ...]]] = MappingProxyType(
    {"task": (0, 1, 9, 11), "bond": (2, 4, 6, 8), "goal": (3, 5, 7, 10)}
)


class UnscorableResponse(ValueError):
    """A response the instrument's rules cannot score; `item` is the 0-based offending index."""

    def __init__(self, instrument: str, message: str, *, item: int | None = None) -> None:
        self.instrument = instrument
        self.item = item
        self.reason = message
        where = f"items[{item}]: " if item is not None else ""
        super().__init__(f"{instrument} {where}{message}")


@dataclass(frozen=True, slots=True)
class Score:
    """The published scores of one response and the number used for change from intake."""

    instrument: str
    values: Mapping[str, ScoreValue]
    primary: float | None

    @property
    def rule_id(self) -> str:
        """The scoring rule id, e.g. `score.phq-9`."""
        return f"score.{self.instrument.lower()}"

    @property
    def rule_version(self) -> int:
        """The version of the scoring rule that produced these values."""
        return RULE_VERSIONS[self.rule_id]


def score(instrument: str, items: Sequence[Item], *, thresholds: ScoringThresholds = DEFAULT) -> Score:
    """Score one response; raises UnscorableResponse when the rules reject it."""
    scorer = _SCORERS.get(instrument)
    if scorer is None:
        raise UnscorableResponse(instrument, "unknown instrument")
    return scorer(list(items), thresholds)


def round_half_up(value: Fraction) -> int:
    """Round to the nearest integer with halves going up (4.5 -> 5), unlike round()'s banker's rounding."""
    return math.floor(value + Fraction(1, 2))


def _score_wai_sr(items: list[Item], _: ScoringThresholds) -> Score:
    values = _integers("WAI-SR", items, counts=(12,), low=1, high=5)
    means: dict[str, Fraction] = {}
    for name, indexes in WAI_SR_SUBSCALES.items():
        present = [v for i in indexes if (v := values[i]) is not None]
        if len(present) < len(indexes) - 1:
            first_missing = next(i for i in indexes if values[i] is None)
            raise UnscorableResponse(
                "WAI-SR",
                f"{name} subscale has {len(present)} of 4 items; at least 3 are needed",
                item=first_missing,
            )
        means[name] = Fraction(sum(present), len(present))
    # Exact arithmetic, so that (task + bond + goal) * 4 == total up to one final float rounding.
    total = sum((mean * 4 for mean in means.values()), Fraction(0))
    return Score(
        "WAI-SR",
        _frozen(
            {
                "total": float(total),
                "mean": float(total / 12),
                "task": float(means["task"]),
                "bond": float(means["bond"]),
                "goal": float(means["goal"]),
                "items_missing": sum(1 for v in values if v is None),
            }
        ),
        primary=float(total / 12),
    )


def _score_srs(items: list[Item], thresholds: ScoringThresholds) -> Score:
    tenths = _tenths("SRS", items)
    # Integer tenths: 8.9 + 9 + 9 + 9.1 is exactly 36.0 and 35.9 stays below 36.
    total = sum(tenths) / 10
    cutoff = thresholds.srs_cutoff
    concern = total <= cutoff if thresholds.srs_cutoff_inclusive else total < cutoff
    item_concern = any(t / 10 < thresholds.srs_item_cutoff for t in tenths)
    return Score(
        "SRS",
        _frozen({"total": total, "alliance_concern": concern, "item_concern": item_concern}),
        primary=total,
    )


def _score_ors(items: list[Item], thresholds: ScoringThresholds) -> Score:
    total = sum(_tenths("ORS", items)) / 10
    return Score(
        "ORS",
        _frozen({"total": total, "clinical_range": total <= thresholds.ors_clinical_cutoff}),
        primary=total,
    )


def _score_phq9(items: list[Item], _: ScoringThresholds) -> Score:
    values = _integers("PHQ-9", items, counts=(9, 10), low=0, high=3)
    scored = values[:9]  # the 10th (difficulty) item is validated but never scored
    item9 = scored[8]
    if item9 is None:
        raise UnscorableResponse("PHQ-9", "item 9 must be answered", item=8)
    total, prorated = _prorated_total("PHQ-9", scored)
    return Score(
        "PHQ-9",
        _frozen({"total": total, "band": _phq9_band(total), "item9": item9, "prorated": prorated}),
        primary=float(total),
    )


def _score_gad7(items: list[Item], _: ScoringThresholds) -> Score:
    values = _integers("GAD-7", items, counts=(7,), low=0, high=3)
    total, prorated = _prorated_total("GAD-7", values)
    return Score(
        "GAD-7",
        _frozen({"total": total, "band": _gad7_band(total), "prorated": prorated}),
        primary=float(total),
    )


def _score_psq(items: list[Item], thresholds: ScoringThresholds) -> Score:
    values = _integers("PSQ", items, counts=(3,), low=1, high=5, first_scale=(0, 1))
    occurred, tension, resolution = values
    if occurred is None:
        raise UnscorableResponse("PSQ", "item 1 (rupture occurred) must be answered", item=0)
    # Tension and resolution follow up a reported rupture, so they may be left unanswered.
    repair = None if resolution is None else resolution >= thresholds.psq_repair_min
    return Score(
        "PSQ",
        _frozen(
            {
                "rupture_reported": occurred == 1,
                "tension": tension,
                "resolution": resolution,
                "in_session_repair": repair,
            }
        ),
        primary=None,
    )


def _prorated_total(instrument: str, values: list[int | None]) -> tuple[int, bool]:
    """Sum, or with one item missing the sum scaled to the full length, rounded half up."""
    missing = [i for i, v in enumerate(values) if v is None]
    present_sum = sum(v for v in values if v is not None)
    if not missing:
        return present_sum, False
    if len(missing) > 1:
        raise UnscorableResponse(
            instrument, f"{len(missing)} items are missing; at most 1 can be pro-rated", item=missing[1]
        )
    n = len(values)
    return round_half_up(Fraction(present_sum * n, n - 1)), True


def _phq9_band(total: int) -> str:
    for upper, band in ((4, "minimal"), (9, "mild"), (14, "moderate"), (19, "moderately_severe")):
        if total <= upper:
            return band
    return "severe"


def _gad7_band(total: int) -> str:
    for upper, band in ((4, "minimal"), (9, "mild"), (14, "moderate")):
        if total <= upper:
            return band
    return "severe"


def _check_count(instrument: str, items: list[Item], counts: tuple[int, ...]) -> None:
    if len(items) not in counts:
        expected = " or ".join(str(c) for c in counts)
        raise UnscorableResponse(instrument, f"expected {expected} items, got {len(items)}")


def _number(instrument: str, index: int, value: object) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnscorableResponse(instrument, f"value {value!r} is not a number", item=index)
    if not math.isfinite(value):
        raise UnscorableResponse(instrument, f"value {value!r} is not finite", item=index)
    return value


def _in_scale(instrument: str, index: int, value: float, low: float, high: float) -> None:
    if value < low:
        raise UnscorableResponse(
            instrument, f"value {value} is below the {instrument} minimum {low}", item=index
        )
    if value > high:
        raise UnscorableResponse(
            instrument, f"value {value} is above the {instrument} maximum {high}", item=index
        )


def _integers(
    instrument: str,
    items: list[Item],
    *,
    counts: tuple[int, ...],
    low: int,
    high: int,
    first_scale: tuple[int, int] | None = None,
) -> list[int | None]:
    """Validate integer items (None = unanswered) against the scale; item 1 may have its own."""
    _check_count(instrument, items, counts)
    out: list[int | None] = []
    for index, raw in enumerate(items):
        if raw is None:
            out.append(None)
            continue
        value = _number(instrument, index, raw)
        if value != int(value):
            raise UnscorableResponse(instrument, f"value {value} is not an integer", item=index)
        lo, hi = first_scale if index == 0 and first_scale is not None else (low, high)
        _in_scale(instrument, index, value, lo, hi)
        out.append(int(value))
    return out


def _tenths(instrument: str, items: list[Item]) -> list[int]:
    """Validate four complete 0..10 items with at most one decimal; return them in tenths."""
    _check_count(instrument, items, (4,))
    out: list[int] = []
    for index, raw in enumerate(items):
        if raw is None:
            raise UnscorableResponse(instrument, "missing items are not allowed", item=index)
        value = _number(instrument, index, raw)
        _in_scale(instrument, index, value, 0, 10)
        tenths = round(value * 10)
        if abs(value * 10 - tenths) > 1e-6:
            raise UnscorableResponse(instrument, f"value {value} has more than one decimal", item=index)
        out.append(tenths)
    return out


def _frozen(values: dict[str, ScoreValue]) -> Mapping[str, ScoreValue]:
    return MappingProxyType(values)


_SCORERS: Final[Mapping[str, Callable[[list[Item], ScoringThresholds], Score]]] = MappingProxyType(
    {
        "WAI-SR": _score_wai_sr,
        "SRS": _score_srs,
        "ORS": _score_ors,
        "PHQ-9": _score_phq9,
        "GAD-7": _score_gad7,
        "PSQ": _score_psq,
    }
)
