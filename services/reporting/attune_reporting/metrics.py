"""reporting's Prometheus metrics (bounded labels: fact kind, topic, report, clinic; never a client)."""

from prometheus_client import Counter, Gauge, Histogram

from attune_shared.metrics import LATENCY_BUCKETS

FACTS_CHANGED = Counter(
    "attune_reporting_facts_changed_total", "Input events that stored or changed a fact.", ["kind"]
)
FACTS_UNCHANGED = Counter(
    "attune_reporting_facts_unchanged_total",
    "Input events that changed no fact (duplicates, replays, older revisions or transitions).",
    ["kind"],
)
REJECTED = Counter(
    "attune_reporting_rejected_total",
    "Input records that are not valid events (kept, not folded).",
    ["topic"],
)
IGNORED = Counter(
    "attune_reporting_ignored_total", "Valid records of event types reporting does not fold.", ["topic"]
)
MATERIALIZE_SECONDS = Histogram(
    "attune_reporting_materialize_seconds", "Time of one materializer run.", buckets=LATENCY_BUCKETS
)
CELLS_MATERIALIZED = Counter(
    "attune_reporting_cells_materialized_total", "Report cells (clinic x month) recomputed from facts."
)
EPISODES_RECOMPUTED = Counter(
    "attune_reporting_episodes_recomputed_total", "Episode summaries recomputed from facts."
)
REPORT_SECONDS = Histogram(
    "attune_reporting_report_seconds", "Time to answer a report request.", ["report"], buckets=LATENCY_BUCKETS
)

OPEN_ALERTS = Gauge("attune_reporting_open_alerts", "Alerts not resolved yet.", ["clinic"])
ATTENDANCE_RATE = Gauge(
    "attune_reporting_attendance_rate", "Attended / (attended + missed), current month (UTC).", ["clinic"]
)
REPAIR_RATE = Gauge(
    "attune_reporting_repair_rate",
    "Ruptures repaired / (repaired + unrepaired), ruptures raised in the last 12 months.",
    ["clinic"],
)
ALLIANCE_MEAN = Gauge(
    "attune_reporting_alliance_mean", "Mean client-rated WAI-SR mean score (1..5), current month.", ["clinic"]
)
