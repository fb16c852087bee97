"""Prometheus metrics every service exports, and the /metrics rendering."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

MESSAGES_CONSUMED = Counter("attune_messages_consumed_total", "Kafka records handed to a handler.", ["topic"])
MESSAGES_PUBLISHED = Counter(
    "attune_messages_published_total", "Kafka records published and acknowledged by the broker.", ["topic"]
)
BATCH_SIZE = Histogram(
    "attune_batch_size_records", "Records per consumed batch.", ["topic"], buckets=BATCH_BUCKETS
)
BATCH_DURATION = Histogram(
    "attune_batch_duration_seconds",
    "Time to make one batch's effects durable.",
    ["topic"],
    buckets=LATENCY_BUCKETS,
)
TRANSIENT_ERRORS = Counter(
    "attune_transient_errors_total", "Infrastructure errors retried with backoff.", ["operation"]
)
CONSUMER_LAG = Gauge(
    "attune_consumer_lag_records",
    "Records not yet committed by this service's consumer group.",
    ["group", "topic", "partition"],
)
DEPENDENCY_UP = Gauge(
    "attune_dependency_up", "1 when the dependency answered the last readiness check.", ["dependency"]
)
READY = Gauge("attune_ready", "1 when the service is ready (Kafka and the store answer).")


def render() -> tuple[bytes, str]:
    """The Prometheus text exposition of this process's registry."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
