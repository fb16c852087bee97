"""The HTTP edge every service shares: authentication before validation, body limits, safe errors.

`HttpGuard` is one pure-ASGI middleware in front of the routes. For every request it
- answers 401 (no or bad bearer token) or 403 (a role the path does not allow) before any parameter or
  body is looked at, and puts the caller on `request.state.principal` for the endpoints;
- answers 413 for a body over the path's limit (declared Content-Length, then the bytes streamed),
  before the route reads it;
- adds the security headers to every answer and drops any `server` header.

Which roles a path allows comes from the endpoints themselves: every `/v1` route declares its caller with
`Depends(require_roles(...))` (attune_shared.auth), and `build_app` turns those declarations into
per-prefix rules (the route's path up to its first parameter). A `/v1` path no route declares still
needs a valid token of any role, so unknown paths reveal nothing to an anonymous caller.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from attune_shared.auth import DenyHook, Principal, TokenStore, authenticate_header
from attune_shared.logging import get_logger

log = get_logger(__name__)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
)
DEFAULT_MAX_BODY_BYTES = 64 * 1024
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def secure_send(send: Send, headers: Sequence[tuple[bytes, bytes]] = SECURITY_HEADERS) -> Send:
    """`send` with these headers on the answer (replacing any of the same name) and no `server` header."""
    dropped = frozenset(name for name, _ in headers) | {b"server"}

    async def send_secure(message: Message) -> None:
        if message["type"] == "http.response.start":
            kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in dropped]
            message = {**message, "headers": [*kept, *headers]}
        await send(message)

    return send_secure


class SecurityHeaders:
    """Pure-ASGI middleware: the security headers on every answer, no `server` header (for an app
    without the HttpGuard, such as the console, with headers of its own)."""

    def __init__(self, app: ASGIApp, *, headers: Sequence[tuple[bytes, bytes]] = SECURITY_HEADERS) -> None:
        self.app = app
        self.headers = tuple(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            send = secure_send(send, self.headers)
        await self.app(scope, receive, send)


class SafeJSONResponse(JSONResponse):
    """JSON with non-ASCII characters escaped: a string holding a lone surrogate (valid in a JSON text
    as an escape, not encodable as UTF-8) is echoed as its escape instead of failing with a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def has_surrogates(text: str) -> bool:
    """True when the text holds a UTF-16 surrogate code point (JSON allows one as an escape; UTF-8 does not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# A query or path value that names something (a clinic, a rule, a clinician, a person): no control
# characters. As a schema pattern, so the OpenAPI document says so and a fuzzer knows; a NUL would
# otherwise reach the store, where PostgreSQL (the local stand-in) cannot hold it in a filter.
NO_CONTROL_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"


def no_surrogates(text: str) -> str:
    """A pydantic AfterValidator: refuse text that cannot be stored or sent as UTF-8."""
    if has_surrogates(text):
        raise ValueError(
            "the text holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not Unicode text"
        )
    return text


def under(prefix: str, path: str) -> bool:
    """True when `path` is `prefix` or below it (`/v1/alerts` covers `/v1/alerts/x`, not `/v1/alertsx`)."""
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


@dataclass(frozen=True)
class AccessRule:
    """Who may call the paths under `prefix`; an empty `roles` means any valid token."""

    prefix: str
    roles: frozenset[str]
    on_denied: DenyHook | None = None

    def covers(self, path: str) -> bool:
        """True when `path` is the prefix or below it."""
        return under(self.prefix, path)


@dataclass(frozen=True)
class BodyRule:
    """The body limit of the paths under `prefix`."""

    prefix: str
    max_bytes: int

    def covers(self, path: str) -> bool:
        """True when `path` is the prefix or below it."""
        return under(self.prefix, path)


@dataclass
class Policy:
    """The guard's rules; the longest matching prefix wins."""

    access: list[AccessRule] = field(default_factory=list)
    bodies: list[BodyRule] = field(default_factory=list)
    default_max_body: int = DEFAULT_MAX_BODY_BYTES
    protected_root: str = "/v1"

    def access_for(self, path: str) -> AccessRule | None:
        """The rule for a path; a path under the protected root that no route declares needs any token."""
        found = [r for r in self.access if r.covers(path)]
        if found:
            return max(found, key=lambda r: len(r.prefix))
        if under(self.protected_root, path):
            return AccessRule(self.protected_root, frozenset())
        return None

    def max_body_for(self, path: str) -> int:
        """The body limit of a path."""
        found = [r for r in self.bodies if r.covers(path)]
        return max(found, key=lambda r: len(r.prefix)).max_bytes if found else self.default_max_body


def merge_access(rules: Iterable[AccessRule]) -> list[AccessRule]:
    """One rule per prefix: the union of the roles the prefix's routes allow, the first audit hook."""
    merged: dict[str, AccessRule] = {}
    for rule in rules:
        seen = merged.get(rule.prefix)
        if seen is None:
            merged[rule.prefix] = rule
        else:
            merged[rule.prefix] = AccessRule(
                rule.prefix, seen.roles | rule.roles, seen.on_denied or rule.on_denied
            )
    return list(merged.values())


class BodyLimit:
    """A route marker, `dependencies=[Depends(BodyLimit("attune_http_max_body_bytes"))]`: the route's body
    limit is that service setting instead of ATTUNE_HTTP_MAX_REQUEST_BYTES (HttpGuard enforces it)."""

    def __init__(self, setting: str) -> None:
        self.setting = setting

    def __call__(self) -> None:
        return None


def route_prefix(path: str) -> str:
    """A route's path up to its first parameter: `/v1/alerts/{alert_id}/resolve` -> `/v1/alerts`."""
    return path.split("{", 1)[0].rstrip("/") or "/"


class _TooLarge(Exception):
    pass


class HttpGuard:
    """Pure-ASGI middleware: authenticate, authorise, limit the body, add security headers."""

    def __init__(self, app: ASGIApp, *, policy: Policy, tokens: Callable[[Scope], TokenStore]) -> None:
        self.app = app
        self.policy = policy
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        send_secure = secure_send(send)
        path: str = scope["path"]
        rule = self.policy.access_for(path)
        if rule is not None:
            request = Request(scope)
            principal = authenticate_header(self.tokens(scope), request.headers.get("authorization", ""))
            if principal is None:
                await self._deny(request, rule, None, 401, "missing or invalid bearer token", send_secure)
                return
            if rule.roles and principal.role not in rule.roles:
                detail = f"role {principal.role} may not call this"
                await self._deny(request, rule, principal, 403, detail, send_secure)
                return
            scope.setdefault("state", {})["principal"] = principal

        if scope["method"] in BODY_METHODS:
            limit = self.policy.max_body_for(path)
            try:
                receive = await self._buffered(scope, receive, limit)
            except _TooLarge:
                response = SafeJSONResponse({"detail": f"body over {limit} bytes"}, status_code=413)
                await response(scope, receive, send_secure)
                return
        await self.app(scope, receive, send_secure)

    async def _deny(
        self,
        request: Request,
        rule: AccessRule,
        principal: Principal | None,
        status: int,
        detail: str,
        send: Send,
    ) -> None:
        if rule.on_denied is not None:
            try:
                await rule.on_denied(request, principal, status, detail)
            except Exception:
                log.exception("denial_audit_failed", status=status)
                response = SafeJSONResponse({"detail": "the call could not be audited"}, status_code=503)
                await response(request.scope, request.receive, send)
                return
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        response = SafeJSONResponse({"detail": detail}, status_code=status, headers=headers)
        await response(request.scope, request.receive, send)

    @staticmethod
    async def _buffered(scope: Scope, receive: Receive, limit: int) -> Receive:
        """Read the whole body (at most `limit` bytes) before the route does; replay it to the route."""
        for name, value in scope.get("headers", []):
            if name.lower() == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    raise _TooLarge
        chunks: list[bytes] = []
        pending: list[Message] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away: hand the route the disconnect as it comes.
                pending.append(message)
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                pending.append({"type": "http.request", "body": b"".join(chunks), "more_body": False})
                break

        async def replay() -> Message:
            if pending:
                return pending.pop(0)
            return await receive()

        return replay


def clean_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors without the caller's input echoed back: no `input`, `ctx` or `url`, and
    location parts cut to 100 characters (an unknown field's name is the caller's text too)."""
    out = []
    for e in errors:
        loc = [p[:100] if isinstance(p, str) else p for p in e.get("loc", ())]
        out.append({k: v for k, v in e.items() if k not in ("input", "ctx", "url")} | {"loc": loc})
    return out
