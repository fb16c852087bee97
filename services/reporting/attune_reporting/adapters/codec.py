"""Documents for facts and episode summaries, and the compact body of a materialized cell.

Times are stored as RFC 3339 strings with their original offset (BSON dates would drop the offset
and the microseconds), so a fact read back is equal to the fact written. A cell's body is one
zlib-compressed JSON blob: FerretDB decodes documents field by field, so one opaque field per cell
keeps a 50-clinic, 24-month network report well under a second. Client sets are bitmaps over a
per-clinic client index (position of each client_ref), so unions over months are integer ORs.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, fields
from datetime import date, datetime
from typing import Any, TypeVar

from attune_reporting.domain.cells import Part
from attune_reporting.domain.episodes import EpisodeSummary
from attune_reporting.domain.facts import AlertFact, CareFact, MeasureFact

BODY_VERSION = 1
_TIMES = frozenset(
    {"occurred_at", "scheduled_start", "session_at", "raised_at", "acknowledged_at", "resolved_at"}
)
_DAYS = frozenset({"day", "opened_on", "closed_on"})
_ID_FIELD = {CareFact: "fact_id", MeasureFact: "fact_id", AlertFact: "fact_id", EpisodeSummary: "episode_id"}

T = TypeVar("T", CareFact, MeasureFact, AlertFact, EpisodeSummary)


def to_doc(value: CareFact | MeasureFact | AlertFact | EpisodeSummary) -> dict[str, Any]:
    """The document of a fact or an episode summary (None fields left out)."""
    id_field = _ID_FIELD[type(value)]
    doc: dict[str, Any] = {"_id": getattr(value, id_field)}
    for f in fields(value):
        v = getattr(value, f.name)
        if f.name == id_field or v is None:
            continue
        if isinstance(v, datetime | date):
            v = v.isoformat()
        elif isinstance(v, tuple):
            # An inner tuple goes in a sub-document: FerretDB 1.x stores no arrays inside arrays.
            v = [{"t": list(x)} if isinstance(x, tuple) else x for x in v]
        doc[f.name] = v
    return doc


def from_doc(cls: type[T], doc: Mapping[str, Any]) -> T:
    """The fact or summary a document holds."""
    kwargs: dict[str, Any] = {_ID_FIELD[cls]: doc["_id"]}
    for f in fields(cls):
        if f.name == _ID_FIELD[cls]:
            continue
        if f.name not in doc:
            # to_doc leaves None fields out; a field with a default keeps it.
            if f.default is MISSING and f.default_factory is MISSING:
                kwargs[f.name] = None
            continue
        v = doc[f.name]
        if v is not None and f.name in _TIMES:
            v = datetime.fromisoformat(v)
        elif v is not None and f.name in _DAYS:
            v = date.fromisoformat(v)
        elif isinstance(v, list):
            v = tuple(tuple(x["t"]) if isinstance(x, dict) else x for x in v)
        kwargs[f.name] = v
    return cls(**kwargs)


@dataclass(frozen=True, slots=True)
class Bits:
    """A set of clients as a bitmap over the clinic's client index."""

    value: int = 0

    def __or__(self, other: Bits) -> Bits:
        return Bits(self.value | other.value)

    def __len__(self) -> int:
        return self.value.bit_count()

    def encode(self) -> str:
        """ "<zero bytes skipped>:<base64 of the rest>", little-endian."""
        raw = self.value.to_bytes((self.value.bit_length() + 7) // 8, "little")
        rest = raw.lstrip(b"\x00")
        return f"{len(raw) - len(rest)}:{base64.b64encode(rest).decode('ascii')}"

    @classmethod
    def decode(cls, text: str) -> Bits:
        """The inverse of encode."""
        skip, _, data = text.partition(":")
        return cls(int.from_bytes(b"\x00" * int(skip) + base64.b64decode(data), "little"))


class ClientIndex:
    """A clinic's clients, each at a fixed position (append-only), for client-set bitmaps."""

    def __init__(self, refs: Iterable[str] = ()) -> None:
        self.refs: list[str] = list(refs)
        self._pos = {r: i for i, r in enumerate(self.refs)}

    def __len__(self) -> int:
        return len(self.refs)

    def add(self, refs: Iterable[str]) -> int:
        """Append unknown clients (in sorted order); return how many were new."""
        new = sorted(set(refs) - self._pos.keys())
        for r in new:
            self._pos[r] = len(self.refs)
            self.refs.append(r)
        return len(new)

    def bits(self, refs: Iterable[str]) -> Bits:
        """The bitmap of these clients (all must be in the index)."""
        value = 0
        for r in refs:
            value |= 1 << self._pos[r]
        return Bits(value)

    def encode(self) -> str:
        """The index as text: the client_refs without their "cr_" prefix, comma-separated."""
        return ",".join(r.removeprefix("cr_") for r in self.refs)

    @classmethod
    def decode(cls, text: str) -> ClientIndex:
        """The inverse of encode."""
        return cls(f"cr_{r}" for r in text.split(",")) if text else cls()


def encode_parts(parts: Mapping[str, Part[frozenset[str]]], index: ClientIndex) -> bytes:
    """A cell's parts as a compressed body; every client must already be in the index."""
    doc = {
        "version": BODY_VERSION,
        "parts": {
            key: {
                "n": p.n,
                "s": p.s,
                "v": p.v,
                "c": {group: index.bits(refs).encode() for group, refs in p.c.items()},
            }
            for key, p in parts.items()
        },
    }
    return zlib.compress(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode(), 6)


def decode_parts(body: bytes) -> dict[str, Part[Bits]]:
    """A cell's parts from its body."""
    doc = json.loads(zlib.decompress(body))
    if doc.get("version") != BODY_VERSION:
        raise ValueError(
            f"cell body version {doc.get('version')} is not {BODY_VERSION}: rebuild the read model"
        )
    return {
        key: Part(
            n=p["n"],
            s=p["s"],
            v=p["v"],
            c={group: Bits.decode(text) for group, text in p["c"].items()},
        )
        for key, p in doc["parts"].items()
    }
