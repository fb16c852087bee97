"""Scenarios shared by the simulator tests (generated once per session: generation is pure)."""

import pytest

from attune_cli.simulator import Scenario, SimConfig, generate


@pytest.fixture(scope="session")
def default_scenario() -> Scenario:
    """The CLI's default network: 3 clinics, 150 clients, 16 weeks, seed 42."""
    return generate(SimConfig())


@pytest.fixture(scope="session")
def small_scenario() -> Scenario:
    """The smallest network the brief promises full coverage for: 40 clients over 12 weeks."""
    return generate(SimConfig(clinics=3, clients=40, weeks=12, seed=7))
