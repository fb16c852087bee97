"""Episode rules: unknown clients, re-referral, late events around a closure."""

from __future__ import annotations

from datetime import date

from attune_intake.domain.episodes import ClientState, close, place

D = date


def _state() -> ClientState:
    return ClientState(client_ref="cr_X", clinic_id="north-01")


def test_unknown_client_opens_an_episode_on_any_event() -> None:
    p = place(
        _state(), event_type="session.attended", day=D(2026, 3, 2), new_episode_id="ep1", clinician_id="c1"
    )
    assert p.opened and p.episode.episode_id == "ep1" and p.episode.opened_on == D(2026, 3, 2)
    assert p.state.episodes[0].clinician_id == "c1"


def test_events_inside_an_open_episode_attach() -> None:
    s = place(
        _state(), event_type="client.referred", day=D(2026, 3, 2), new_episode_id="ep1", clinician_id=None
    ).state
    p = place(s, event_type="client.referred", day=D(2026, 4, 1), new_episode_id="ep2", clinician_id=None)
    assert not p.opened and p.episode.episode_id == "ep1" and len(p.state.episodes) == 1


def test_referral_after_closure_opens_a_new_episode() -> None:
    s = place(
        _state(), event_type="client.referred", day=D(2026, 3, 2), new_episode_id="ep1", clinician_id=None
    ).state
    s = close(s, s.episodes[0], closed_on=D(2026, 4, 1), reason="planned")
    p = place(s, event_type="client.referred", day=D(2026, 5, 1), new_episode_id="ep2", clinician_id=None)
    assert p.opened and p.episode.episode_id == "ep2"
    assert [e.status for e in p.state.episodes] == ["closed", "open"]


def test_late_events_around_a_closure() -> None:
    s = place(
        _state(), event_type="client.referred", day=D(2026, 3, 2), new_episode_id="ep1", clinician_id=None
    ).state
    s = close(s, s.episodes[0], closed_on=D(2026, 4, 1), reason="planned")
    on_the_day = place(
        s, event_type="session.attended", day=D(2026, 4, 1), new_episode_id="x", clinician_id=None
    )
    before = place(s, event_type="session.missed", day=D(2026, 3, 20), new_episode_id="y", clinician_id=None)
    after = place(s, event_type="session.attended", day=D(2026, 4, 2), new_episode_id="z", clinician_id=None)
    assert (on_the_day.opened, on_the_day.episode.episode_id) == (False, "ep1")
    assert (before.opened, before.episode.episode_id) == (False, "ep1")
    assert (after.opened, after.episode.episode_id) == (True, "z")


def test_event_in_the_gap_between_episodes_attaches_to_the_later_one() -> None:
    s = place(
        _state(), event_type="client.referred", day=D(2026, 1, 5), new_episode_id="ep1", clinician_id=None
    ).state
    s = close(s, s.episodes[0], closed_on=D(2026, 2, 1), reason="planned")
    s = place(
        s, event_type="client.referred", day=D(2026, 3, 1), new_episode_id="ep2", clinician_id=None
    ).state
    p = place(s, event_type="session.attended", day=D(2026, 2, 15), new_episode_id="q", clinician_id=None)
    assert (p.opened, p.episode.episode_id) == (False, "ep2")


def test_newest_first_delivery_still_finds_two_episodes() -> None:
    # A re-referral arrives first, then the closure of the earlier episode, then its sessions.
    s = place(
        _state(), event_type="client.referred", day=D(2026, 5, 1), new_episode_id="ep2", clinician_id=None
    ).state
    p = place(s, event_type="episode.closed", day=D(2026, 4, 1), new_episode_id="ep1", clinician_id=None)
    assert p.opened and p.episode.episode_id == "ep1"
    s = close(p.state, p.episode, closed_on=D(2026, 4, 1), reason="planned")
    q = place(s, event_type="session.attended", day=D(2026, 3, 10), new_episode_id="n", clinician_id=None)
    assert (q.opened, q.episode.episode_id, q.episode.opened_on) == (False, "ep1", D(2026, 3, 10))
    assert [e.episode_id for e in q.state.episodes] == ["ep1", "ep2"]


def test_replaying_the_opening_event_does_not_open_twice() -> None:
    s = place(
        _state(), event_type="client.referred", day=D(2026, 3, 2), new_episode_id="ep1", clinician_id=None
    ).state
    s = close(s, s.episodes[0], closed_on=D(2026, 3, 3), reason="planned")
    s = place(
        s, event_type="client.referred", day=D(2026, 4, 2), new_episode_id="ep2", clinician_id=None
    ).state
    again = place(s, event_type="client.referred", day=D(2026, 4, 2), new_episode_id="ep2", clinician_id=None)
    assert not again.opened and len(again.state.episodes) == 2


def test_a_second_closure_keeps_the_first() -> None:
    s = place(
        _state(), event_type="client.referred", day=D(2026, 3, 2), new_episode_id="ep1", clinician_id=None
    ).state
    s = close(s, s.episodes[0], closed_on=D(2026, 4, 1), reason="planned")
    s2 = close(s, s.episodes[0], closed_on=D(2026, 4, 9), reason="unilateral")
    assert s2.episodes[0].closed_on == D(2026, 4, 1) and s2.episodes[0].close_reason == "planned"
