"""Webhook signatures: `X-Attune-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>`.

The timestamp is inside the signed text, so a captured request cannot be replayed later with a new
timestamp; receivers reject signatures older than a tolerance (5 minutes is the suggestion).
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-Attune-Signature"
DEFAULT_TOLERANCE_S = 300


def signature(secret: str, timestamp: int, body: str | bytes) -> str:
    """The hex HMAC-SHA256 of `f"{timestamp}.{body}"` under the webhook's secret."""
    raw = body if isinstance(body, bytes) else body.encode()
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()


def sign(secret: str, body: str | bytes, timestamp: int | None = None) -> str:
    """The header value for a body sent now (or at `timestamp`)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={signature(secret, t, body)}"


def verify(
    secret: str,
    body: str | bytes,
    header: str,
    *,
    now: int | None = None,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> bool:
    """True when the header carries a valid v1 signature of body made within the tolerance."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            parts.setdefault(key, []).append(value)
    try:
        t = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    current = int(time.time()) if now is None else now
    if abs(current - t) > tolerance_s:
        return False
    expected = signature(secret, t, body)
    return any(hmac.compare_digest(expected, v) for v in parts.get("v1", []))
