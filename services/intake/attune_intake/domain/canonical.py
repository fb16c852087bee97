"""Turn one valid EHR envelope into PHI-free canonical events, updating the client's state. Pure.

Every identifier the EHR made leaves here as a keyed pseudonym (contract section 6): the event id
(`source_event_id`), appointment and response ids, and the ids derived from them (episode ids and
output event ids are derived from the event's pseudonym, never from the EHR's id itself).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from attune_intake.domain.age import age_band
from attune_intake.domain.episodes import ClientState, assign_clinician, close, place
from attune_shared.events import (
    AppointmentScheduled,
    ClientReferred,
    ClinicianAssigned,
    EhrEnvelope,
    EpisodeClosed,
    EpisodeOpened,
    InternalEvent,
    ResponseSubmitted,
    SessionAttended,
    SessionCancelled,
    SessionMissed,
)
from attune_shared.ids import derived_id, pseudonym

# Payload fields that are PHI or free text: never copied into a canonical event.
_DROPPED = frozenset({"mrn", "birth_year", "referral_source"})

_CARE_TYPES: dict[str, type[InternalEvent]] = {
    "client.referred": ClientReferred,
    "clinician.assigned": ClinicianAssigned,
    "appointment.scheduled": AppointmentScheduled,
    "session.attended": SessionAttended,
    "session.missed": SessionMissed,
    "session.cancelled": SessionCancelled,
    "episode.closed": EpisodeClosed,
    "questionnaire.completed": ResponseSubmitted,
}


@dataclass(frozen=True, slots=True)
class Pseudonymiser:
    """Keyed, stable pseudonyms of one envelope's EHR identifiers (scoped by its clinic and source)."""

    key: bytes

    def of(self, env: EhrEnvelope, kind: str, value: str) -> str:
        """The pseudonym of one identifier of this envelope's EHR and clinic."""
        return pseudonym(self.key, kind, clinic_id=env.clinic_id, source=env.source, value=value)

    def event(self, env: EhrEnvelope) -> str:
        """The pseudonym of the envelope's event_id."""
        return self.of(env, "event", env.event_id)


@dataclass(frozen=True, slots=True)
class Canonical:
    """The outcome of one accepted event."""

    events: tuple[InternalEvent, ...]
    state: ClientState
    episode_id: str


def event_day(env: EhrEnvelope) -> date:
    """The date that places an event in an episode: the payload's own date where it has one."""
    p: Any = env.payload
    if env.event_type == "client.referred":
        return p.referred_on  # type: ignore[no-any-return,unused-ignore]
    if env.event_type == "episode.closed":
        return p.closed_on  # type: ignore[no-any-return,unused-ignore]
    return env.occurred_at.date()


def canonicalise(env: EhrEnvelope, state: ClientState, ids: Pseudonymiser) -> Canonical:
    """The canonical events for env (an EpisodeOpened first when env opens an episode)."""
    p: Any = env.payload
    clinician = getattr(p, "clinician_id", None)
    event_ref = ids.event(env)
    new_episode_id = ids.of(env, "episode", env.event_id)
    placement = place(
        state,
        event_type=env.event_type,
        day=event_day(env),
        new_episode_id=new_episode_id,
        clinician_id=clinician,
    )
    state, episode = placement.state, placement.episode
    common: dict[str, Any] = {
        "occurred_at": env.occurred_at,
        "source": env.source,
        "source_event_id": event_ref,
        "clinic_id": env.clinic_id,
        "client_ref": state.client_ref,
        "episode_id": episode.episode_id,
    }
    out: list[InternalEvent] = []
    if placement.opened:
        out.append(
            EpisodeOpened(
                event_id=derived_id("intake", "episode.opened", env.source, event_ref),
                opened_on=episode.opened_on,
                clinician_id=clinician,
                **common,
            )
        )

    fields = {k: v for k, v in p.model_dump().items() if k not in _DROPPED}
    if env.event_type == "client.referred":
        # The birth year stays here; only the band at the referral date travels (equity view).
        fields["age_band"] = age_band(p.birth_year, p.referred_on)
    for kind in ("appointment", "response"):
        if fields.get(f"{kind}_id") is not None:
            fields[f"{kind}_id"] = ids.of(env, kind, fields[f"{kind}_id"])
    appointment_ref = fields.get("appointment_id")
    if env.event_type == "questionnaire.completed" and appointment_ref in state.appointments:
        fields["appointment_start"] = state.appointments[appointment_ref]
    model = _CARE_TYPES[env.event_type]
    out.append(model(event_id=derived_id("intake", env.source, event_ref), **common, **fields))

    if env.event_type == "appointment.scheduled" and appointment_ref is not None:
        state = replace(state, appointments={**state.appointments, appointment_ref: p.scheduled_start})
    elif env.event_type == "episode.closed":
        state = close(state, episode, closed_on=p.closed_on, reason=p.reason)
    if (clinician and env.event_type in ("clinician.assigned", "client.referred")) or (
        clinician and episode.clinician_id is None
    ):
        current = next(e for e in state.episodes if e.episode_id == episode.episode_id)
        state = assign_clinician(state, current, clinician)
    return Canonical(tuple(out), state, episode.episode_id)
