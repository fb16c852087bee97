"""measures' Kafka edge: the batch subscriber on clinic.care.v1."""

from __future__ import annotations

from attune_measures.deps import Deps
from attune_shared.kafka import batch_subscriber
from attune_shared.runtime import Service
from attune_shared.settings import ServiceSettings
from attune_shared.topics import Topics

GROUP = "attune-measures"


def input_topics(settings: ServiceSettings) -> list[str]:
    """The physical names of the topics measures consumes."""
    return [settings.topic(Topics.CARE)]


def register_consumer(service: Service[Deps]) -> None:
    """Subscribe to clinic.care.v1 in batches; offsets are committed only after process() returns.

    Unreadable or unscorable records are dead-lettered inside process() (and so acknowledged); store
    and broker errors are retried and never acknowledged.
    """
    batch_subscriber(
        service,
        input_topics(service.settings),
        group=GROUP,
        process=lambda batch: service.deps.pipeline.process(batch.records),
        title="measures-responses",
        description="Scores questionnaire responses and publishes measure.scored revisions, "
        "forwarding the care events between them in order.",
    )
