"""CSV rendering of report rows: the same rows and keys as JSON, one line per row."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# A spreadsheet reads a cell starting with one of these as a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralised(text: str) -> str:
    """Text a spreadsheet shows as text: a leading formula character gets a single quote before it."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_value(value: Any) -> str:
    """A JSON value as CSV text: null is empty, booleans are true/false, lists are joined with ';';
    text that a spreadsheet would run as a formula is neutralised, numbers (negative ones too) are not."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return neutralised(";".join(v if isinstance(v, str) else csv_value(v) for v in value))
    return neutralised(str(value))


def to_csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """Header line of column names, then one line per row (RFC 4180 quoting, CRLF line ends)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([csv_value(r.get(c)) for c in columns])
    return out.getvalue()
