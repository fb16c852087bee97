"""Create Attune's topics (idempotent). `python -m attune_shared.kafka_admin ensure-topics`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from attune_shared.kafka import aiokafka_kwargs
from attune_shared.settings import ServiceSettings, load_settings

# Topic -> partitions. Four partitions let two replicas of each service share the work.
TOPICS: dict[str, int] = {
    "ehr.events.v1": 4,
    "ehr.events.dlq.v1": 1,
    "clinic.care.v1": 4,
    "clinic.measures.v1": 4,
    "clinic.measures.dlq.v1": 1,
    "clinic.alerts.v1": 4,
}
# The inbound topic takes records well over intake's 64 KiB limit, so an oversized EHR record reaches
# intake and is dead-lettered (too_large) instead of bouncing back at the EHR; the DLQ holds such a
# record whole, as base64 when it is not UTF-8. Producers allow requests up to MAX_REQUEST_BYTES.
TOPIC_CONFIGS: dict[str, dict[str, str]] = {
    "ehr.events.v1": {"max.message.bytes": str(4 * 1024 * 1024)},
    "ehr.events.dlq.v1": {"max.message.bytes": str(8 * 1024 * 1024)},
}


async def ensure_topics(settings: ServiceSettings, replication: int = 1) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings), request_timeout_ms=10000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(settings.topic(base), n, replication, topic_configs=TOPIC_CONFIGS.get(base))
            for base, n in TOPICS.items()
            if settings.topic(base) not in existing
        ]
        if missing:
            # A concurrent creator winning the race is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()


async def missing_topics(settings: ServiceSettings) -> list[str]:
    """Attune's topics (with the name prefix) that the cluster does not have."""
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings), request_timeout_ms=10000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    return [settings.topic(t) for t in TOPICS if settings.topic(t) not in existing]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["ensure-topics"])
    parser.add_argument("--replication", type=int, default=1)
    args = parser.parse_args()
    created = asyncio.run(ensure_topics(load_settings(ServiceSettings), args.replication))
    names = (": " + ", ".join(created)) if created else ""
    print(f"[infra] topics: {len(TOPICS)} present, {len(created)} created{names}")


if __name__ == "__main__":
    main()
