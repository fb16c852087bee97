"""outcome.not-on-track in the simulator: its rule engine against worked cases (the style of
test_rules.py), and the truth of a generated network against its own records.

The cases use a hand-made model whose band is easy to read: ORS low edge = intake + 1 at every session
(median + 2, high + 4); PHQ-9 high edge = intake + 1 (low - 3, median - 1).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from attune_cli.simulator import Scenario, SimConfig, generate
from attune_cli.simulator.history import BAND_MARGIN, NOT_ON_TRACK_MIN_SESSION, band
from attune_cli.simulator.ledger import NOT_ON_TRACK, Response
from attune_cli.simulator.rules import EpisodeRules
from attune_cli.simulator.scoring import MarginError
from attune_measures.domain.trajectories import TrajectoryModel
from tests.unit.simulator.helpers import by_client, outcomes

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
AT = datetime(2026, 1, 1, tzinfo=UTC)


def _model(instrument: str, low: float, median: float, high: float) -> TrajectoryModel:
    lines = ((low, 1.0, 0.0), (median, 1.0, 0.0), (high, 1.0, 0.0))
    return TrajectoryModel(instrument, lines, 60, 180, AT, f"test-{instrument}")


MODELS = {"ORS": _model("ORS", 1.0, 2.0, 4.0), "PHQ-9": _model("PHQ-9", -3.0, -1.0, 1.0)}


def ors(total: float) -> list[Any]:
    tenths = round(total * 10)
    base, extra = divmod(tenths, 4)
    return [(base + (1 if i < extra else 0)) / 10 for i in range(4)]


def phq(total: int) -> list[Any]:
    base, extra = divmod(total, 8)
    return [base + (1 if i < extra else 0) for i in range(8)] + [0]  # item 9 at 0: no safety alert


class Episode:
    """Feeds one session of outcome scores a week."""

    def __init__(self) -> None:
        self.rules = EpisodeRules(1, date(2026, 3, 1), MODELS)
        self.n = 0

    def scores(self, **values: float) -> None:
        self.n += 1
        at = T0 + timedelta(weeks=self.n)
        self.rules.session(at, "attended", f"A{self.n}", at)
        group = []
        for key, value in values.items():
            name = "ORS" if key == "ors" else "PHQ-9"
            items = ors(value) if name == "ORS" else phq(int(value))
            group.append(Response(f"{key}{self.n}", name, at, at + timedelta(minutes=5), items))
        self.rules.responses(group)

    def alerts(self) -> list[tuple[str, str | None, list[str]]]:
        return [(a.trigger, a.resolution, a.triggers) for a in self.rules.alerts if a.rule_id == NOT_ON_TRACK]


def test_phq9_items_helper_scores_what_it_says() -> None:
    from attune_cli.simulator.scoring import score

    assert [score("PHQ-9", phq(t)).value for t in (0, 5, 12, 20)] == [0, 5, 12, 20]
    assert [score("ORS", ors(t)).value for t in (20.0, 23.4, 18.1)] == [20.0, 23.4, 18.1]


@pytest.mark.parametrize(
    ("ors_scores", "expected"),
    [
        # intake 20: the low edge is 21 at every session; session 2 is never judged
        ([20, 17, 22, 22], []),
        ([20, 22, 19.5, 19.5], [("ors3", None, ["ors3", "ors4"])]),  # fires at 3, stays off track
        ([20, 22, 19.5, 22], [("ors3", "addressed", ["ors3"])]),  # back inside: addressed (auto)
        ([20, 22, 19.5, 25], [("ors3", "addressed", ["ors3"])]),  # better than the band also resolves
        ([20, 22, 19.5, 21.5, 19], [("ors3", "addressed", ["ors3"]), ("ors5", None, ["ors5"])]),
        ([20, 22, 21.2], []),  # inside, clear of the edge
    ],
)
def test_ors_below_the_band_from_session_3(ors_scores: list[float], expected: list[Any]) -> None:
    ep = Episode()
    for value in ors_scores:
        ep.scores(ors=value)
    assert ep.alerts() == expected


def test_one_alert_per_episode_and_every_triggering_instrument_must_come_back() -> None:
    ep = Episode()
    ep.scores(ors=20, phq=10)  # intake: ORS low edge 21, PHQ-9 high edge 11
    ep.scores(ors=22, phq=10)
    ep.scores(ors=19, phq=10)  # ORS off track: raised
    ep.scores(ors=19, phq=13)  # PHQ-9 off track too: the same alert
    ep.scores(ors=23, phq=13)  # ORS back, PHQ-9 not: still open
    assert ep.alerts() == [("ors3", None, ["ors3", "ors4", "phq4", "phq5"])]
    ep.scores(ors=23, phq=9)
    assert ep.alerts() == [("ors3", "addressed", ["ors3", "ors4", "phq4", "phq5"])]
    assert [a.severity for a in ep.rules.alerts] == ["normal"]


def test_closure_ends_an_open_alert_and_no_model_never_alerts() -> None:
    ep = Episode()
    for value in (20, 22, 18):
        ep.scores(ors=value)
    ep.rules.close(T0 + timedelta(weeks=5), date(2026, 4, 6), "mutual")
    assert ep.alerts() == [("ors3", "episode_ended", ["ors3"])]
    quiet = EpisodeRules(1, date(2026, 3, 1), {})
    for n, value in enumerate((20, 22, 10, 10), start=1):
        at = T0 + timedelta(weeks=n)
        quiet.responses([Response(f"o{n}", "ORS", at, at, ors(value))])
    assert not [a for a in quiet.alerts if a.rule_id == NOT_ON_TRACK]


@pytest.mark.parametrize("score", [21.0, 20.95, 21.05])
def test_a_score_on_or_near_the_edge_is_redrawn(score: float) -> None:
    ep = Episode()
    ep.scores(ors=20)
    ep.scores(ors=22)
    with pytest.raises(MarginError):
        ep.scores(ors=score)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return generate(SimConfig(history=True))


def test_the_truth_flags_exactly_the_scores_worse_than_their_band(scenario: Scenario) -> None:
    """Recomputed from the records: every score at session >= 3 lies clear of its band's edge; the
    episodes with one worse than it are those with a not-on-track alert, raised by the first of them."""
    models = {
        name: TrajectoryModel.from_dict(data) for name, data in scenario.truth.trajectories["models"].items()
    }
    clients = by_client(scenario)
    flagged: set[tuple[str, int]] = set()
    first_trigger: dict[tuple[str, int], tuple[datetime, str]] = {}
    judged = 0
    for truth in scenario.truth.clients:
        records = clients[f"{truth.clinic_id}:{truth.mrn}"]
        for (episode, instrument), rows in outcomes(records).items():
            intake = rows[0][2]
            for s, (response_id, session_at, value) in enumerate(rows, start=1):
                if s < NOT_ON_TRACK_MIN_SESSION:
                    continue
                b = band(models[instrument], intake, s)
                judged += 1
                assert abs(value - b.edge(instrument)) >= BAND_MARGIN
                if b.worse(instrument, value):
                    flagged.add((truth.client_ref, episode))
                    seen = first_trigger.get((truth.client_ref, episode))
                    if seen is None or session_at < seen[0]:
                        first_trigger[(truth.client_ref, episode)] = (session_at, response_id)
    alerts = {
        (c.client_ref, a.episode): a
        for c in scenario.truth.clients
        for a in c.expected_alerts
        if a.rule_id == NOT_ON_TRACK
    }
    assert judged > 500
    assert set(alerts) == flagged  # one alert per episode here: none comes back and misses again
    assert {k: a.trigger for k, a in alerts.items()} == {k: rid for k, (_, rid) in first_trigger.items()}
    assert all(a.severity == "normal" for a in alerts.values())
    ends = {a.resolution for a in alerts.values()}
    assert {None, "addressed"} <= ends


def test_off_track_stories_and_only_they_are_flagged(scenario: Scenario) -> None:
    by_archetype: dict[str, set[str | None]] = {}
    for c in scenario.truth.clients:
        for a in c.expected_alerts:
            if a.rule_id == NOT_ON_TRACK:
                by_archetype.setdefault(c.archetype, set()).add(a.resolution)
    assert set(by_archetype) == {"not_on_track", "not_on_track_recovered"}
    assert by_archetype["not_on_track_recovered"] == {"addressed"}
    assert by_archetype["not_on_track"] <= {None, "episode_ended"}
