"""Build inbound EHR envelopes (contract section 2) for tests, valid and deliberately broken."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

TZ = timezone(timedelta(hours=1))
BASE = datetime(2026, 3, 2, 9, 0, tzinfo=TZ)


@dataclass
class Ehr:
    """A clinic EHR that numbers its events."""

    source: str = "ehr-test"
    counter: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)

    def envelope(
        self,
        event_type: str,
        clinic_id: str,
        when: datetime,
        payload: dict[str, Any],
        event_id: str | None = None,
    ) -> dict[str, Any]:
        self.counter += 1
        env = {
            "event_id": event_id or f"{self.source}:{self.counter:06d}",
            "event_type": event_type,
            "schema_version": 1,
            "source": self.source,
            "clinic_id": clinic_id,
            "occurred_at": when.isoformat(),
            "payload": payload,
        }
        self.sent.append(env)
        return env

    def referred(self, clinic: str, mrn: str, when: datetime, clinician: str = "c-1") -> dict[str, Any]:
        return self.envelope(
            "client.referred",
            clinic,
            when,
            {
                "mrn": mrn,
                "referred_on": when.date().isoformat(),
                "clinician_id": clinician,
                "birth_year": 1990,
                "referral_source": "GP letter",
            },
        )

    def scheduled(
        self,
        clinic: str,
        mrn: str,
        when: datetime,
        appt: str,
        modality: str = "video",
        clinician: str = "c-1",
    ) -> dict[str, Any]:
        return self.envelope(
            "appointment.scheduled",
            clinic,
            when - timedelta(days=7),
            {
                "mrn": mrn,
                "appointment_id": appt,
                "clinician_id": clinician,
                "scheduled_start": when.isoformat(),
                "modality": modality,
            },
        )

    def attended(
        self,
        clinic: str,
        mrn: str,
        when: datetime,
        appt: str,
        modality: str = "video",
        clinician: str = "c-1",
    ) -> dict[str, Any]:
        return self.envelope(
            "session.attended",
            clinic,
            when,
            {
                "mrn": mrn,
                "appointment_id": appt,
                "clinician_id": clinician,
                "modality": modality,
                "duration_minutes": 50,
            },
        )

    def missed(
        self,
        clinic: str,
        mrn: str,
        when: datetime,
        appt: str,
        reason: str = "no_show",
        clinician: str = "c-1",
    ) -> dict[str, Any]:
        return self.envelope(
            "session.missed",
            clinic,
            when,
            {
                "mrn": mrn,
                "appointment_id": appt,
                "clinician_id": clinician,
                "modality": "in_person",
                "reason": reason,
            },
        )

    def questionnaire(
        self,
        clinic: str,
        mrn: str,
        when: datetime,
        response_id: str,
        instrument: str,
        items: list[Any],
        appt: str | None = None,
        status: str = "completed",
        clinician: str = "c-1",
        respondent: str = "client",
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "mrn": mrn,
            "response_id": response_id,
            "status": status,
            "instrument": instrument,
            "respondent": respondent,
            "clinician_id": clinician,
            "items": items,
        }
        if appt:
            payload["appointment_id"] = appt
        return self.envelope("questionnaire.completed", clinic, when, payload)

    def closed(self, clinic: str, mrn: str, when: datetime, reason: str = "planned") -> dict[str, Any]:
        return self.envelope(
            "episode.closed",
            clinic,
            when,
            {"mrn": mrn, "reason": reason, "closed_on": when.date().isoformat()},
        )


def encode(env: dict[str, Any]) -> bytes:
    return json.dumps(env).encode()


def key_of(env: dict[str, Any]) -> bytes:
    return f"{env['clinic_id']}:{env['payload']['mrn']}".encode()
