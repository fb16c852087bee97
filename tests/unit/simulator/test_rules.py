"""The simulator's own rule engine against hand-worked examples of clinical-rules.md."""

from datetime import UTC, date, datetime, timedelta

import pytest

from attune_cli.simulator.ledger import Response
from attune_cli.simulator.rules import EpisodeRules
from attune_cli.simulator.scoring import MarginError, score

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def week(n: float) -> datetime:
    return T0 + timedelta(weeks=n)


def wai(total: int) -> list[int | float | None]:
    base, extra = divmod(total, 12)
    return [base + (1 if i < extra else 0) for i in range(12)]


class Episode:
    """Feeds one WAI-SR score per weekly attended session."""

    def __init__(self) -> None:
        self.rules = EpisodeRules(1, date(2026, 3, 1))
        self.n = 0

    def session(self, total: int | None = None, *, psq: tuple[int, int, int] | None = None) -> str:
        self.n += 1
        at = week(self.n)
        appointment = f"A{self.n}"
        self.rules.session(at, "attended", appointment, at)
        group = []
        if total is not None:
            group.append(Response(f"W{self.n}", "WAI-SR", at, at + timedelta(minutes=5), wai(total)))
        if psq is not None:
            group.append(Response(f"P{self.n}", "PSQ", at, at + timedelta(minutes=6), list(psq)))
        self.rules.responses(group)
        return f"W{self.n}"

    def miss(self, kind: str = "no_show") -> None:
        self.n += 1
        self.rules.session(week(self.n), kind, f"A{self.n}", week(self.n))

    def alerts(self) -> list[tuple[str, str, str | None]]:
        return [(a.rule_id, a.severity, a.resolution) for a in self.rules.alerts]


def test_scoring_follows_the_rules() -> None:
    assert score("WAI-SR", wai(48)).value == 4.0
    srs = score("SRS", [9.5, 9.0, 8.9, 9.9])
    assert srs.value == 37.3 and srs.concern  # an item under 9
    assert not score("SRS", [9.5, 9.0, 9.0, 9.9]).concern
    assert score("PHQ-9", [1, 1, 1, 1, 1, 1, 1, None, 2, 3]).value == round(9 * 9 / 8)  # item 10 unscored
    assert score("GAD-7", [2, 2, 2, 2, 2, None, 1]).value == round(11 * 7 / 6)
    with pytest.raises(MarginError):
        score("PHQ-9", [1, 1, 1, 1, 0, 0, 0, None, 0])  # sum 4: 4.5, where rounding conventions differ
    psq = score("PSQ", [1, 3, 2])
    assert (psq.rupture_reported, psq.tension, psq.resolution) == (True, 3, 2)


def test_a_deep_drop_fires_and_a_quick_return_repairs() -> None:
    ep = Episode()
    for total in (48, 49, 48, 48):
        ep.session(total)
    trigger = ep.session(30)  # mean 2.5 against mu 4.02: drop (4.02 - 2.5) / 0.30 = 5.1
    assert ep.alerts() == [("alliance.rupture", "high", None)]
    assert ep.rules.alerts[0].trigger == trigger
    assert ep.rules.alerts[0].evidence["drop"] == pytest.approx((48.25 / 12 - 2.5) / 0.3, abs=1e-3)
    ep.session(42)  # still below mu
    ep.session(52)  # above mu at the 2nd session after the trough
    assert ep.alerts() == [("alliance.rupture", "high", "repaired")]


def test_three_sessions_below_mu_leave_the_rupture_unrepaired_until_closure() -> None:
    ep = Episode()
    for total in (48, 49, 48, 48, 30, 37, 37, 38):
        ep.session(total)
    alert = ep.rules.alerts[0]
    assert alert.unrepaired and alert.resolution is None
    ep.rules.close(week(9), date(2026, 5, 4), "mutual")
    assert ep.alerts() == [("alliance.rupture", "high", "episode_ended")]


def test_a_drop_between_the_margins_is_refused() -> None:
    ep = Episode()
    for total in (48, 49, 48, 48):
        ep.session(total)
    with pytest.raises(MarginError):
        ep.session(41)  # drop 1.9: under the strict criterion, but too close to it to be a clear truth


def test_psq_tension_three_fires_and_tension_two_does_not() -> None:
    ep = Episode()
    for total in (48, 49, 48, 48):
        ep.session(total)
    ep.session(48, psq=(1, 2, 2))
    assert ep.alerts() == []
    ep.session(46, psq=(1, 4, 1))
    assert ep.alerts() == [("alliance.rupture", "high", None)]
    ep.session(53)  # clearly above every baseline a reader could pick
    assert ep.alerts() == [("alliance.rupture", "high", "repaired")]


def test_two_misses_raise_dropout_risk_and_attending_resolves_it() -> None:
    ep = Episode()
    for total in (48, 49, 48):
        ep.session(total)
    ep.miss("no_show")
    ep.miss("client_cancel")
    assert ep.alerts() == [("engagement.dropout-risk", "normal", None)]
    assert ep.rules.alerts[0].trigger == "A5"
    ep.n += 1
    ep.rules.session(week(5.4), "attended", "A6", week(5.4))
    assert ep.alerts() == [("engagement.dropout-risk", "normal", "re_engaged")]


def test_dropout_while_a_rupture_is_open_is_high() -> None:
    ep = Episode()
    for total in (48, 49, 48, 48, 30, 37, 37, 38):
        ep.session(total)
    ep.miss()
    ep.miss("late_cancel")
    assert ep.alerts()[-1] == ("engagement.dropout-risk", "high", None)


def test_a_clinician_cancellation_is_not_a_miss() -> None:
    ep = Episode()
    ep.session(48)
    ep.miss("clinician_cancel")
    ep.session(48)
    ep.miss("no_show")
    ep.session(48)
    assert ep.alerts() == []


def test_the_sweep_at_the_end_catches_a_ghost_and_refuses_a_borderline_gap() -> None:
    ep = Episode()
    ep.session(48)
    ep.rules.finish(week(1) + timedelta(days=30))
    ((rule, severity, resolution),) = ep.alerts()
    assert (rule, severity, resolution) == ("engagement.dropout-risk", "normal", None)
    assert ep.rules.alerts[0].raised_at == week(1) + timedelta(days=21)
    near = Episode()
    near.session(48)
    with pytest.raises(MarginError):
        near.rules.finish(week(1) + timedelta(days=21, hours=6))


def test_deterioration_raises_and_resolves_addressed() -> None:
    rules = EpisodeRules(1, date(2026, 3, 1))

    def phq(n: int, total: int) -> None:
        items: list[int | float | None] = [min(3, max(0, total - 3 * i)) for i in range(8)] + [0]
        rules.responses([Response(f"P{n}", "PHQ-9", week(n), week(n), items)])

    phq(1, 10)
    phq(2, 18)  # +8: reliable deterioration (threshold +6) with the 2-point margin
    assert [(a.rule_id, a.resolution) for a in rules.alerts] == [("outcome.deterioration", None)]
    phq(3, 11)
    assert [(a.rule_id, a.resolution) for a in rules.alerts] == [("outcome.deterioration", "addressed")]
    with pytest.raises(MarginError):
        phq(4, 16)  # +6 exactly: the rules' own threshold, never a clear truth


def test_an_amendment_that_removes_the_trigger_is_a_false_positive() -> None:
    ep = Episode()
    for total in (48, 49, 48, 48):
        ep.session(total)
    trigger = ep.session(25)
    fixed = Response(trigger, "WAI-SR", week(5), week(5) + timedelta(days=1), wai(48))
    ep.rules.amendment(fixed)
    assert ep.alerts() == [("alliance.rupture", "high", "false_positive")]


def test_safety_is_never_resolved_automatically() -> None:
    rules = EpisodeRules(1, date(2026, 3, 1))
    rules.responses([Response("P1", "PHQ-9", week(1), week(1), [1, 1, 1, 1, 1, 1, 1, 1, 1])])
    rules.responses([Response("P2", "PHQ-9", week(2), week(2), [1, 1, 1, 1, 1, 1, 1, 1, 0])])
    assert [(a.rule_id, a.severity, a.resolution) for a in rules.alerts] == [
        ("safety.phq9-item9", "urgent", None)
    ]
    rules.close(week(3), date(2026, 3, 23), "planned")
    assert rules.alerts[0].resolution == "episode_ended"
