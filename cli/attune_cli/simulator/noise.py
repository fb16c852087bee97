"""What real EHR feeds also send: malformed records (one or more per dead-letter code) and re-sends."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from random import Random
from typing import Any

from attune_cli.simulator.model import OutboundRecord, SimConfig
from attune_cli.simulator.network import ClientProfile

TOO_LARGE_BYTES = 70 * 1024  # over the contract's 64 KiB even after intake re-serialises it compactly


@dataclass(frozen=True, slots=True)
class PoisonSpec:
    """A malformed record, built once its place in the stream (and so its event_id) is known."""

    code: str
    description: str
    key: bytes | None
    json_ok: bool  # False: not JSON at all, so it can only travel over Kafka
    names_event: bool  # a parser can read its event_id back
    make: Callable[[str], bytes]


def _json(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def poison_specs(cfg: SimConfig, profiles: list[ClientProfile], rng: Random) -> list[PoisonSpec]:
    """One or more malformed records per dead-letter code, most of them keyed like a real client's events."""
    victims = [rng.choice(profiles) for _ in range(10)]
    days = [rng.randint(7, max(7, cfg.weeks * 7 - 7)) for _ in victims]

    def envelope(event_id: str, n: int, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        who = victims[n]
        when = datetime.combine(cfg.start + timedelta(days=days[n]), time(12, 0), tzinfo=who.clinic.tz)
        return {
            "event_id": event_id,
            "event_type": event_type,
            "schema_version": 1,
            "source": cfg.source,
            "clinic_id": who.clinic.clinic_id,
            "occurred_at": when.isoformat(),
            "payload": {"mrn": who.mrn, **payload},
        }

    def key(n: int) -> bytes:
        return f"{victims[n].clinic.clinic_id}:{victims[n].mrn}".encode()

    def session(n: int) -> dict[str, Any]:
        v = victims[n]
        return {"appointment_id": f"APT-{v.mrn}-P{n:02d}", "clinician_id": v.clinician_id}

    def questionnaire(n: int, instrument: str, values: list[Any]) -> dict[str, Any]:
        v = victims[n]
        return {
            "response_id": f"QR-{v.mrn}-P{n:02d}",
            "status": "completed",
            "instrument": instrument,
            "respondent": "client",
            "clinician_id": v.clinician_id,
            "appointment_id": f"APT-{v.mrn}-P{n:02d}",
            "items": values,
        }

    def attended(eid: str, n: int) -> dict[str, Any]:
        return envelope(eid, n, "session.attended", {**session(n), "modality": "video"})

    def referral(eid: str, n: int, **extra: Any) -> dict[str, Any]:
        return envelope(eid, n, "client.referred", {"referred_on": cfg.start.isoformat(), **extra})

    def naive(eid: str) -> bytes:
        doc = attended(eid, 3)
        doc["occurred_at"] = doc["occurred_at"][:19]  # the offset dropped: a naive timestamp
        return _json(doc)

    def extra_field(eid: str) -> bytes:
        doc = attended(eid, 5)
        doc["payload"]["room"] = "3B"
        return _json(doc)

    def wrong_version(eid: str) -> bytes:
        return _json({**referral(eid, 7), "schema_version": 2})

    def renamed_type(eid: str) -> bytes:
        return _json({**attended(eid, 6), "event_type": "appointment.rescheduled"})

    letter = "Referral letter, scanned and OCR'd into the free-text field. " * 1200
    wai_seven = [4, 4, 5, 4, 4, 4, 5, 4, 4, 4, 4, 7]
    phq_no_nine = [1, 2, 1, 1, 0, 1, 2, 1, None]
    return [
        PoisonSpec(
            "invalid_json",
            "an envelope cut off mid-write (connection reset)",
            key(0),
            False,
            False,
            lambda eid: _json(attended(eid, 0))[:90],
        ),
        PoisonSpec(
            "invalid_json",
            "an envelope encoded as Latin-1, not UTF-8 (non-UTF-8 bytes)",
            key(1),
            False,
            False,
            lambda eid: json.dumps(
                referral(eid, 1, referral_source="Dr. Müller, Überweisung"), ensure_ascii=False
            ).encode("latin-1"),
        ),
        PoisonSpec(
            "not_an_object",
            "an envelope wrapped in a JSON array",
            key(2),
            True,
            False,
            lambda eid: b"[" + _json(attended(eid, 2)) + b"]",
        ),
        PoisonSpec(
            "not_an_object", "a bare JSON string (a heartbeat)", None, True, False, lambda eid: b'"ping"'
        ),
        PoisonSpec("schema_violation", "a naive occurred_at (no UTC offset)", key(3), True, True, naive),
        PoisonSpec(
            "schema_violation",
            "a WAI-SR item of 7 (the scale is 1..5)",
            key(4),
            True,
            True,
            lambda eid: _json(
                envelope(eid, 4, "questionnaire.completed", questionnaire(4, "WAI-SR", wai_seven))
            ),
        ),
        PoisonSpec(
            "schema_violation",
            "a PHQ-9 without item 9 (it must be answered)",
            key(8),
            True,
            True,
            lambda eid: _json(
                envelope(eid, 8, "questionnaire.completed", questionnaire(8, "PHQ-9", phq_no_nine))
            ),
        ),
        PoisonSpec("schema_violation", "an unknown payload field", key(5), True, True, extra_field),
        PoisonSpec(
            "unknown_event_type", "event_type appointment.rescheduled", None, True, True, renamed_type
        ),
        PoisonSpec("unsupported_version", "schema_version 2", key(7), True, True, wrong_version),
        PoisonSpec(
            "too_large",
            "a referral over 64 KiB (a letter pasted into referral_source)",
            key(9),
            True,
            True,
            lambda eid: _json(referral(eid, 9, referral_source=letter[:TOO_LARGE_BYTES])),
        ),
    ]


def resends(records: list[OutboundRecord], rng: Random) -> list[OutboundRecord]:
    """The stream with duplicates: after each EHR "restart" its last 25 sends go out again, identically,
    plus a few single records re-sent a little later. Poison is never re-sent."""
    extra: dict[int, list[OutboundRecord]] = {}
    n = len(records)
    for _ in range(1 + n // 4000):
        at = rng.randint(n // 4, max(n // 4, n * 9 // 10))
        window = [r for r in records[max(0, at - 40) : at + 1] if r.kind != "poison"][-25:]
        extra.setdefault(at, []).extend(_again(r) for r in window)
    for index in range(n):
        if records[index].kind != "poison" and rng.random() < 0.003:
            later = min(n - 1, index + rng.randint(1, 40))
            extra.setdefault(later, []).append(_again(records[index]))
    out: list[OutboundRecord] = []
    for index, record in enumerate(records):
        out.append(record)
        out.extend(extra.get(index, []))
    return out


def _again(record: OutboundRecord) -> OutboundRecord:
    return OutboundRecord(
        record.key, record.value, "duplicate", record.event_type, record.event_id, record.occurred_at
    )
