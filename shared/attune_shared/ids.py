"""Deterministic identifiers: derived event ids and the pseudonymous client reference."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from typing import Final

# Fixed forever: changing it would change every derived id and break de-duplication on replay.
ATTUNE_NAMESPACE: Final = uuid.UUID("5b0f3c1e-8a4d-5e7f-9c2b-a7d4e6f80123")

# contract.md section 6 says "truncated to 26 chars"; we read that as 26 base32 characters after the
# `cr_` prefix (130 bits of the HMAC), so a client_ref is always 29 characters: cr_ + [A-Z2-7]{26}.
CLIENT_REF_CHARS: Final = 26
CLIENT_REF_PATTERN: Final = r"^cr_[A-Z2-7]{26}$"


def _escape(part: str) -> str:
    # Escaping the separator keeps the join injective: ("a|b", "c") and ("a", "b|c") must not collide.
    # Parts without "|" or "\" are joined exactly as "|".join(parts).
    return part.replace("\\", "\\\\").replace("|", "\\|")


def derived_id(*parts: str) -> str:
    """A uuid5 of the parts under Attune's namespace, so a replay re-derives the same output id."""
    if not parts:
        raise ValueError("derived_id needs at least one part")
    return str(uuid.uuid5(ATTUNE_NAMESPACE, "|".join(_escape(p) for p in parts)))


def client_ref(key: bytes, clinic_id: str, mrn: str) -> str:
    """The pseudonym of (clinic_id, mrn): `cr_` + 26 base32 chars of HMAC-SHA256(key, "clinic_id:mrn")."""
    if not key:
        # An empty key makes the pseudonym a plain hash of the MRN, which anyone could recompute.
        raise ValueError("client_ref needs a non-empty key")
    digest = hmac.new(key, f"{clinic_id}:{mrn}".encode(), hashlib.sha256).digest()
    return "cr_" + base64.b32encode(digest).decode("ascii")[:CLIENT_REF_CHARS]
