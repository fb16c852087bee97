"""Opaque cursors for `GET /v1/alerts`: the (raised_at, alert_id) of the last item, newest first."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any


class InvalidCursor(ValueError):
    """A cursor this service did not issue (the API answers 400)."""


def encode_cursor(raised_at: datetime, alert_id: str) -> str:
    """The cursor that continues after the item (raised_at, alert_id)."""
    raw = json.dumps({"r": raised_at.isoformat(), "i": alert_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(raised_at, alert_id) from a cursor, or InvalidCursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        raised_at = datetime.fromisoformat(data["r"])
        alert_id = data["i"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
        raise InvalidCursor("cursor is not one this API issued") from None
    if raised_at.tzinfo is None or not isinstance(alert_id, str):
        raise InvalidCursor("cursor is not one this API issued")
    return raised_at, alert_id


def after_cursor(cursor: str | None) -> dict[str, Any]:
    """The MongoDB filter for items after the cursor in (raised_at desc, _id desc) order."""
    if not cursor:
        return {}
    raised_at, alert_id = decode_cursor(cursor)
    return {"$or": [{"raised_at": {"$lt": raised_at}}, {"raised_at": raised_at, "_id": {"$lt": alert_id}}]}


SORT = [("raised_at", -1), ("_id", -1)]
