"""A seeded, deterministic clinic-network simulator with ground truth (`attune simulate`).

generate(SimConfig(...)) -> Scenario (pure); await publish(scenario, via="kafka"|"http");
write_truth(scenario, path) writes truth.json.
"""

from attune_cli.simulator.generate import generate
from attune_cli.simulator.model import (
    ClientTruth,
    DeadLetterTruth,
    EpisodeTruth,
    ExpectedAlert,
    OutboundRecord,
    Scenario,
    SimConfig,
    Truth,
    write_truth,
)
from attune_cli.simulator.publish import PublishError, PublishResult, publish

__all__ = [
    "ClientTruth",
    "DeadLetterTruth",
    "EpisodeTruth",
    "ExpectedAlert",
    "OutboundRecord",
    "PublishError",
    "PublishResult",
    "Scenario",
    "SimConfig",
    "Truth",
    "generate",
    "publish",
    "write_truth",
]
