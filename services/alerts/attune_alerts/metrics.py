"""alerts' Prometheus metrics (bounded labels: rule, severity, resolution, outcome; never a client)."""

from prometheus_client import Counter, Gauge, Histogram

from attune_shared.metrics import LATENCY_BUCKETS

RAISED = Counter("attune_alerts_raised_total", "Alerts raised by the rules.", ["rule", "severity"])
UPDATED = Counter("attune_alerts_updated_total", "New evidence added to open alerts.", ["rule"])
RESOLVED = Counter(
    "attune_alerts_resolved_total", "Alerts resolved, by the rules or a person.", ["rule", "resolution"]
)
ACKNOWLEDGED = Counter("attune_alerts_acknowledged_total", "Alerts acknowledged by a person.", ["rule"])
OPEN = Gauge("attune_alerts_open", "Alerts not yet resolved (open or acknowledged).", ["severity"])
TIME_TO_ACKNOWLEDGE = Histogram(
    "attune_alerts_time_to_acknowledge_seconds",
    "From an alert being raised to a person acknowledging it.",
    buckets=(60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 24 * 3600, 72 * 3600, 7 * 86400),
)
ESCALATIONS = Counter("attune_alerts_escalations_total", "Escalation levels applied.", ["severity"])
INPUTS_SKIPPED = Counter(
    "attune_alerts_inputs_skipped_total", "Input records the rules could not use.", ["reason"]
)
WEBHOOK_ATTEMPTS = Counter(
    "attune_webhook_attempts_total",
    "Webhook (and e-mail) delivery attempts by outcome: delivered, http_error, timeout, error.",
    ["outcome"],
)
WEBHOOK_DEAD = Counter("attune_webhook_deliveries_dead_total", "Deliveries given up after the last attempt.")
WEBHOOK_SECONDS = Histogram(
    "attune_webhook_delivery_seconds", "Duration of one delivery attempt.", buckets=LATENCY_BUCKETS
)
