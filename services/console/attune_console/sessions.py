"""Server-side sessions in memory: a random id in an HttpOnly cookie, an idle timeout, a CSRF token.

The session holds the person's bearer token (never sent back to the browser) and who it is; pages
call the other services' APIs with that token, so every access rule stays where the data lives.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from attune_shared.auth import Principal

COOKIE = "attune_session"
SIGNIN_COOKIE = "attune_signin"


def new_secret() -> str:
    """A random, URL-safe secret (256 bits)."""
    return secrets.token_urlsafe(32)


def same_secret(a: str | None, b: str | None) -> bool:
    """Constant-time comparison of two secrets (False when either is missing)."""
    return bool(a) and bool(b) and secrets.compare_digest(str(a), str(b))


@dataclass
class Session:
    """One signed-in person."""

    sid: str
    bearer: str = field(repr=False)
    principal: Principal
    csrf: str = field(repr=False)
    created: float
    last_seen: float


class SessionStore:
    """Sessions by id, least recently used first; an idle one is dropped when next looked up."""

    def __init__(self, idle_s: float, max_sessions: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self.max_sessions = max_sessions
        self._clock = clock
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_id)

    def create(self, bearer: str, principal: Principal) -> Session:
        """A new session with a fresh id and CSRF token (ids are never reused across sign-ins)."""
        now = self._clock()
        while self._by_id:  # least recently used first: drop the idle ones at the front
            oldest = next(iter(self._by_id.values()))
            if now - oldest.last_seen <= self.idle_s:
                break
            self._by_id.popitem(last=False)
        session = Session(new_secret(), bearer, principal, new_secret(), now, now)
        self._by_id[session.sid] = session
        while len(self._by_id) > self.max_sessions:
            self._by_id.popitem(last=False)
        return session

    def lookup(self, sid: str | None) -> tuple[Session | None, bool]:
        """(the live session, False), or (None, True) when it existed but sat idle too long."""
        if not sid:
            return None, False
        session = self._by_id.get(sid)
        if session is None:
            return None, False
        now = self._clock()
        if now - session.last_seen > self.idle_s:
            del self._by_id[sid]
            return None, True
        session.last_seen = now
        self._by_id.move_to_end(sid)
        return session, False

    def peek(self, sid: str | None) -> tuple[Session | None, bool]:
        """Like lookup, but does not count as use (background polling must not keep a session alive)."""
        if not sid or sid not in self._by_id:
            return None, False
        if self._clock() - self._by_id[sid].last_seen > self.idle_s:
            return None, True  # left for lookup to drop, so the next page can say it expired
        return self._by_id[sid], False

    def drop(self, sid: str | None) -> None:
        """Forget a session (sign-out, or a token the APIs no longer accept)."""
        if sid:
            self._by_id.pop(sid, None)
