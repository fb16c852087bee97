"""The ground truth covers every rule and code, and every decision in it sits clearly off its threshold.

The margins are recomputed here from the emitted bytes (helpers.py), not taken from the simulator.
"""

from datetime import datetime, timedelta

import pytest

from attune_cli.simulator import ExpectedAlert, Scenario, SimConfig, generate
from attune_cli.simulator.network import ARCHETYPES, HISTORY_WEIGHTS
from tests.unit.simulator.helpers import ClientRecords, by_client, drops, outcomes

RULES = {"safety.phq9-item9", "alliance.rupture", "outcome.deterioration", "engagement.dropout-risk"}
CODES = {
    "invalid_json",
    "not_an_object",
    "schema_violation",
    "unknown_event_type",
    "unsupported_version",
    "too_large",
}
RESOLUTIONS = {"repaired", "re_engaged", "episode_ended", "addressed", "false_positive", None}
RELIABLE = {"ORS": 5.0, "PHQ-9": 6.0, "GAD-7": 4.0}
SCORE_RUPTURE_ARCHETYPES = {
    "rupture_repaired",
    "rupture_unrepaired",
    "dropout_after_rupture",
    "amended_false_positive",
}


def _alerts(scenario: Scenario) -> list[tuple[str, ExpectedAlert]]:
    return [(c.archetype, a) for c in scenario.truth.clients for a in c.expected_alerts]


@pytest.mark.parametrize(
    "cfg",
    [
        SimConfig(clinics=3, clients=40, weeks=12, seed=7),
        SimConfig(clinics=1, clients=40, weeks=12, seed=11),
        SimConfig(clinics=5, clients=60, weeks=14, seed=2026),
        SimConfig(),
    ],
    ids=["3x40x12", "1x40x12", "5x60x14", "default"],
)
def test_every_rule_code_archetype_and_resolution_is_in_the_truth(cfg: SimConfig) -> None:
    scenario = generate(cfg)
    alerts = _alerts(scenario)
    assert {a.rule_id for _, a in alerts} == RULES
    assert {d.code for d in scenario.truth.dead_letters} == CODES
    assert {c.archetype for c in scenario.truth.clients} == set(ARCHETYPES) - set(HISTORY_WEIGHTS)
    assert {a.resolution for _, a in alerts} == RESOLUTIONS
    dropout = {(a.severity, a.criteria[0]) for _, a in alerts if a.rule_id == "engagement.dropout-risk"}
    assert dropout >= {
        ("normal", "consecutive_misses"),
        ("high", "consecutive_misses"),
        ("normal", "inactivity"),
    }
    criteria = {c for _, a in alerts if a.rule_id == "alliance.rupture" for c in a.criteria}
    assert {"strict", "psq"} <= criteria


def test_archetypes_come_in_sensible_proportions(default_scenario: Scenario) -> None:
    counts: dict[str, int] = {}
    for client in default_scenario.truth.clients:
        counts[client.archetype] = counts.get(client.archetype, 0) + 1
    assert 0.35 <= counts["stable"] / 150 <= 0.5
    assert all(counts[a] >= 1 for a in ARCHETYPES if a not in HISTORY_WEIGHTS)
    assert max(n for a, n in counts.items() if a != "stable") <= 15


def _client(clients: dict[str, ClientRecords], clinic_id: str, mrn: str) -> ClientRecords:
    return clients[f"{clinic_id}:{mrn}"]


def test_every_score_rupture_drops_at_least_three_sd(default_scenario: Scenario) -> None:
    clients = by_client(default_scenario)
    checked = 0
    for client in default_scenario.truth.clients:
        records = _client(clients, client.clinic_id, client.mrn)
        for alert in client.expected_alerts:
            if alert.rule_id != "alliance.rupture" or "strict" not in alert.criteria:
                continue
            instrument = str(alert.evidence["instrument"])
            series = records.series[(alert.episode, instrument)]
            ((_, first, final),) = [d for d in drops(series, instrument) if d[0].response_id == alert.trigger]
            assert first >= 3.0, (client.mrn, first)
            if alert.resolution == "false_positive":
                assert final < 1.0  # the amendment takes the trigger away completely
            checked += 1
    assert checked >= 20


def test_clients_without_a_score_rupture_never_drop_one_sd(default_scenario: Scenario) -> None:
    clients = by_client(default_scenario)
    stable = 0
    for client in default_scenario.truth.clients:
        if client.archetype in SCORE_RUPTURE_ARCHETYPES:
            continue
        records = _client(clients, client.clinic_id, client.mrn)
        for (_, instrument), series in records.series.items():
            for point, first, final in drops(series, instrument):
                assert max(first, final) < 1.0, (client.archetype, client.mrn, point.response_id)
        stable += client.archetype == "stable"
    assert stable >= 50


def _open_during(alert: ExpectedAlert, when: datetime) -> bool:
    raised = datetime.fromisoformat(alert.raised_at)
    ended = None if alert.resolved_at is None else datetime.fromisoformat(alert.resolved_at)
    return raised <= when and (ended is None or when < ended)


def test_every_rupture_signal_is_explained_by_an_expected_alert(default_scenario: Scenario) -> None:
    """A drop of 1 SD or more happens only at a trigger, or while that client's rupture alert is open."""
    clients = by_client(default_scenario)
    for client in default_scenario.truth.clients:
        records = _client(clients, client.clinic_id, client.mrn)
        ruptures = [a for a in client.expected_alerts if a.rule_id == "alliance.rupture"]
        for (_, instrument), series in records.series.items():
            for point, first, _ in drops(series, instrument):
                if first < 1.0:
                    continue
                assert any(
                    a.trigger == point.response_id or _open_during(a, point.completed_at) for a in ruptures
                ), (client.mrn, point.response_id, first)


def test_repairs_land_clearly_above_and_non_repairs_clearly_below_the_baseline(
    default_scenario: Scenario,
) -> None:
    clients = by_client(default_scenario)
    for client in default_scenario.truth.clients:
        records = _client(clients, client.clinic_id, client.mrn)
        for alert in client.expected_alerts:
            if alert.rule_id != "alliance.rupture" or "strict" not in alert.criteria:
                continue
            if alert.resolution == "false_positive":
                continue
            instrument = str(alert.evidence["instrument"])
            margin = 0.15 if instrument == "WAI-SR" else 0.5
            mu = float(alert.evidence["mu"])  # type: ignore[arg-type]
            series = records.series[(alert.episode, instrument)]
            trough = next(i for i, p in enumerate(series) if p.response_id == alert.trigger)
            after = [p.final for p in series[trough + 1 :]]
            if alert.resolution == "repaired":
                repair = next(i for i, v in enumerate(after) if v >= mu)
                assert repair <= 1, "repairs come within two sessions of the trough"
                assert after[repair] >= mu + margin
                assert all(v <= mu - margin for v in after[:repair])
            else:
                assert len(after) >= 3, "an unrepaired rupture shows at least 3 sessions after the trough"
                assert all(series[trough].final + margin <= v <= mu - margin for v in after)


def test_outcome_changes_are_far_from_the_reliable_change_thresholds(default_scenario: Scenario) -> None:
    clients = by_client(default_scenario)
    triggers = {
        a.trigger
        for c in default_scenario.truth.clients
        for a in c.expected_alerts
        if a.rule_id == "outcome.deterioration"
    }
    seen = 0
    for client in default_scenario.truth.clients:
        records = _client(clients, client.clinic_id, client.mrn)
        for (_, instrument), rows in outcomes(records).items():
            intake = rows[0][2]
            for response_id, _, total in rows[1:]:
                worse = intake - total if instrument == "ORS" else total - intake
                if response_id in triggers:
                    assert worse >= RELIABLE[instrument] + 2
                    seen += 1
                else:
                    assert worse <= RELIABLE[instrument] - 2, (client.mrn, instrument, worse)
    assert seen == len(triggers) >= 8
    instruments = {
        a.evidence["instrument"] for _, a in _alerts(default_scenario) if a.rule_id == "outcome.deterioration"
    }
    assert instruments == {"ORS", "PHQ-9", "GAD-7"}


def test_item9_positives_are_exactly_the_safety_triggers(default_scenario: Scenario) -> None:
    clients = by_client(default_scenario)
    for client in default_scenario.truth.clients:
        positives = [
            env.payload.response_id  # type: ignore[union-attr]
            for env in _client(clients, client.clinic_id, client.mrn).envelopes
            if env.event_type == "questionnaire.completed"
            and env.payload.instrument == "PHQ-9"  # type: ignore[union-attr]
            and (env.payload.items[8] or 0) >= 1  # type: ignore[union-attr]
        ]
        safety = [a for a in client.expected_alerts if a.rule_id == "safety.phq9-item9"]
        assert [a.trigger for a in safety] == positives[:1]
        for alert in safety:
            assert alert.severity == "urgent"
            assert alert.resolution in (None, "episode_ended")  # never resolved automatically


def test_psq_fires_only_with_tension_three_or_more(default_scenario: Scenario) -> None:
    clients = by_client(default_scenario)
    below = 0
    for client in default_scenario.truth.clients:
        triggers = {a.trigger for a in client.expected_alerts if a.rule_id == "alliance.rupture"}
        for env in _client(clients, client.clinic_id, client.mrn).envelopes:
            p = env.payload
            if env.event_type != "questionnaire.completed" or p.instrument != "PSQ":  # type: ignore[union-attr]
                continue
            rupture, tension, _ = p.items  # type: ignore[union-attr]
            fires = rupture == 1 and (tension or 0) >= 3
            assert (p.response_id in triggers) == fires  # type: ignore[union-attr]
            below += rupture == 1 and tension == 2
    assert below >= 3


def test_ghosts_are_caught_only_by_the_inactivity_sweep(default_scenario: Scenario) -> None:
    as_of = datetime.fromisoformat(default_scenario.truth.as_of)
    clients = by_client(default_scenario)
    ghosts = 0
    for client in default_scenario.truth.clients:
        envelopes = _client(clients, client.clinic_id, client.mrn).envelopes
        last = client.episodes[-1]
        if client.archetype == "inactive_ghost":
            ghosts += 1
            assert last.open_at_end and last.last_attended_at is not None
            assert as_of - datetime.fromisoformat(last.last_attended_at) >= timedelta(days=24)
            assert not any(e.event_type in ("session.missed", "session.cancelled") for e in envelopes)
            assert envelopes[-1].event_type in ("session.attended", "questionnaire.completed")
            (alert,) = client.expected_alerts
            assert (alert.criteria, alert.severity, alert.resolution) == (["inactivity"], "normal", None)
        elif last.open_at_end and last.last_attended_at is not None:
            # Every other open episode saw its client well within 21 days of the end.
            assert as_of - datetime.fromisoformat(last.last_attended_at) < timedelta(days=18)
    assert ghosts >= 3


def test_dropout_severity_is_never_borderline(default_scenario: Scenario) -> None:
    for client in default_scenario.truth.clients:
        ruptures = [a for a in client.expected_alerts if a.rule_id == "alliance.rupture"]
        for alert in client.expected_alerts:
            if alert.rule_id != "engagement.dropout-risk":
                continue
            at = datetime.fromisoformat(alert.raised_at)
            mine = [r for r in ruptures if r.episode == alert.episode]
            if alert.severity == "high":
                assert any(_open_during(r, at) for r in mine)
            else:
                assert mine == [], "a normal dropout alert comes from a client who never had a rupture"


def test_reporting_figures_add_up(default_scenario: Scenario) -> None:
    reporting = default_scenario.truth.reporting
    network, clinics = reporting["network"], reporting["clinics"]
    assert network["clients"] == sum(c["clients"] for c in clinics.values()) == 150
    attended = sum(
        r.event_type == "session.attended" for r in default_scenario.records if r.kind != "duplicate"
    )
    assert network["sessions"]["attended"] == attended
    episodes = [e for c in default_scenario.truth.clients for e in c.episodes]
    assert network["episodes"]["opened"] == len(episodes)
    assert network["episodes"]["closed"] == sum(not e.open_at_end for e in episodes)
    for name in ("unilateral", "last_missed", "low_dose"):
        assert network["dropouts"][name] == sum(e.dropout[name] for e in episodes) > 0
    ruptures = network["ruptures"]
    assert ruptures["raised"] == ruptures["repaired"] + ruptures["unrepaired"] + ruptures["false_positive"]
    assert ruptures["raised"] == network["alerts_by_rule"]["alliance.rupture"]
    for rule in RULES:
        assert network["alerts_by_rule"][rule] == sum(c["alerts_by_rule"][rule] for c in clinics.values())
