"""A service whose topics do not exist (auto-creation off) stops with a clear error, not a retry loop."""

from __future__ import annotations

import time
import uuid

from tests.support.procs import ServiceProcess


def test_missing_topics_stop_the_service_with_a_clear_message(tmp_path) -> None:
    env = {"ATTUNE_NAME_PREFIX": f"nt{uuid.uuid4().hex[:8]}_", "ATTUNE_LOG_FORMAT": "json"}
    proc = ServiceProcess("measures", env, tmp_path / "measures.log").start()
    assert proc.proc is not None
    deadline = time.monotonic() + 60
    while proc.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    code = proc.proc.poll()
    if code is None:
        proc.kill()
    log = proc.tail(80)
    assert code not in (None, 0), log
    assert "topics_missing" in log and "attune topics" in log, log
