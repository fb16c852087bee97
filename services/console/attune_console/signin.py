"""How a person proves who they are. Today: a bearer token from ATTUNE_TOKENS_FILE.

The seam for single sign-on is `Authenticator`: an OIDC implementation would send the browser to
the identity provider, take the authorization code back on a callback route, and return the
access token (which the APIs then accept as their bearer token) with the person it names. The
sessions, the pages and the API calls do not change.
"""

from __future__ import annotations

from typing import Protocol

from attune_shared.auth import Principal, TokenStore

PEOPLE_ROLES = frozenset({"lead", "ops", "admin"})


class Authenticator(Protocol):
    """Turns what the sign-in form sent into (bearer token for the APIs, who it is), or None."""

    def authenticate(self, secret: str) -> tuple[str, Principal] | None: ...


class TokenAuthenticator:
    """Sign-in with a token from the tokens file; EHR tokens are for machines and are refused."""

    def __init__(self, tokens: TokenStore) -> None:
        self._tokens = tokens

    def authenticate(self, secret: str) -> tuple[str, Principal] | None:
        token = secret.strip()
        if not token or len(token) > 512:
            return None
        principal = self._tokens.lookup(token)
        if principal is None or principal.role not in PEOPLE_ROLES:
            return None
        return token, principal
