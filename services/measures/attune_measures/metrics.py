"""measures' Prometheus metrics (bounded labels: instrument, rejection reason; never a client)."""

from prometheus_client import Counter, Gauge, Histogram

from attune_shared.metrics import LATENCY_BUCKETS

SCORED = Counter(
    "attune_measures_responses_scored_total",
    "Responses accepted and scored (new, or a newer version of a known response).",
    ["instrument"],
)
AMENDED = Counter(
    "attune_measures_responses_amended_total", "Amended responses that replaced a version.", ["instrument"]
)
REJECTED = Counter(
    "attune_measures_responses_rejected_total",
    "Records dead-lettered as unreadable or unscorable.",
    ["reason"],
)
IGNORED = Counter(
    "attune_measures_responses_ignored_total",
    "Versions with no effect: a replay, or an older version than the one kept.",
    ["reason"],
)
PUBLISHED = Counter(
    "attune_measures_scores_published_total",
    "measure.scored events published (every revision).",
    ["instrument"],
)
LATENCY = Histogram(
    "attune_measures_scoring_latency_seconds",
    "From a response's broker timestamp to its scores being published and stored.",
    buckets=LATENCY_BUCKETS,
)
TRAJECTORY_ACTIVE = Gauge(
    "attune_measures_trajectory_model_active",
    "1 when the instrument has an expected-trajectory model (the not-on-track rule can apply), else 0.",
    ["instrument"],
)
TRAJECTORY_EPISODES = Gauge(
    "attune_measures_trajectory_episodes_available",
    "Closed episodes with >= 3 scores of the instrument at the last refit attempt.",
    ["instrument"],
)
TRAJECTORY_FITS = Counter(
    "attune_measures_trajectory_fits_total",
    "Refit attempts per instrument, by outcome (fitted, below_n_min, degenerate).",
    ["instrument", "outcome"],
)
