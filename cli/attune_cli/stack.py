"""Run Attune's four services as real processes (for `attune run`, the demo and the tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "measures", "alerts", "reporting")
DEFAULT_PORTS = {"intake": 8081, "measures": 8082, "alerts": 8083, "reporting": 8084, "console": 8085}
# The console calls the APIs over HTTP; started only when asked for (services=(*SERVICES, "console")).
CONSOLE_APIS = {
    "alerts": "ATTUNE_CONSOLE_ALERTS_URL",
    "reporting": "ATTUNE_CONSOLE_REPORTING_URL",
    "intake": "ATTUNE_CONSOLE_INTAKE_URL",
    "measures": "ATTUNE_CONSOLE_MEASURES_URL",
}


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServiceProcess:
    """One service process: start, wait until ready, signal, read its log."""

    name: str
    env: dict[str, str]
    log_path: Path | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the service's HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, inherit_output: bool = False) -> ServiceProcess:
        """Start the process (output to the log file, or to ours)."""
        env = {**os.environ, **self.env, "ATTUNE_HTTP_PORT": str(self.port)}
        env.setdefault("ATTUNE_LOG_FORMAT", "json")
        out = None
        if not inherit_output:
            assert self.log_path is not None, "a log path is needed unless output is inherited"
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"attune_{self.name}.app"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=not inherit_output,
        )
        return self

    def ready(self) -> bool:
        """True when /readyz answers 200."""
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 60) -> None:
        """Block until ready; raise with the log's tail if it exits or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log:\n{self.tail()}")
            if self.ready():
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready in {timeout}s; log:\n{self.tail()}")

    def kill(self, sig: int = signal.SIGKILL, wait: float = 20) -> int | None:
        """Send a signal and wait for the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)

    def wait_exit(self, timeout: float = 20) -> int | None:
        """Wait for the exit code of a process already signalled; SIGKILL it after `timeout`."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        """Graceful stop (SIGTERM)."""
        return self.kill(signal.SIGTERM)

    def tail(self, n: int = 40) -> str:
        """The last lines of the log."""
        if self.log_path is None:
            return "(output went to the terminal)"
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def replay_env(prefix: str) -> dict[str, str]:
    """The services' environment for a simulated network replayed fast (demo, soak, end-to-end tests):
    its own topic and database prefix, the event clock with a quick sweep, JSON logs, quick gauges."""
    return {
        "ATTUNE_NAME_PREFIX": prefix,
        "ATTUNE_ALERTS_CLOCK": "event",
        "ATTUNE_ALERTS_SWEEP_SECONDS": "2",
        "ATTUNE_LOG_FORMAT": "json",
        "ATTUNE_REPORTING_GAUGE_REFRESH_S": "5",
    }


def start_stack(
    env: dict[str, str],
    log_dir: Path | None,
    *,
    ports: dict[str, int] | None = None,
    inherit_output: bool = False,
    services: tuple[str, ...] = SERVICES,
) -> dict[str, ServiceProcess]:
    """Start the services and wait until each is ready."""
    procs: dict[str, ServiceProcess] = {}
    for name in services:
        port = (ports or {}).get(name) or free_port()
        log_path = None if log_dir is None else log_dir / f"{name}.log"
        service_env = env
        if name == "console":
            service_env = {
                **env,
                **{var: procs[api].url for api, var in CONSOLE_APIS.items() if api in procs},
            }
        procs[name] = ServiceProcess(name, service_env, log_path, port=port).start(
            inherit_output=inherit_output
        )
    try:
        for proc in procs.values():
            proc.wait_ready()
    except Exception:
        stop_stack(procs)
        raise
    return procs


def stop_stack(procs: dict[str, ServiceProcess]) -> dict[str, int | None]:
    """SIGTERM every service, then wait for each; return exit codes."""
    for p in procs.values():
        if p.proc is not None and p.proc.poll() is None:
            p.proc.send_signal(signal.SIGTERM)
    # One SIGTERM each: a second one can land after uvicorn has put the default handler back.
    return {name: p.wait_exit() for name, p in procs.items()}
