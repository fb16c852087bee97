"""deploy/prometheus: scrape configs, rules, their promtool unit tests, and the metrics they query.

promtool itself runs in tests/integration/test_operations.py (it needs the Debian package); these
checks need only the files and the services' metric registries.
"""

from __future__ import annotations

import importlib
import re

import pytest
from prometheus_client import REGISTRY, generate_latest

from tests.unit.operations import opsfiles as ops

# The alerts the Operations issue asks for, by what they watch.
REQUIRED_ALERTS = {
    "AttuneServiceDown": "up",
    "AttuneNotReady": "attune_ready",
    "AttuneConsumerLagGrowing": "attune_consumer_lag_records",
    "AttuneDeadLettersArriving": "attune_intake_dead_letters_total",
    "AttuneWebhookDeliveriesFailing": "attune_webhook_attempts_total",
    "AttuneWebhookDeliveriesDead": "attune_webhook_deliveries_dead_total",
    "AttuneUrgentAlertUnacknowledged": "attune_alerts_escalations_total",
}

# Label names a metric may carry: bounded sets (enums, topics, partitions, clinics). A new label is
# added here only once it is known to be bounded and free of personal data.
ALLOWED_LABELS = {
    "topic", "partition", "group", "operation", "dependency",
    "via", "event_type", "code",
    "instrument", "reason",
    "rule", "severity", "resolution", "outcome",
    "kind", "report", "clinic", "modality", "definition", "month",
    # the console's: a page's fixed name (never its path), an HTTP status, an upstream API's name
    "route", "status", "api",
}  # fmt: skip
FORBIDDEN_LABELS = {
    "client_ref", "client", "mrn", "client_id", "clinician", "clinician_id", "episode", "episode_id",
    "alert_id", "event_id", "response_id", "appointment_id", "name", "email", "birth_year", "url",
}  # fmt: skip
HISTOGRAM_UNITS = ("_seconds", "_bytes", "_records")


def _service_registry_text() -> str:
    """The exposition of every service's metrics module, imported into this process."""
    modules = ["attune_shared.metrics"] + [f"attune_{s}.metrics" for s in ops.SERVICES]
    missing = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            missing.append(f"{module}: {exc}")
    assert not missing, "services' metrics modules cannot be imported:\n" + "\n".join(missing)
    return generate_latest(REGISTRY).decode()


# --------------------------------------------------------------------------- scrape configs


def test_local_config_scrapes_the_four_services_on_their_default_ports() -> None:
    config = ops.load_yaml(ops.PROMETHEUS / "prometheus.yml")
    assert config["rule_files"] == ["rules/*.yml"]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "attune"]
    assert job["metrics_path"] == "/metrics"
    files = [f for sd in job["file_sd_configs"] for f in sd["files"]]
    assert files == ["targets/*.yml"]
    targets = {}
    for path in sorted((ops.PROMETHEUS / "targets").glob("*.yml")):
        for group in ops.load_yaml(path):
            for target in group["targets"]:
                targets[group["labels"]["service"]] = target
    assert targets == {s: f"127.0.0.1:{ops.default_port(s)}" for s in ops.SERVICES}


def test_compose_config_discovers_every_replica_of_each_service() -> None:
    config = ops.load_yaml(ops.PROMETHEUS / "prometheus.compose.yml")
    assert config["rule_files"] == ["rules/*.yml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "attune"
    found = {sd["names"][0]: sd["port"] for sd in job["dns_sd_configs"]}
    assert found == {s: ops.default_port(s) for s in ops.SERVICES}
    assert {"source_labels": ["__meta_dns_name"], "target_label": "service"} in job["relabel_configs"]


def test_kubernetes_discovery_is_documented_in_the_local_config() -> None:
    text = (ops.PROMETHEUS / "prometheus.yml").read_text()
    assert "kubernetes_sd_configs" in text
    assert "__meta_kubernetes_pod_label_app_kubernetes_io_name" in text


# --------------------------------------------------------------------------- rules


def test_rule_names_are_unique_and_required_alerts_exist() -> None:
    alerts = ops.alerting_rules()
    names = [r.name for r in alerts]
    assert len(names) == len(set(names)), names
    for name, metric in REQUIRED_ALERTS.items():
        (rule,) = [r for r in alerts if r.name == name]
        assert re.search(rf"\b{metric}\b", rule.expr), (name, rule.expr)
    records = [r.name for r in ops.recording_rules()]
    assert len(records) == len(set(records)), records
    assert all(re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", n) for n in records), records


def test_readiness_alert_waits_two_minutes_and_lag_alert_ten() -> None:
    by_name = {r.name: r.raw for r in ops.alerting_rules()}
    assert by_name["AttuneNotReady"]["expr"].strip() == "attune_ready == 0"
    assert by_name["AttuneNotReady"]["for"] == "2m"
    assert by_name["AttuneConsumerLagGrowing"]["for"] == "10m"
    assert "[10m" in by_name["AttuneConsumerLagGrowing"]["expr"]
    assert "up{" in by_name["AttuneServiceDown"]["expr"] and "== 0" in by_name["AttuneServiceDown"]["expr"]
    assert 'severity="urgent"' in by_name["AttuneUrgentAlertUnacknowledged"]["expr"]


def test_every_alert_has_severity_summary_and_a_runbook_section() -> None:
    runbook = (ops.ROOT / "docs" / "operations.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#{2,4} (.+)$", runbook, flags=re.M)
    }
    for rule in ops.alerting_rules():
        raw = rule.raw
        assert raw["labels"]["severity"] in ("critical", "warning"), rule.name
        assert raw["annotations"]["summary"] and raw["annotations"]["description"], rule.name
        url = raw["annotations"]["runbook_url"]
        assert url == f"docs/operations.md#{rule.name.lower()}", (rule.name, url)
        assert rule.name.lower() in anchors, f"docs/operations.md has no section for {rule.name}"


def test_alerting_rules_do_not_read_recording_rules() -> None:
    # An alert built on a recorded series reads a value one evaluation old or new, depending on
    # group order (promtool showed both): alerts use raw metrics only.
    for rule in ops.alerting_rules():
        assert not ops.recorded_names_in(rule.expr), (rule.name, ops.recorded_names_in(rule.expr))


def test_every_alerting_rule_has_unit_tests_that_fire_and_that_stay_quiet() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in ops.RULE_TESTS:
        spec = ops.load_yaml(path)
        referenced = {(path.parent / f).resolve() for f in spec["rule_files"]}
        assert referenced == {p.resolve() for p in ops.RULES}, f"{path.name} must load every rule file"
        for case in spec["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {r.name for r in ops.alerting_rules()}
    assert names - fires == set(), f"no promtool test shows these firing: {sorted(names - fires)}"
    assert names - quiet == set(), f"no promtool test shows these quiet: {sorted(names - quiet)}"
    assert (fires | quiet) - names == set(), f"tests name unknown alerts: {sorted((fires | quiet) - names)}"


def test_dashboards_use_only_recorded_series_that_exist() -> None:
    recorded = {r.name for r in ops.recording_rules()}
    for q in ops.dashboard_queries():
        unknown = ops.recorded_names_in(q.expr) - recorded
        assert not unknown, (q.dashboard, q.panel, unknown)


# --------------------------------------------------------------------------- metrics


def test_promql_name_extraction() -> None:
    expr = (
        'sum by (code) (rate(attune_intake_dead_letters_total{job="attune_x"}[5m])) > 0.05 '
        "and deriv(group_topic:attune_consumer_lag_records:sum[10m:1m]) "
        "+ histogram_quantile(0.9, rate(attune_batch_duration_seconds_bucket[$__rate_interval]))"
    )
    assert ops.attune_metrics_in(expr) == {
        "attune_intake_dead_letters_total",
        "attune_batch_duration_seconds_bucket",
    }
    assert ops.recorded_names_in(expr) == {"group_topic:attune_consumer_lag_records:sum"}
    families = ops.parse_exposition(
        "# TYPE attune_batch_duration_seconds histogram\n"
        'attune_batch_duration_seconds_bucket{le="+Inf"} 0.0\n'
        "# TYPE attune_ready gauge\nattune_ready 1.0\n"
    )
    assert ops.is_exported("attune_batch_duration_seconds_bucket", families)
    assert ops.is_exported("attune_batch_duration_seconds_count", families)
    assert ops.is_exported("attune_ready", families)
    assert not ops.is_exported("attune_ready_count", families)


def test_every_queried_metric_is_registered_by_a_service() -> None:
    families = ops.parse_exposition(_service_registry_text())
    missing = {
        name: where for name, where in ops.queried_metrics().items() if not ops.is_exported(name, families)
    }
    assert not missing, "queried but no service defines them:\n" + "\n".join(
        f"  {name}: {', '.join(where)}" for name, where in sorted(missing.items())
    )


def test_service_metrics_follow_the_naming_conventions() -> None:
    _service_registry_text()
    problems = []
    for collector, names in list(REGISTRY._collector_to_names.items()):
        family = next(iter(collector.collect()), None)
        if family is None or not any(n.startswith("attune") for n in names):
            continue
        name, kind = family.name, family.type
        labels = set(getattr(collector, "_labelnames", ()))
        if not name.startswith("attune_"):
            problems.append(f"{name}: no attune_ prefix")
        if not family.documentation.strip():
            problems.append(f"{name}: no help text")
        if kind == "counter" and not any(n.endswith("_total") for n in names):
            problems.append(f"{name}: counter without _total")
        if kind == "gauge" and name.endswith("_total"):
            problems.append(f"{name}: a gauge named like a counter")
        if kind == "histogram" and not name.endswith(HISTOGRAM_UNITS):
            problems.append(f"{name}: histogram without a unit suffix {HISTOGRAM_UNITS}")
        if labels & FORBIDDEN_LABELS:
            problems.append(f"{name}: personal or unbounded labels {sorted(labels & FORBIDDEN_LABELS)}")
        if labels - ALLOWED_LABELS - FORBIDDEN_LABELS:
            problems.append(f"{name}: labels not known to be bounded {sorted(labels - ALLOWED_LABELS)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(REQUIRED_ALERTS))
def test_required_alert_metric_is_registered(name: str) -> None:
    families = ops.parse_exposition(_service_registry_text())
    metric = REQUIRED_ALERTS[name]
    if metric != "up":
        assert ops.is_exported(metric, families), metric
