"""CSV rendering of report rows: the same rows and keys as JSON, one line per row."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def csv_value(value: Any) -> str:
    """A JSON value as CSV text: null is empty, booleans are true/false, lists are joined with ';'."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ";".join(csv_value(v) for v in value)
    return str(value)


def to_csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """Header line of column names, then one line per row (RFC 4180 quoting, CRLF line ends)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([csv_value(r.get(c)) for c in columns])
    return out.getvalue()
