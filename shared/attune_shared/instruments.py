"""Item specifications of the questionnaires Attune accepts, and the check that enforces them."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal, get_args

InstrumentName = Literal["WAI-SR", "SRS", "ORS", "PHQ-9", "GAD-7", "PSQ"]
INSTRUMENTS: Final[tuple[InstrumentName, ...]] = get_args(InstrumentName)

# WAI-SR subscales as 0-based item indexes (clinical-rules.md gives them 1-based:
# Task = 1,2,10,12; Bond = 3,5,7,9; Goal = 4,6,8,11). Measures reuses this map for scoring.
WAI_SR_SUBSCALES: Final[dict[str, tuple[int, ...]]] = {
    "task": (0, 1, 9, 11),
    "bond": (2, 4, 6, 8),
    "goal": (3, 5, 7, 10),
}


class ItemError(ValueError):
    """An item list that breaks its instrument's rules; `loc_index` is the 0-based item, None for the list."""

    def __init__(self, loc_index: int | None, message: str) -> None:
        super().__init__(message)
        self.loc_index = loc_index
        self.message = message


@dataclass(frozen=True, slots=True)
class ItemScale:
    """The allowed values of one item."""

    minimum: float
    maximum: float
    integer: bool
    # Only meaningful when integer is False: SRS/ORS marks are read off a 10 cm line to 1 mm.
    max_decimals: int = 0


@dataclass(frozen=True, slots=True)
class MissingRule:
    """At most `max_missing` of the (0-based) `items` may be null; `label` names the group in errors."""

    label: str
    items: tuple[int, ...]
    max_missing: int


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """One instrument: item scales in published order, accepted item counts and missing-item rules."""

    name: InstrumentName
    scales: tuple[ItemScale, ...]
    counts: tuple[int, ...]
    missing: tuple[MissingRule, ...]

    @property
    def uniform(self) -> bool:
        """True when every item shares one scale (then errors need not say which item's range it is)."""
        return len(set(self.scales)) == 1


def _one_based(indexes: tuple[int, ...]) -> str:
    return ", ".join(str(i + 1) for i in indexes)


_LIKERT_1_5 = ItemScale(1, 5, integer=True)
_PHQ_0_3 = ItemScale(0, 3, integer=True)
_VAS_0_10 = ItemScale(0, 10, integer=False, max_decimals=1)
_ALL4 = (0, 1, 2, 3)

# Keyed by plain str so callers can look up an unvalidated instrument name.
SPECS: Final[Mapping[str, InstrumentSpec]] = {
    "WAI-SR": InstrumentSpec(
        "WAI-SR",
        (_LIKERT_1_5,) * 12,
        (12,),
        tuple(
            MissingRule(f"the WAI-SR {name.capitalize()} subscale (items {_one_based(idx)})", idx, 1)
            for name, idx in WAI_SR_SUBSCALES.items()
        ),
    ),
    "SRS": InstrumentSpec("SRS", (_VAS_0_10,) * 4, (4,), (MissingRule("SRS", _ALL4, 0),)),
    "ORS": InstrumentSpec("ORS", (_VAS_0_10,) * 4, (4,), (MissingRule("ORS", _ALL4, 0),)),
    # The 10th PHQ-9 item (functional difficulty) is optional, unscored and may be null.
    "PHQ-9": InstrumentSpec(
        "PHQ-9",
        (_PHQ_0_3,) * 10,
        (9, 10),
        (MissingRule("PHQ-9 items 1-8", tuple(range(8)), 1), MissingRule("PHQ-9 item 9", (8,), 0)),
    ),
    "GAD-7": InstrumentSpec("GAD-7", (_PHQ_0_3,) * 7, (7,), (MissingRule("GAD-7", tuple(range(7)), 1),)),
    "PSQ": InstrumentSpec(
        "PSQ",
        (ItemScale(0, 1, integer=True), _LIKERT_1_5, _LIKERT_1_5),
        (3,),
        (MissingRule("PSQ", (0, 1, 2), 0),),
    ),
}


def _show(value: object) -> str:
    """Render a value as it appeared in the JSON, so messages quote what the EHR sent."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _bound(value: float) -> str:
    return f"{value:g}"


def _decimals(value: float) -> int:
    # repr() is the shortest string that round-trips: the digits the sender wrote (7.2, not 7.2000000001).
    exponent = Decimal(repr(value)).as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _check_value(spec: InstrumentSpec, index: int, value: object) -> None:
    where = f"payload.items[{index}]: value {_show(value)}"
    scale = spec.scales[index]
    scope = spec.name if spec.uniform else f"{spec.name} item {index + 1}"
    # bool is an int subclass in Python; true/false are answers to nothing here.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ItemError(index, f"{where} is not a number")
    if not math.isfinite(value):
        raise ItemError(index, f"{where} is not a finite number")
    if scale.integer and value != int(value):
        raise ItemError(index, f"{where} is not an integer ({scope} items are integers)")
    if not scale.integer and _decimals(float(value)) > scale.max_decimals:
        raise ItemError(index, f"{where} has more than {scale.max_decimals} decimal(s)")
    if value < scale.minimum:
        raise ItemError(index, f"{where} is below the {scope} minimum {_bound(scale.minimum)}")
    if value > scale.maximum:
        raise ItemError(index, f"{where} is above the {scope} maximum {_bound(scale.maximum)}")


def check_items(instrument: str, items: list[float | int | None]) -> None:
    """Raise ItemError if `items` break the instrument's count, scale or missing-item rules."""
    spec = SPECS.get(instrument)
    if spec is None:
        raise ItemError(None, f"instrument: unknown instrument {_show(instrument)}")
    if len(items) not in spec.counts:
        expected = " or ".join(str(n) for n in spec.counts)
        raise ItemError(None, f"{spec.name} expects {expected} items, got {len(items)}")
    for index, value in enumerate(items):
        if value is not None:
            _check_value(spec, index, value)
    for rule in spec.missing:
        missing = [i for i in rule.items if i < len(items) and items[i] is None]
        if len(missing) > rule.max_missing:
            # Name the first null beyond the allowance: that is the item whose absence broke the rule.
            index = missing[rule.max_missing]
            if len(rule.items) == 1:
                why = "must be answered"
            elif rule.max_missing == 0:
                why = "allows no missing item"
            else:
                why = f"allows at most {rule.max_missing} missing item(s), got {len(missing)}"
            raise ItemError(index, f"payload.items[{index}]: value null: {rule.label} {why}")


def is_integer_scale(instrument: str) -> bool:
    """True when every item of the instrument is an integer (so 3.0 can be stored as 3)."""
    spec = SPECS.get(instrument)
    return spec is not None and all(scale.integer for scale in spec.scales)
