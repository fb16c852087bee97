"""Operations on the real stack: promtool checks, and a real Prometheus scraping the four services.

Needs `prometheus` and `promtool` (Debian's prometheus package: deploy/install-prometheus.sh) and
the broker and store `make test` starts. A service that cannot start (not written yet, or broken)
makes these tests fail, naming it and showing its log; the others still run so the rest is checked.
"""

from __future__ import annotations

import importlib.util
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.kafka_io import produce
from tests.support.procs import ServiceProcess, free_port, stop_stack
from tests.unit.operations import opsfiles as ops

INSTALL_HINT = "run deploy/install-prometheus.sh (Debian's prometheus package; `make setup` runs it)"
DEAD_LETTER_ALERT = "AttuneDeadLettersArriving"
POISON = b"{not json"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: {INSTALL_HINT}", pytrace=False)
    return path


def _run(args: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False, **kw)


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    """The services that started, and why the others did not."""

    running: dict[str, ServiceProcess] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def assert_complete(self) -> None:
        assert not self.failed, "services that could not start:\n" + "\n\n".join(
            f"--- {name}: {why}" for name, why in self.failed.items()
        )


@pytest.fixture
def stack(namespace) -> Iterator[Stack]:
    """Start every service that can start (in parallel), each ready or recorded as failed."""
    result = Stack()
    for name in ops.SERVICES:
        if importlib.util.find_spec(f"attune_{name}.app") is None:
            result.failed[name] = f"attune_{name}.app does not exist yet"
            continue
        proc = ServiceProcess(name, namespace.env, namespace.logs / f"{name}.log")
        result.running[name] = proc.start()
    for name, proc in list(result.running.items()):
        try:
            proc.wait_ready(timeout=90)
        except Exception as exc:
            result.failed[name] = str(exc)
            proc.kill()
            del result.running[name]
    try:
        yield result
    finally:
        stop_stack(result.running)


def _scrape(stack: Stack) -> dict[str, str]:
    return {name: httpx.get(f"{p.url}/metrics", timeout=5).text for name, p in stack.running.items()}


# --------------------------------------------------------------------------- Prometheus


class Prometheus:
    """A real Prometheus on a free port with the project's config, rules and the test's targets."""

    def __init__(self, workdir: Path, targets: dict[str, int]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        # The project's own prometheus.yml, with test intervals and absolute paths.
        config = ops.load_yaml(ops.PROMETHEUS / "prometheus.yml")
        config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
        config["rule_files"] = [str(p) for p in ops.RULES]
        (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "attune"]
        targets_file = workdir / "targets.yml"
        job["file_sd_configs"] = [{"files": [str(targets_file)], "refresh_interval": "1s"}]
        targets_file.write_text(
            yaml.safe_dump(
                [{"targets": [f"127.0.0.1:{port}"], "labels": {"service": s}} for s, port in targets.items()]
            )
        )
        self.config = workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))

    def start(self) -> Prometheus:
        self.proc = subprocess.Popen(
            [
                _tool("prometheus"),
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_for(lambda: httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200, 60, "ready")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:]) if self.log.exists() else ""

    def api(self, path: str, **params: str) -> Any:
        body = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=5).json()
        assert body["status"] == "success", body
        return body["data"]

    def wait_for(self, check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"prometheus exited ({self.proc.returncode}):\n{self.tail()}", pytrace=False)
            try:
                if check():
                    return
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                last = exc
            time.sleep(0.5)
        pytest.fail(
            f"prometheus: not {what} within {timeout}s ({last!r}); log:\n{self.tail()}", pytrace=False
        )


# --------------------------------------------------------------------------- tests: tools and files


def test_prometheus_and_promtool_are_installed() -> None:
    for tool in ("prometheus", "promtool"):
        out = _run([_tool(tool), "--version"])
        assert out.returncode == 0 and "version" in (out.stdout + out.stderr), out


def test_promtool_accepts_the_configs_and_rules() -> None:
    promtool = _tool("promtool")
    for config in ("prometheus.yml", "prometheus.compose.yml"):
        out = _run([promtool, "check", "config", str(ops.PROMETHEUS / config)])
        assert out.returncode == 0, out.stdout + out.stderr
    out = _run([promtool, "check", "rules", *map(str, ops.RULES)])
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("SUCCESS") == len(ops.RULES)


def test_promtool_rule_unit_tests_pass() -> None:
    out = _run([_tool("promtool"), "test", "rules", *map(str, ops.RULE_TESTS)], cwd=ops.PROMETHEUS)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("SUCCESS") == len(ops.RULE_TESTS), out.stdout


# --------------------------------------------------------------------------- tests: live services


async def test_services_metrics_pass_promtool_check_metrics(stack: Stack) -> None:
    promtool = _tool("promtool")
    errors, warnings = {}, {}
    for name, text in _scrape(stack).items():
        out = _run([promtool, "check", "metrics"], input=text)
        # promtool prints lint findings ("name: problem") and exits 3 for lint only, 1 for errors.
        if out.returncode not in (0, 3):
            errors[name] = out.stdout + out.stderr
        elif out.stdout.strip() or out.stderr.strip():
            warnings[name] = (out.stdout + out.stderr).strip()
    for name, text in warnings.items():
        print(f"promtool check metrics warnings for {name}:\n{text}")
    assert not errors, errors
    stack.assert_complete()


async def test_every_queried_metric_is_exported_by_a_running_service(stack: Stack) -> None:
    families: dict[str, str] = {}
    for text in _scrape(stack).values():
        families.update(ops.parse_exposition(text))
    missing = {n: w for n, w in ops.queried_metrics().items() if not ops.is_exported(n, families)}
    stack.assert_complete()
    assert not missing, "queried by rules or dashboards, but no running service exports them:\n" + "\n".join(
        f"  {name}: {', '.join(where)}" for name, where in sorted(missing.items())
    )


async def test_prometheus_scrapes_the_stack_and_fires_the_dead_letter_alert(
    stack: Stack, namespace, tmp_path
) -> None:
    _tool("promtool")
    assert "intake" in stack.running, f"intake did not start: {stack.failed.get('intake')}"
    prom = Prometheus(tmp_path / "prometheus", {n: p.port for n, p in stack.running.items()}).start()
    try:
        # every running service is a healthy target
        def all_up() -> bool:
            active = prom.api("targets")["activeTargets"]
            health = {t["labels"]["service"]: t["health"] for t in active}
            return health == {name: "up" for name in stack.running}

        prom.wait_for(all_up, 60, "scraping every service")
        quiet = {a["labels"]["alertname"] for a in prom.api("alerts")["alerts"] if a["state"] == "firing"}
        assert DEAD_LETTER_ALERT not in quiet

        # One poison record first: prometheus_client creates the {code=...} series at its first
        # increment, and rate() needs an earlier sample of the series to see the burst.
        topic = namespace.topic("ehr.events.v1")
        bootstrap = namespace.settings.kafka_bootstrap_servers
        await produce(bootstrap, topic, [(None, POISON)])

        def dead_letter_series_seen() -> bool:
            result = prom.api("query", query='attune_intake_dead_letters_total{code="invalid_json"}')[
                "result"
            ]
            return bool(result) and float(result[0]["value"][1]) >= 1

        prom.wait_for(dead_letter_series_seen, 60, "seeing the first dead letter")
        time.sleep(2)  # two more scrapes at the pre-burst value
        await produce(bootstrap, topic, [(None, POISON)] * 50)

        def firing() -> list[dict[str, Any]]:
            return [
                a
                for a in prom.api("alerts")["alerts"]
                if a["labels"]["alertname"] == DEAD_LETTER_ALERT and a["state"] == "firing"
            ]

        prom.wait_for(lambda: bool(firing()), 90, f"firing {DEAD_LETTER_ALERT}")
        (alert,) = firing()
        assert alert["labels"]["code"] == "invalid_json"
        assert alert["labels"]["severity"] == "warning"
        assert float(alert["value"]) > 0.05
        # the stack stays healthy meanwhile: no availability alert fires
        states = {(a["labels"]["alertname"], a["state"]) for a in prom.api("alerts")["alerts"]}
        for name in ("AttuneServiceDown", "AttuneNotReady", "AttuneServiceMissing"):
            assert (name, "firing") not in states, states
        # the rules Prometheus loaded are the project's files, all healthy
        groups = prom.api("rules")["groups"]
        assert {g["file"] for g in groups} == {str(p) for p in ops.RULES}
        unhealthy = [r["name"] for g in groups for r in g["rules"] if r.get("health") != "ok"]
        assert not unhealthy, unhealthy
    finally:
        prom.stop()
    stack.assert_complete()
