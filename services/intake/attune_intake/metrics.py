"""intake's Prometheus metrics (bounded labels: event type, dead-letter code; never client or MRN)."""

from prometheus_client import Counter, Histogram

from attune_shared.metrics import LATENCY_BUCKETS

RECEIVED = Counter("attune_intake_events_received_total", "Inbound records received.", ["via"])
ACCEPTED = Counter(
    "attune_intake_events_accepted_total", "Inbound events accepted and republished.", ["event_type"]
)
DUPLICATES = Counter(
    "attune_intake_events_duplicate_total", "Inbound events seen before (no effect).", ["event_type"]
)
DEAD_LETTERED = Counter("attune_intake_dead_letters_total", "Inbound records dead-lettered.", ["code"])
EPISODES_OPENED = Counter("attune_intake_episodes_opened_total", "Episodes of care opened.")
LATENCY = Histogram(
    "attune_intake_event_latency_seconds",
    "From the record's broker timestamp to its effects being durable.",
    buckets=LATENCY_BUCKETS,
)
REIDENTIFICATIONS = Counter(
    "attune_intake_reidentifications_total",
    "Calls of the re-identification door, by outcome (ok, not_found).",
    ["outcome"],
)
