"""alerts' Kafka edge: the batch subscriber on clinic.measures.v1 (the HTTP API is in api.py)."""

from __future__ import annotations

from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from attune_alerts.deps import Deps
from attune_alerts.sweeper import PartitionTracker
from attune_shared.kafka import batch_subscriber
from attune_shared.runtime import Service
from attune_shared.settings import ServiceSettings
from attune_shared.topics import Topics

GROUP = "attune-alerts"


def input_topics(settings: ServiceSettings) -> list[str]:
    """The physical names of the topics alerts consumes."""
    # Measures forwards the care events between its scores: one topic keeps each client's order.
    return [settings.topic(Topics.MEASURES)]


def register_consumer(service: Service[Deps], partitions: PartitionTracker) -> None:
    """One subscriber on clinic.measures.v1; offsets are committed only after process() returns.

    The topic is keyed by client_ref and carries each client's scores with its care events forwarded
    between them, in the EHR's order: an episode's inputs reach one replica in order, so its state
    has one writer (the optimistic version check covers rebalances).
    """
    batch_subscriber(
        service,
        input_topics(service.settings),
        group=GROUP,
        process=lambda batch: service.deps.pipeline.process(batch.records),
        hold=lambda: service.deps.lock,  # the inactivity sweep writes episodes under the same lock
        listener=partitions,
        assignors=(RangePartitionAssignor,),
        title="alerts-inputs",
        description="Applies the alert rules to scored measures and care events.",
    )
