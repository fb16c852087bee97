"""measures' edge: the Kafka batch subscriber on clinic.care.v1."""

from __future__ import annotations

import time
from typing import Any

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage

from attune_measures.adapters.store import ConcurrentUpdate
from attune_measures.pipeline import Inbound, MeasuresPipeline
from attune_shared.kafka import raw_body, retry_transient
from attune_shared.metrics import BATCH_DURATION, BATCH_SIZE, MESSAGES_CONSUMED
from attune_shared.runtime import Service
from attune_shared.topics import Topics

GROUP = "attune-measures"


def register_consumer(service: Service) -> None:
    """Subscribe to clinic.care.v1 in batches; offsets are committed only after process() returns.

    Unreadable or unscorable records are dead-lettered inside process() (and so acknowledged); store
    and broker errors are retried here and never acknowledged.
    """
    settings = service.settings
    topic = settings.topic(Topics.CARE)

    @service.broker.subscriber(
        topic,
        group_id=settings.group(GROUP),
        batch=True,
        max_records=settings.attune_batch_max_records,
        batch_timeout_ms=settings.attune_batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=raw_body,
        title="measures-responses",
        description="Scores questionnaire responses and publishes measure.scored revisions, "
        "forwarding the care events between them in order.",
    )
    async def on_responses(body: Any, message: KafkaMessage) -> None:
        raw: tuple[ConsumerRecord[Any, Any], ...] = message.raw_message
        batch = [
            Inbound(
                value=r.value,
                key=r.key,
                topic=r.topic,
                partition=r.partition,
                offset=r.offset,
                timestamp_ms=r.timestamp,
            )
            for r in raw
        ]
        MESSAGES_CONSUMED.labels(topic).inc(len(batch))
        BATCH_SIZE.labels(topic).observe(len(batch))
        started = time.monotonic()
        pipeline: MeasuresPipeline = service.extras["pipeline"]
        await retry_transient(
            "measures_batch",
            lambda: pipeline.process(batch),
            stopping=lambda: service.stopping,
            also=(ConcurrentUpdate,),
        )
        BATCH_DURATION.labels(topic).observe(time.monotonic() - started)
