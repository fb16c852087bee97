"""deploy/grafana: provisioning files and the two dashboards are well formed and wired together."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.operations import opsfiles as ops

GRAFANA = ops.DEPLOY / "grafana"
TITLES = {"Attune network overview", "Attune pipeline health"}


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    loaded = [ops.load_dashboard(p) for p in ops.DASHBOARDS]
    return {d["title"]: d for d in loaded}


def _datasource() -> dict[str, Any]:
    (ds,) = ops.load_yaml(GRAFANA / "provisioning" / "datasources" / "attune.yaml")["datasources"]
    return ds


def _metrics(dash: dict[str, Any]) -> set[str]:
    return {
        m for p in ops.panels(dash) for t in p.get("targets", []) for m in ops.attune_metrics_in(t["expr"])
    }


def test_provisioning_points_at_prometheus_and_the_dashboards_folder() -> None:
    ds = _datasource()
    assert ds["type"] == "prometheus" and ds["uid"] == "attune-prometheus"
    assert ds["url"] == "http://prometheus:9090"  # the compose service name
    (provider,) = ops.load_yaml(GRAFANA / "provisioning" / "dashboards" / "attune.yaml")["providers"]
    assert provider["type"] == "file" and provider["folder"] == "Attune"


def test_the_two_dashboards_exist_with_unique_ids(dashboards: dict[str, dict[str, Any]]) -> None:
    assert set(dashboards) == TITLES
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids)
    for dash in dashboards.values():
        ids = [p["id"] for p in ops.panels(dash)]
        assert len(ids) == len(set(ids)), dash["title"]
        assert dash["editable"] is False


def test_every_query_uses_the_provisioned_datasource(dashboards: dict[str, dict[str, Any]]) -> None:
    uid = _datasource()["uid"]
    for dash in dashboards.values():
        (var,) = [v for v in dash["templating"]["list"] if v["name"] == "datasource"]
        assert var["type"] == "datasource" and var["query"] == "prometheus"
        assert var["current"]["value"] == uid
        for p in ops.panels(dash):
            for t in p.get("targets", []):
                assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
                assert t["expr"].strip(), p["title"]


def test_panels_fit_the_grid(dashboards: dict[str, dict[str, Any]]) -> None:
    for dash in dashboards.values():
        for p in ops.panels(dash):
            pos = p["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, (dash["title"], p["title"])
            assert pos["h"] > 0


def test_network_overview_shows_the_operations_figures(dashboards: dict[str, dict[str, Any]]) -> None:
    metrics = _metrics(dashboards["Attune network overview"])
    for needed in (
        "attune_reporting_alliance_mean",
        "attune_reporting_repair_rate",
        "attune_reporting_attendance_rate",
        "attune_alerts_raised_total",  # alerts by rule
    ):
        assert needed in metrics, needed
    # figures from the reporting service only, plus the alerts service's counters by rule
    assert all(m.startswith(("attune_reporting_", "attune_alerts_")) for m in metrics), metrics


def test_pipeline_health_covers_throughput_lag_latency_dead_letters_delivery_readiness(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    metrics = _metrics(dashboards["Attune pipeline health"])
    for needed in (
        "attune_messages_consumed_total",
        "attune_messages_published_total",
        "attune_consumer_lag_records",
        "attune_intake_event_latency_seconds_bucket",
        "attune_batch_duration_seconds_bucket",
        "attune_intake_dead_letters_total",
        "attune_webhook_attempts_total",
        "attune_webhook_deliveries_dead_total",
        "attune_ready",
        "attune_dependency_up",
    ):
        assert needed in metrics, needed


def test_replicated_gauges_are_not_summed(dashboards: dict[str, dict[str, Any]]) -> None:
    # every replica exports its group's whole lag, and the database-derived gauges of alerts and
    # reporting: summing them over replicas would double them.
    for dash in dashboards.values():
        for p in ops.panels(dash):
            for t in p.get("targets", []):
                expr = t["expr"]
                for gauge in (
                    "attune_consumer_lag_records",
                    "attune_alerts_open",
                    "attune_reporting_alliance_mean",
                    "attune_reporting_repair_rate",
                    "attune_reporting_attendance_rate",
                    "attune_reporting_open_alerts",
                ):
                    if gauge in expr:
                        assert "max by (" in expr.split(gauge)[0][-40:], (p["title"], expr)
