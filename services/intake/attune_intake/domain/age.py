"""The age band reporting's equity view uses: intake turns `birth_year` into it, so the year never
leaves intake (clinical-rules.md, "Equity view"). Pure."""

from __future__ import annotations

from datetime import date
from typing import Final

from attune_shared.events import AgeBand

# (lowest age in the band, band), youngest first; an age falls in the last band whose floor it reaches.
BANDS: Final[tuple[tuple[int, AgeBand], ...]] = (
    (0, "<18"),
    (18, "18-25"),
    (26, "26-40"),
    (41, "41-64"),
    (65, "65+"),
)


def age_band(birth_year: int | None, on: date) -> AgeBand | None:
    """The band of the age reached in `on`'s calendar year (`on.year - birth_year`; the EHR sends
    the year only, so someone whose birthday is later in the year is counted one year older).

    None (reported as `unknown`) when the year is absent or after `on` (a referral dated before the
    client was born is a data error, not a newborn).
    """
    if birth_year is None or birth_year > on.year:
        return None
    age = on.year - birth_year
    band: AgeBand = BANDS[0][1]
    for floor, name in BANDS:
        if age >= floor:
            band = name
    return band
