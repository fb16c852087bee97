"""reporting's Kafka edge: one batch subscriber on care, measures and alerts (the reports are in api.py)."""

from __future__ import annotations

from attune_reporting.adapters.store import LockLost
from attune_reporting.deps import Deps
from attune_reporting.pipeline import INPUT_TOPICS
from attune_shared.kafka import batch_subscriber
from attune_shared.runtime import Service
from attune_shared.settings import ServiceSettings

GROUP = "attune-reporting"


def input_topics(settings: ServiceSettings) -> list[str]:
    """The physical names of the topics reporting consumes."""
    return [settings.topic(t) for t in INPUT_TOPICS]


def register_consumer(service: Service[Deps]) -> None:
    """One batch subscriber on care, measures and alerts; offsets commit only after process() returns."""
    batch_subscriber(
        service,
        input_topics(service.settings),
        group=GROUP,
        # `behind`: more records wait on the batch's partitions, so materializing can wait (a catch-up).
        process=lambda batch: service.deps.pipeline.process(batch.records, behind=batch.waiting()),
        retry_also=(LockLost,),
        title="reporting-inputs",
        description="Folds care events, scored measures and alert events into report facts.",
    )
