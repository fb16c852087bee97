"""`attune simulate --via fhir`: the network as FHIR bundles maps back, through intake's FHIR mapping,
onto exactly the envelopes the simulator sends over Kafka (same payloads, times, order)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attune_cli.simulator.fhir import bundles
from attune_cli.simulator.generate import generate
from attune_cli.simulator.model import SimConfig
from attune_intake.domain.fhir.config import FhirConfig
from attune_intake.domain.fhir.ingest import ingest
from attune_intake.domain.fhir.resolve import Context

KEY = b"k" * 32


def _meaning(env: dict[str, Any]) -> tuple[str, str, str, str]:
    payload = {k: v for k, v in env["payload"].items() if k != "referral_source"}  # free text, stays out
    occurred = datetime.fromisoformat(env["occurred_at"]).astimezone(UTC).isoformat()
    return env["event_type"], env["clinic_id"], occurred, json.dumps(payload, sort_keys=True)


def _round_trip(config: SimConfig, max_entries: int) -> None:
    scenario = generate(config)
    expected, seen = [], set()
    for record in scenario.valid_records:
        env = json.loads(record.value)
        if env["event_id"] not in seen:  # a duplicate has no effect on either path
            seen.add(env["event_id"])
            expected.append(_meaning(env))

    known: dict[str, dict[str, Any]] = {}  # what intake's store keeps between requests
    got: list[tuple[str, str, str, str]] = []
    dead: list[str] = []
    covered = 0
    mapping = FhirConfig().for_source("ehr-sim")
    for n, bundle in bundles(scenario.records, max_entries=max_entries):
        covered += n
        ctx = Context(source="ehr-sim", clinics=frozenset({"*"}), config=mapping, known=dict(known))
        result = ingest(bundle, ctx, KEY, datetime.now(UTC))
        known |= result.remember
        got.extend(_meaning(json.loads(raw)) for _, raw in result.envelopes)
        dead.extend(d.error.message for d in result.dead)
    assert covered == len(scenario.records)
    assert dead == []
    assert got == expected


@pytest.mark.parametrize("seed", [7, 11])
def test_fhir_bundles_give_back_the_simulated_envelopes_in_order(seed: int) -> None:
    _round_trip(SimConfig(clinics=2, clients=30, weeks=10, seed=seed), max_entries=60)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    clinics=st.integers(1, 3),
    clients=st.integers(1, 25),
    weeks=st.integers(2, 14),
    max_entries=st.integers(8, 300),
)
def test_any_network_through_fhir_is_the_same_envelopes(
    seed: int, clinics: int, clients: int, weeks: int, max_entries: int
) -> None:
    """Property: whatever the network and however it is cut into bundles, FHIR and envelopes agree."""
    _round_trip(SimConfig(clinics=clinics, clients=clients, weeks=weeks, seed=seed), max_entries)


async def test_publish_via_fhir_posts_bundles_and_counts_the_answers() -> None:
    import httpx

    from attune_cli.simulator.publish import publish

    scenario = generate(SimConfig(clinics=1, clients=8, weeks=6, seed=3))
    known: dict[str, dict[str, Any]] = {}
    posted: list[int] = []

    def intake(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/fhir/r4" and request.headers["content-type"] == "application/fhir+json"
        assert request.headers["authorization"] == "Bearer dev-ehr-sim"
        ctx = Context(source="ehr-sim", clinics=frozenset({"*"}), config=FhirConfig().for_source("ehr-sim"))
        ctx.known = dict(known)
        result = ingest(json.loads(request.content), ctx, KEY, datetime.now(UTC))
        known.update(result.remember)
        posted.append(len(result.envelopes))
        return httpx.Response(200, json=result.bundle())

    result = await publish(scenario, "fhir", transport=httpx.MockTransport(intake))
    unique = len({json.loads(r.value)["event_id"] for r in scenario.valid_records})
    assert result.via == "fhir" and result.accepted == sum(posted) == unique
    assert result.rejected == 0
    assert sorted(result.skipped) == sorted(r.expected_code or "poison" for r in scenario.poison_records)
    assert result.sent == len(scenario.valid_records)
