"""Deterministic identifiers: derived event ids, the client reference and the other keyed pseudonyms.

Every identifier the EHR made (its event ids, appointment ids, response ids, and anything derived
from them, such as episode ids) is PHI (contract section 6): EHRs often build them from the MRN.
Intake replaces each with a keyed pseudonym before anything leaves it: a distinct prefix per kind
and 26 base32 characters of HMAC-SHA256 under the pseudonym key, scoped by clinic and source. The
same input always gives the same pseudonym, so replays and joins still work; without the key a
pseudonym cannot be recomputed from a guessed id, which an unkeyed hash (uuid5) of `MRN100075-...`
would allow.
"""

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

# The prefix of each kind of pseudonym intake makes from an EHR identifier.
PSEUDONYM_PREFIXES: Final = {
    "event": "ev_",  # the EHR's event_id (downstream: source_event_id)
    "appointment": "ap_",
    "response": "rs_",
    "episode": "ep_",  # derived from the event that opened the episode
}
EVENT_REF_PATTERN: Final = r"^ev_[A-Z2-7]{26}$"
APPOINTMENT_REF_PATTERN: Final = r"^ap_[A-Z2-7]{26}$"
RESPONSE_REF_PATTERN: Final = r"^rs_[A-Z2-7]{26}$"
EPISODE_REF_PATTERN: Final = r"^ep_[A-Z2-7]{26}$"


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


def _keyed(key: bytes, message: str) -> str:
    if not key:
        raise ValueError("a pseudonym needs a non-empty key")
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii")[:CLIENT_REF_CHARS]


def pseudonym(key: bytes, kind: str, *, clinic_id: str, source: str, value: str) -> str:
    """The keyed pseudonym of one EHR identifier: prefix of its kind + 26 base32 chars of HMAC-SHA256.

    Scoped by kind, clinic and source, so the same number in two EHRs, two clinics or two kinds of
    record gives two unrelated pseudonyms.
    """
    prefix = PSEUDONYM_PREFIXES[kind]
    return prefix + _keyed(key, "|".join(_escape(p) for p in (kind, clinic_id, source, value)))
