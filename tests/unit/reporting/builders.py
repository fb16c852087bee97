"""Builders of reporting's inputs (care events, scored measures, alert events) as the shared models."""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from attune_shared.events import (
    Alert,
    AlertEvent,
    AppointmentScheduled,
    ChangeFromIntake,
    ClinicianAssigned,
    EpisodeClosed,
    EpisodeOpened,
    MeasureScored,
    SessionAttended,
    SessionCancelled,
    SessionMissed,
)
from tests.support.ids import as_appointment, as_episode, as_response, ev, rs

NS = uuid.UUID("2b7d4f0e-0c1a-4f43-9f0e-7a1d3c5b9e21")


def ref(name: str) -> str:
    """A valid client_ref for a test client name."""
    return "cr_" + base64.b32encode(hashlib.sha256(name.encode()).digest()).decode()[:26]


def at(text: str) -> datetime:
    """A UTC datetime from "YYYY-MM-DD HH:MM"."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


@dataclass
class Stream:
    """Numbers events deterministically; `events` keeps them in the order built.

    Episode, appointment and response ids are given as test labels ("epA", "a1", "rA1") and carried
    as their pseudonyms (`ep("epA")`, ...); a value that already is a pseudonym is kept as it is.
    """

    source: str = "ehr-test"
    events: list[Any] = field(default_factory=list)
    n: int = 0

    def _id(self, *parts: str) -> str:
        self.n += 1
        return str(uuid.uuid5(NS, "|".join((self.source, str(self.n), *parts))))

    def _common(self, clinic: str, client: str, episode: str, when: datetime) -> dict[str, Any]:
        return {
            "event_id": self._id(clinic, client, episode),
            "occurred_at": when,
            "source": self.source,
            "source_event_id": ev(f"{self.source}:{self.n:06d}"),
            "clinic_id": clinic,
            "client_ref": ref(client),
            "episode_id": as_episode(episode),
        }

    def _add(self, event: Any) -> Any:
        self.events.append(event)
        return event

    def opened(self, clinic: str, client: str, episode: str, day: str, clinician: str | None) -> Any:
        when = at(f"{day} 08:00")
        return self._add(
            EpisodeOpened(
                opened_on=date.fromisoformat(day),
                clinician_id=clinician,
                **self._common(clinic, client, episode, when),
            )
        )

    def assigned(self, clinic: str, client: str, episode: str, when: str, clinician: str) -> Any:
        return self._add(
            ClinicianAssigned(clinician_id=clinician, **self._common(clinic, client, episode, at(when)))
        )

    def scheduled(
        self, clinic: str, client: str, episode: str, appt: str, start: str, modality: str, clinician: str
    ) -> Any:
        begin = at(start)
        return self._add(
            AppointmentScheduled(
                appointment_id=as_appointment(appt),
                clinician_id=clinician,
                scheduled_start=begin,
                modality=modality,
                **self._common(clinic, client, episode, begin - timedelta(days=7)),
            )
        )

    def attended(
        self, clinic: str, client: str, episode: str, appt: str, when: str, modality: str, clinician: str
    ) -> Any:
        return self._add(
            SessionAttended(
                appointment_id=as_appointment(appt),
                clinician_id=clinician,
                modality=modality,
                duration_minutes=50,
                **self._common(clinic, client, episode, at(when)),
            )
        )

    def missed(
        self,
        clinic: str,
        client: str,
        episode: str,
        appt: str,
        when: str,
        modality: str,
        clinician: str,
        reason: str = "no_show",
    ) -> Any:
        return self._add(
            SessionMissed(
                appointment_id=as_appointment(appt),
                clinician_id=clinician,
                modality=modality,
                reason=reason,
                **self._common(clinic, client, episode, at(when)),
            )
        )

    def cancelled(
        self, clinic: str, client: str, episode: str, appt: str, when: str, clinician: str, by: str
    ) -> Any:
        return self._add(
            SessionCancelled(
                appointment_id=as_appointment(appt),
                clinician_id=clinician,
                cancelled_by=by,
                hours_notice=2.0,
                **self._common(clinic, client, episode, at(when)),
            )
        )

    def closed(self, clinic: str, client: str, episode: str, day: str, reason: str) -> Any:
        return self._add(
            EpisodeClosed(
                reason=reason,
                closed_on=date.fromisoformat(day),
                **self._common(clinic, client, episode, at(f"{day} 17:00")),
            )
        )

    def measure(
        self,
        clinic: str,
        client: str,
        episode: str,
        response_id: str,
        instrument: str,
        scores: dict[str, Any],
        session: str,
        *,
        clinician: str,
        appt: str | None = None,
        revision: int = 1,
        change: tuple[bool, bool] | None = None,
        respondent: str = "client",
    ) -> Any:
        """A measure.scored; change = (reliable_improvement, reliable_deterioration)."""
        session_at = at(session)
        ch = None
        if change is not None:
            ch = ChangeFromIntake(
                intake_response_id=rs(f"{response_id}-intake"),
                intake_score=10.0,
                change=-6.0 if change[0] else (6.0 if change[1] else 1.0),
                reliable_improvement=change[0],
                reliable_deterioration=change[1],
                threshold=6.0,
            )
        common = self._common(clinic, client, episode, session_at + timedelta(hours=1, minutes=revision))
        return self._add(
            MeasureScored(
                response_id=as_response(response_id),
                revision=revision,
                status="completed" if revision == 1 else "amended",
                instrument=instrument,
                respondent=respondent,
                clinician_id=clinician,
                appointment_id=as_appointment(appt) if appt is not None else None,
                session_at=session_at,
                scores=scores,
                change=ch,
                rule_versions={f"score.{instrument.lower()}": 1},
                superseded=revision > 1,
                **common,
            )
        )

    def alert(
        self,
        event_type: str,
        when: str,
        *,
        alert_id: str,
        clinic: str,
        client: str,
        episode: str,
        clinician: str | None,
        rule: str,
        severity: str,
        raised: str,
        status: str = "open",
        acknowledged: str | None = None,
        resolved: str | None = None,
        resolution: str | None = None,
        escalation: int = 0,
        evidence: dict[str, Any] | None = None,
    ) -> Any:
        alert = Alert(
            alert_id=str(uuid.uuid5(NS, alert_id)),
            clinic_id=clinic,
            clinician_id=clinician,
            client_ref=ref(client),
            episode_id=as_episode(episode),
            rule_id=rule,
            rule_version=1,
            severity=severity,
            status=status,
            title="An alert",
            evidence=evidence or {},
            suggested_action="Review.",
            raised_at=at(raised),
            acknowledged_at=at(acknowledged) if acknowledged else None,
            acknowledged_by="lead-north" if acknowledged else None,
            resolved_at=at(resolved) if resolved else None,
            resolution=resolution,
            escalation_level=escalation,
        )
        return self._add(
            AlertEvent(
                event_id=self._id(alert_id, event_type),
                event_type=event_type,
                occurred_at=at(when),
                alert=alert,
            )
        )


def client_of(event: Any) -> str:
    """The client_ref an event is keyed by."""
    return event.alert.client_ref if isinstance(event, AlertEvent) else event.client_ref
