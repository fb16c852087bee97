"""The console's pure parts: sessions (idle timeout, peek does not extend) and the inbox order."""

from __future__ import annotations

from attune_console.dashboard import cell
from attune_console.present import inbox_order
from attune_console.sessions import SessionStore
from attune_shared.auth import Principal

LEAD = Principal("lead-north", "lead", frozenset({"north-01"}))


def test_idle_session_expires_and_polling_does_not_keep_it_alive() -> None:
    now = [0.0]
    store = SessionStore(idle_s=10, max_sessions=5, clock=lambda: now[0])
    s = store.create("dev-lead-north", LEAD)
    now[0] = 8
    assert store.peek(s.sid) == (s, False)
    now[0] = 11  # peeked at 8, used at 0: idle
    assert store.peek(s.sid) == (None, True)
    assert store.lookup(s.sid) == (None, True)
    assert store.lookup(s.sid) == (None, False)


def test_sessions_are_bounded_and_ids_random() -> None:
    store = SessionStore(idle_s=10, max_sessions=2)
    ids = {store.create("t", LEAD).sid for _ in range(3)}
    assert len(ids) == 3 and len(store) == 2


def test_open_first_then_severity_then_deadline() -> None:
    alerts = [
        {
            "alert_id": "a",
            "status": "acknowledged",
            "severity": "urgent",
            "raised_at": "2026-01-01T00:00:00Z",
        },
        {"alert_id": "b", "status": "open", "severity": "normal", "raised_at": "2026-01-01T00:00:00Z"},
        {"alert_id": "c", "status": "open", "severity": "high", "raised_at": "2026-01-02T00:00:00Z"},
        {"alert_id": "d", "status": "open", "severity": "high", "raised_at": "2026-01-01T00:00:00Z"},
    ]
    assert [a["alert_id"] for a in inbox_order(alerts)] == ["d", "c", "b", "a"]


def test_a_suppressed_cell_is_never_zero() -> None:
    row = {"improved_share": None, "suppressed_columns": ["improved_share"], "active_clients": 0}
    assert cell(row, "improved_share", "share").text == "suppressed"
    assert cell(row, "active_clients", "count").text == "0"
