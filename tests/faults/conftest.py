"""The fault suites' shared fixtures: the seeded scenario and its one no-fault run, for the whole session.

tests/faults/test_faults.py and test_infra_faults.py compare every fault run with this one baseline,
so the no-fault run happens once per `make test`, however many fault modules run.
"""

from __future__ import annotations

import pytest

from attune_cli.simulator.model import Scenario
from tests.faults.harness import DRIFT, RESULTS, Snapshot, StackRun, scenario, truth_report


@pytest.fixture(scope="session")
def world() -> Scenario:
    return scenario()


@pytest.fixture(scope="session")
def baseline(world: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    run = StackRun("no-fault", tmp_path_factory.mktemp("no-fault")).start()
    try:
        run.drive(world)
        run.settle()
        snap = run.snapshot(world)
    finally:
        run.stop()
    assert snap.outcome.ok, truth_report(snap)
    return snap


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Every fault scenario's result and whether its alert ids, event ids and bytes equal the no-fault
    run's (each scenario asserts both; the summary puts them together in the log of `make test`)."""
    if not RESULTS:
        return
    terminalreporter.section("fault scenarios: results and alert ids against the no-fault run")
    for name, result in RESULTS.items():
        drift = DRIFT.get(name)
        terminalreporter.write_line(
            f"{name}: {result if result == 'pass' else 'FAIL'}; ids "
            + (f"DRIFT {drift}" if drift else "identical to the no-fault run (ids, event ids, bytes)")
        )
