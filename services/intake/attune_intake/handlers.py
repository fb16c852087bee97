"""intake's Kafka edge: the batch subscriber on ehr.events.v1 (the HTTP API is in api.py)."""

from __future__ import annotations

from aiokafka import ConsumerRebalanceListener, TopicPartition

from attune_intake import metrics
from attune_intake.deps import Deps
from attune_shared.kafka import batch_subscriber
from attune_shared.runtime import Service
from attune_shared.settings import ServiceSettings
from attune_shared.topics import Topics

GROUP = "attune-intake"


def input_topics(settings: ServiceSettings) -> list[str]:
    """The physical names of the topics intake consumes."""
    return [settings.topic(Topics.EHR_EVENTS)]


class ForgetOnRebalance(ConsumerRebalanceListener):
    """The store's remembered client states are only good while our partitions stay ours."""

    def __init__(self, service: Service[Deps]) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.service.deps.store.forget()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.service.deps.store.forget()


def register_consumer(service: Service[Deps]) -> None:
    """Subscribe to ehr.events.v1 in batches; offsets are committed only after process() returns."""
    batch_subscriber(
        service,
        input_topics(service.settings),
        group=GROUP,
        process=lambda batch: service.deps.pipeline.process(batch.records),
        on_batch=lambda batch: metrics.RECEIVED.labels("kafka").inc(len(batch.records)),
        listener=ForgetOnRebalance(service),
        title="intake-ehr-events",
        description="Validates, de-duplicates and pseudonymises inbound EHR events.",
    )
