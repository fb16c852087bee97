"""alerts' edges: the Kafka batch subscriber on clinic.measures.v1 + clinic.care.v1, and the HTTP API."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from aiokafka import ConsumerRecord
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage

from attune_alerts.adapters.store import ConcurrentUpdate
from attune_alerts.api import router
from attune_alerts.pipeline import AlertsPipeline, Inbound
from attune_alerts.sweeper import PartitionTracker
from attune_shared.kafka import raw_body, retry_transient
from attune_shared.metrics import BATCH_DURATION, BATCH_SIZE, MESSAGES_CONSUMED
from attune_shared.runtime import Service
from attune_shared.topics import Topics

GROUP = "attune-alerts"

__all__ = ["GROUP", "input_topics", "register_consumer", "router"]


def input_topics(service: Service) -> list[str]:
    """The physical names of the topics alerts consumes."""
    # Measures forwards the care events between its scores: one topic keeps each client's order.
    return [service.settings.topic(Topics.MEASURES)]


def register_consumer(service: Service, partitions: PartitionTracker) -> None:
    """One subscriber on clinic.measures.v1; offsets are committed only after process() returns.

    The topic is keyed by client_ref and carries each client's scores with its care events forwarded
    between them, in the EHR's order: an episode's inputs reach one replica in order, so its state
    has one writer (the optimistic version check covers rebalances).
    """
    settings = service.settings
    topics = input_topics(service)

    @service.broker.subscriber(
        *topics,
        group_id=settings.group(GROUP),
        batch=True,
        max_records=settings.attune_batch_max_records,
        batch_timeout_ms=settings.attune_batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=raw_body,
        partition_assignment_strategy=(RangePartitionAssignor,),
        listener=partitions,
        title="alerts-inputs",
        description="Applies the alert rules to scored measures and care events.",
    )
    async def on_inputs(body: Any, message: KafkaMessage) -> None:
        raw: tuple[ConsumerRecord[Any, Any], ...] = message.raw_message
        batch = [Inbound(r.value, r.topic, r.partition, r.offset) for r in raw]
        for topic, n in Counter(r.topic for r in raw).items():
            MESSAGES_CONSUMED.labels(topic).inc(n)
            BATCH_SIZE.labels(topic).observe(n)
        started = time.monotonic()
        pipeline: AlertsPipeline = service.extras["pipeline"]
        async with service.extras["lock"]:  # the inactivity sweep writes episodes under the same lock
            await retry_transient(
                "alerts_batch",
                lambda: pipeline.process(batch),
                stopping=lambda: service.stopping,
                also=(ConcurrentUpdate,),
            )
        for topic in {r.topic for r in raw}:
            BATCH_DURATION.labels(topic).observe(time.monotonic() - started)
