"""Webhook signatures and API cursors (pure)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta, timezone

import pytest

from attune_alerts.paging import InvalidCursor, after_cursor, decode_cursor, encode_cursor
from attune_alerts.signing import sign, signature, verify

BODY = '{"event_id":"e1","event_type":"alert.raised"}'


def test_signature_is_hex_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"s3cret-0123456789", f"1700000000.{BODY}".encode(), hashlib.sha256).hexdigest()
    assert signature("s3cret-0123456789", 1700000000, BODY) == expected
    assert signature("s3cret-0123456789", 1700000000, BODY.encode()) == expected
    assert sign("s3cret-0123456789", BODY, timestamp=1700000000) == f"t=1700000000,v1={expected}"


def test_verify_accepts_a_fresh_signature_and_rejects_tampering_and_old_ones() -> None:
    header = sign("s3cret-0123456789", BODY, timestamp=1700000000)
    assert verify("s3cret-0123456789", BODY, header, now=1700000100)
    assert not verify("s3cret-0123456789", BODY + " ", header, now=1700000100)
    assert not verify("another-secret-000", BODY, header, now=1700000100)
    assert not verify("s3cret-0123456789", BODY, header, now=1700000000 + 301)
    assert not verify("s3cret-0123456789", BODY, "v1=abc", now=1700000000)
    assert not verify("s3cret-0123456789", BODY, "t=soon,v1=abc", now=1700000000)
    # During a secret rotation a sender may add a second v1; any one valid signature is enough.
    rotated = header + ",v1=" + "0" * 64
    assert verify("s3cret-0123456789", BODY, rotated, now=1700000000)


def test_cursor_round_trip_and_filter() -> None:
    at = datetime(2026, 3, 2, 14, 55, 1, 123000, tzinfo=UTC)
    cursor = encode_cursor(at, "a-1")
    assert "=" not in cursor and decode_cursor(cursor) == (at, "a-1")
    assert after_cursor(cursor) == {
        "$or": [{"raised_at": {"$lt": at}}, {"raised_at": at, "_id": {"$lt": "a-1"}}]
    }
    assert after_cursor(None) == {} and after_cursor("") == {}
    other_zone = at.astimezone(timezone(timedelta(hours=2)))
    assert decode_cursor(encode_cursor(other_zone, "a-1"))[0] == at


@pytest.mark.parametrize(
    "bad", ["bogus", "e30", encode_cursor(datetime(2026, 1, 1, tzinfo=UTC), "x")[:-3] + "!!!"]
)
def test_foreign_cursors_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(bad)


def test_a_naive_timestamp_cursor_is_rejected() -> None:
    import base64

    raw = base64.urlsafe_b64encode(b'{"r":"2026-01-01T00:00:00","i":"x"}').decode()
    with pytest.raises(InvalidCursor):
        decode_cursor(raw)
