"""Episodes of care: which episode an event belongs to, and when a new one opens. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Literal

EpisodeStatus = Literal["open", "closed"]


@dataclass(frozen=True, slots=True)
class Episode:
    """One episode of care of one client at one clinic."""

    episode_id: str
    opened_on: date
    status: EpisodeStatus = "open"
    clinician_id: str | None = None
    closed_on: date | None = None
    close_reason: str | None = None

    def covers(self, day: date) -> bool:
        """True when day falls inside the episode (open episodes run on indefinitely)."""
        return self.status == "open" or (self.closed_on is not None and day <= self.closed_on)


@dataclass(frozen=True, slots=True)
class ClientState:
    """Everything intake keeps about one client: episodes (oldest first) and known appointments.

    `mrn` is PHI and stays in intake: it is what the one re-identification door answers with.
    Appointments are keyed by their pseudonyms.
    """

    client_ref: str
    clinic_id: str
    mrn: str | None = None
    episodes: tuple[Episode, ...] = ()
    appointments: dict[str, datetime] = field(default_factory=dict)
    version: int = 0

    @property
    def current(self) -> Episode | None:
        """The newest episode, open or closed."""
        return self.episodes[-1] if self.episodes else None

    def with_episode(self, episode: Episode) -> ClientState:
        """A copy with this episode added or replaced (matched by id)."""
        others = [e for e in self.episodes if e.episode_id != episode.episode_id]
        merged = sorted([*others, episode], key=lambda e: (e.opened_on, e.episode_id))
        return replace(self, episodes=tuple(merged))


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an event lands: its episode, whether it opened that episode, and the new client state."""

    episode: Episode
    opened: bool
    state: ClientState


def place(
    state: ClientState, *, event_type: str, day: date, new_episode_id: str, clinician_id: str | None
) -> Placement:
    """Attach an event dated `day` to an episode, opening one when the rules say so.

    - A client with no episode gets one (EHRs often send no referral).
    - An event dated inside an episode (open, or on or before its closure) attaches to it.
    - An event dated after the newest episode closed opens a new episode; so does a referral.
    - A late event dated in the gap between two episodes attaches to the later one; one dated
      before the first episode opened attaches to the first, which then counts as opened that day.
    - A closure dated before every known episode closes an earlier episode not seen until now
      (events arriving newest first): that episode is opened, to be closed by the caller.
    """
    if not state.episodes:
        return _open(state, new_episode_id, day, clinician_id)
    newest = state.episodes[-1]
    if newest.status == "closed" and newest.closed_on is not None and day > newest.closed_on:
        return _open(state, new_episode_id, day, clinician_id)
    for ep in reversed(state.episodes):
        if ep.opened_on <= day:
            if ep.covers(day):
                return Placement(ep, False, state)
            later = [e for e in state.episodes if e.opened_on > ep.opened_on]
            return Placement(later[0] if later else ep, False, state)
    if event_type == "episode.closed":
        return _open(state, new_episode_id, day, clinician_id)
    first = state.episodes[0]
    moved = replace(first, opened_on=day)
    return Placement(moved, False, state.with_episode(moved))


def _open(state: ClientState, episode_id: str, day: date, clinician_id: str | None) -> Placement:
    existing = next((e for e in state.episodes if e.episode_id == episode_id), None)
    if existing is not None:  # replay of the event that opened it
        return Placement(existing, False, state)
    ep = Episode(episode_id=episode_id, opened_on=day, clinician_id=clinician_id)
    return Placement(ep, True, state.with_episode(ep))


def close(state: ClientState, episode: Episode, *, closed_on: date, reason: str) -> ClientState:
    """Close an episode (a repeated closure keeps the first closing date and reason)."""
    if episode.status == "closed":
        return state
    return state.with_episode(replace(episode, status="closed", closed_on=closed_on, close_reason=reason))


def assign_clinician(state: ClientState, episode: Episode, clinician_id: str) -> ClientState:
    """Record the episode's current clinician."""
    if episode.clinician_id == clinician_id:
        return state
    return state.with_episode(replace(episode, clinician_id=clinician_id))
