"""Read the operations files (Prometheus rules, Grafana dashboards, compose, Kubernetes) for tests.

Shared by tests/unit/operations and tests/integration/test_operations.py. Parses, never guesses:
metric names come from PromQL expressions and from the services' real /metrics exposition.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
RULES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
K8S = sorted((DEPLOY / "k8s").glob("*.yaml"))
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"

# The four Kafka services: a consumer group, topics, a MongoDB database, two replicas, KEDA.
SERVICES = ("intake", "measures", "alerts", "reporting")
# The web console: built and deployed like them, but it only calls their HTTP APIs (no Kafka, no
# database, sessions in memory, one replica).
CONSOLE = "console"
# Everything deploy/Dockerfile builds and compose / Kubernetes run from it.
DEPLOYABLES = (*SERVICES, CONSOLE)
SETTINGS_CLASSES = {
    "intake": ("attune_intake.settings", "IntakeSettings"),
    "measures": ("attune_measures.settings", "MeasuresSettings"),
    "alerts": ("attune_alerts.settings", "AlertsSettings"),
    "reporting": ("attune_reporting.settings", "ReportingSettings"),
    "console": ("attune_console.settings", "ConsoleSettings"),
}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_yaml_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


# --------------------------------------------------------------------------- Prometheus rules


@dataclass(frozen=True)
class Rule:
    file: str
    group: str
    name: str  # alert name or recorded series name
    kind: str  # "alert" or "record"
    expr: str
    raw: dict[str, Any]


def rules() -> list[Rule]:
    out = []
    for path in RULES:
        for group in load_yaml(path)["groups"]:
            for r in group["rules"]:
                kind = "alert" if "alert" in r else "record"
                out.append(Rule(path.name, group["name"], r[kind], kind, r["expr"], r))
    return out


def alerting_rules() -> list[Rule]:
    return [r for r in rules() if r.kind == "alert"]


def recording_rules() -> list[Rule]:
    return [r for r in rules() if r.kind == "record"]


# --------------------------------------------------------------------------- Grafana dashboards


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    expr: str


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for p in dashboard.get("panels", []):
        yield p
        yield from p.get("panels", [])


def dashboard_queries() -> list[Query]:
    out = []
    for path in DASHBOARDS:
        dash = load_dashboard(path)
        for p in panels(dash):
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append(Query(dash["title"], p.get("title", ""), t["expr"]))
    return out


# --------------------------------------------------------------------------- PromQL names

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
# A metric name: not part of a longer identifier and not a recording-rule name (those contain ':').
_ATTUNE_NAME = re.compile(r"(?<![\w:])attune_[A-Za-z0-9_]*(?![\w:])")
_RECORDED_NAME = re.compile(r"(?<![\w:])[A-Za-z_][A-Za-z0-9_]*:[A-Za-z0-9_:]*")
# `[5m:1m]` subquery steps and durations contain ':' too: drop bracketed ranges first.
_RANGE = re.compile(r"\[[^\]]*\]")


def _strip(expr: str) -> str:
    return _RANGE.sub("", _STRING.sub('""', expr))


def attune_metrics_in(expr: str) -> set[str]:
    """The attune_* metric names an expression selects (label values and strings ignored)."""
    return set(_ATTUNE_NAME.findall(_strip(expr)))


def recorded_names_in(expr: str) -> set[str]:
    """Recording-rule series (level:metric:operation) an expression selects."""
    return set(_RECORDED_NAME.findall(_strip(expr)))


def queried_metrics() -> dict[str, list[str]]:
    """Every attune_* metric a rule or a dashboard panel queries -> where."""
    where: dict[str, list[str]] = {}
    for r in rules():
        for name in attune_metrics_in(r.expr):
            where.setdefault(name, []).append(f"rule {r.name} ({r.file})")
    for q in dashboard_queries():
        for name in attune_metrics_in(q.expr):
            where.setdefault(name, []).append(f"dashboard {q.dashboard!r}, panel {q.panel!r}")
    return where


# --------------------------------------------------------------------------- exposition


def parse_exposition(text: str) -> dict[str, str]:
    """Prometheus text format -> {metric family or sample name: type} (samples typed 'sample')."""
    families: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            families[name] = kind.strip()
        elif line and not line.startswith("#"):
            name = re.split(r"[{\s]", line, maxsplit=1)[0]
            families.setdefault(name, "sample")
    return families


_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def is_exported(name: str, families: dict[str, str]) -> bool:
    """True when `name` is a family or sample in the exposition; _bucket/_sum/_count of a histogram
    or summary family count as that family."""
    if name in families:
        return True
    for suffix in _HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            if families.get(base) in ("histogram", "summary", "gaugehistogram"):
                return True
    return False


# --------------------------------------------------------------------------- services


def settings_class(service: str) -> type[Any]:
    module, cls = SETTINGS_CLASSES[service]
    return getattr(importlib.import_module(module), cls)


def env_names(cls: type[Any]) -> set[str]:
    """The environment variables a pydantic-settings class reads (no prefix, case-insensitive)."""
    names = set()
    for field_name, info in cls.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else None
        names.add((alias or field_name).upper())
    return names


def default_port(service: str) -> int:
    return int(settings_class(service).model_fields["attune_http_port"].default)


def readme_config_vars() -> set[str]:
    """Variables named in the first column of README.md's configuration table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", first))
    return names
