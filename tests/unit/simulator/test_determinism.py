"""Same seed, same bytes; another seed, another network; and the default is fast."""

import json
import time
from datetime import date
from pathlib import Path

from attune_cli.simulator import Scenario, SimConfig, generate, write_truth


def _fingerprint(scenario: Scenario) -> list[tuple[bytes | None, bytes, str]]:
    return [(r.key, r.value, r.kind) for r in scenario.records]


def test_same_seed_gives_identical_records_and_truth(tmp_path: Path) -> None:
    cfg = SimConfig(clinics=2, clients=30, weeks=10, seed=123)
    first, second = generate(cfg), generate(cfg)
    assert _fingerprint(first) == _fingerprint(second)
    assert first.truth.to_dict() == second.truth.to_dict()
    a = write_truth(first, tmp_path / "a")
    b = write_truth(second, tmp_path / "b.json")
    assert a.name == "truth.json"
    assert a.read_bytes() == b.read_bytes()


def test_default_scenario_is_reproducible(default_scenario: Scenario) -> None:
    again = generate(SimConfig())
    assert _fingerprint(again) == _fingerprint(default_scenario)


def test_another_seed_gives_another_network() -> None:
    a = generate(SimConfig(clients=30, weeks=10, seed=1))
    b = generate(SimConfig(clients=30, weeks=10, seed=2))
    assert _fingerprint(a) != _fingerprint(b)
    assert [c.archetype for c in a.truth.clients] != [c.archetype for c in b.truth.clients]


def test_start_date_moves_every_timestamp() -> None:
    a = generate(SimConfig(clients=10, weeks=6, seed=5))
    b = generate(SimConfig(clients=10, weeks=6, seed=5, start=date(2026, 1, 12)))
    assert a.truth.as_of == "2026-02-16T00:00:00+00:00"
    assert b.truth.as_of == "2026-02-23T00:00:00+00:00"
    first_a = json.loads(next(r.value for r in a.records if r.kind == "event"))
    first_b = json.loads(next(r.value for r in b.records if r.kind == "event"))
    assert first_a["occurred_at"] != first_b["occurred_at"]


def test_default_generates_well_under_ten_seconds() -> None:
    began = time.perf_counter()
    scenario = generate(SimConfig())
    elapsed = time.perf_counter() - began
    assert len(scenario.truth.clients) == 150
    assert elapsed < 5.0, f"the default scenario took {elapsed:.2f}s"


def test_truth_json_is_plain_json(default_scenario: Scenario, tmp_path: Path) -> None:
    doc = json.loads(write_truth(default_scenario, tmp_path).read_text())
    assert doc["schema"] == "attune.simulator.truth/1"
    assert doc["as_of"] == "2026-04-27T00:00:00+00:00"
    assert set(doc) >= {"config", "clinics", "clients", "dead_letters", "reporting", "interpretations"}
    client = doc["clients"][0]
    assert set(client) == {
        "clinic_id",
        "mrn",
        "client_ref",
        "clinician_id",
        "archetype",
        "episodes",
        "expected_alerts",
    }
