"""Bearer tokens from ATTUNE_TOKENS_FILE: stored as SHA-256 hashes, each with a role and clinics."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import HTTPException, Request, status

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


def bearer(request: Request) -> Principal:
    """FastAPI dependency: the caller, or 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    store: TokenStore = request.app.state.tokens
    principal = store.lookup(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


def require_roles(*roles: Role) -> Callable[[Request], Coroutine[Any, Any, Principal]]:
    """FastAPI dependency factory: the caller if its role is one of roles, else 403."""

    async def dependency(request: Request) -> Principal:
        principal = bearer(request)
        if principal.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {principal.role} may not call this")
        return principal

    return dependency
