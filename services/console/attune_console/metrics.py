"""The console's own Prometheus metrics (no labels that could carry a person or a client)."""

from prometheus_client import Counter, Gauge, Histogram

from attune_shared.metrics import LATENCY_BUCKETS

PAGES = Counter(
    "attune_console_pages_total", "Pages and endpoints answered, by route and status.", ["route", "status"]
)
UPSTREAM = Histogram(
    "attune_console_upstream_seconds",
    "Time of one call to an API, by API and status.",
    ["api", "status"],
    buckets=LATENCY_BUCKETS,
)
SESSIONS = Gauge("attune_console_sessions", "Sessions kept in memory.")
SIGN_INS = Counter("attune_console_sign_ins_total", "Sign-in attempts by outcome.", ["outcome"])
CSRF_REFUSED = Counter(
    "attune_console_csrf_refused_total", "Form posts refused for a missing or wrong CSRF token."
)
API_UP = Gauge(
    "attune_console_api_up", "1 when the API answered its /readyz at the last readiness check.", ["api"]
)
