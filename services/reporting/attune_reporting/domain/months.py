"""Calendar months as "YYYY-MM" strings: the time grain of every report cell."""

from __future__ import annotations

import re
from datetime import date, datetime

MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
_MONTH = re.compile(MONTH_PATTERN)


class BadMonth(ValueError):
    """A month that is not "YYYY-MM", or a range that runs backwards or too far."""


def month_of(value: date | datetime) -> str:
    """The month of a date, or of a datetime in its own offset (the clinic's wall clock)."""
    return f"{value.year:04d}-{value.month:02d}"


def parse_month(text: str) -> tuple[int, int]:
    """(year, month) of "YYYY-MM"; raises BadMonth."""
    if not _MONTH.match(text):
        raise BadMonth(f"{text!r} is not a month (YYYY-MM)")
    return int(text[:4]), int(text[5:])


def shift(month: str, delta: int) -> str:
    """The month `delta` months after (negative: before) `month`."""
    year, mon = parse_month(month)
    index = year * 12 + (mon - 1) + delta
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_range(first: str, last: str, *, limit: int = 240) -> list[str]:
    """Every month from first to last inclusive; raises BadMonth if last is before first or too far."""
    y1, m1 = parse_month(first)
    y2, m2 = parse_month(last)
    count = (y2 * 12 + m2) - (y1 * 12 + m1) + 1
    if count < 1:
        raise BadMonth(f"to ({last}) is before from ({first})")
    if count > limit:
        raise BadMonth(f"a range of {count} months is over the limit of {limit}")
    return [shift(first, i) for i in range(count)]
