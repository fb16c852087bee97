"""Bearer tokens from ATTUNE_TOKENS_FILE: stored as SHA-256 hashes, each with a role and clinics."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from fastapi import HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

Role = Literal["ehr", "lead", "ops", "admin"]
ROLES: frozenset[str] = frozenset({"ehr", "lead", "ops", "admin"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a token's name, role, clinics ('*' for all) and, for EHRs, its source."""

    name: str
    role: Role
    clinics: frozenset[str]
    source: str | None = None

    def covers_clinic(self, clinic_id: str) -> bool:
        """True when the token may act for this clinic."""
        return "*" in self.clinics or clinic_id in self.clinics


def hash_token(token: str) -> str:
    """The SHA-256 hex digest stored in the tokens file."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Token lookup by hash; loaded once at start, a malformed file stops the service."""

    def __init__(self, principals: dict[str, Principal]) -> None:
        self._by_hash = principals

    @classmethod
    def load(cls, path: Path) -> TokenStore:
        """Read `{"tokens": [{"sha256", "name", "role", "clinics", "source"?}]}`."""
        try:
            data = json.loads(Path(path).read_text())
            entries = data["tokens"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"ATTUNE_TOKENS_FILE {path}: cannot read tokens ({exc})") from None
        principals: dict[str, Principal] = {}
        for i, e in enumerate(entries):
            role = e.get("role")
            digest = str(e.get("sha256", "")).lower()
            if role not in ROLES or len(digest) != 64 or not isinstance(e.get("clinics"), list):
                raise ValueError(
                    f"ATTUNE_TOKENS_FILE {path}: entry {i} needs sha256 (64 hex), "
                    f"role ({'|'.join(sorted(ROLES))}) and clinics (a list)"
                )
            if role == "ehr" and not e.get("source"):
                raise ValueError(f"ATTUNE_TOKENS_FILE {path}: entry {i} (role ehr) needs a source")
            principals[digest] = Principal(
                name=str(e.get("name", f"token-{i}")),
                role=role,
                clinics=frozenset(e["clinics"]),
                source=e.get("source"),
            )
        return cls(principals)

    def lookup(self, token: str) -> Principal | None:
        """The principal for a presented token, or None."""
        return self._by_hash.get(hash_token(token))


# Declared on every /v1 operation so the OpenAPI document names the scheme; it never rejects by itself
# (the HttpGuard middleware in attune_shared.http authenticates before any validation).
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    description="A token from ATTUNE_TOKENS_FILE: `Authorization: Bearer <token>`.",
)


def authenticate_header(store: TokenStore, header: str) -> Principal | None:
    """The principal of an `Authorization` header value, or None."""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return store.lookup(token) if scheme.lower() == "bearer" and token else None


def bearer(request: Request) -> Principal:
    """The caller (the guard's, when it ran), or 401."""
    principal = getattr(request.state, "principal", None)
    if isinstance(principal, Principal):
        return principal
    store: TokenStore = request.app.state.tokens
    principal = authenticate_header(store, request.headers.get("authorization", ""))
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


DenyHook = Callable[[Request, Principal | None, int, str], Awaitable[None]]


class RoleCheck:
    """A FastAPI dependency: the caller if its role is one of `roles`, else 403.

    `build_app` reads these from the routes to give the HttpGuard its per-prefix rules, so the 401/403
    happen before validation; `audit` (optional) is told of every 401/403 the guard answers there.
    """

    def __init__(self, roles: frozenset[str], audit: DenyHook | None = None) -> None:
        self.roles = roles
        self.audit = audit

    async def __call__(
        self,
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    ) -> Principal:
        principal = bearer(request)
        if principal.role not in self.roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {principal.role} may not call this")
        return principal


def require_roles(*roles: Role, audit: DenyHook | None = None) -> RoleCheck:
    """FastAPI dependency factory: the caller if its role is one of roles, else 403."""
    return RoleCheck(frozenset(roles), audit)
