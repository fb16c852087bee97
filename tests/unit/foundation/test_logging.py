"""PHI never reaches a log line."""

from __future__ import annotations

import json

import structlog

from attune_shared.logging import configure_logging, drop_phi


def test_drop_phi_removes_mrn_at_any_depth() -> None:
    event = {"event": "x", "mrn": "MRN1", "ctx": {"mrn": "MRN2", "ok": 1, "deep": [{"mrn": "MRN3"}]}}
    out = drop_phi(None, "info", event)
    assert "MRN" not in json.dumps(out)
    assert out["ctx"]["ok"] == 1


def test_json_log_lines_carry_service_and_no_mrn(capsys) -> None:
    configure_logging("intake", "json")
    structlog.get_logger().info("batch_done", mrn="MRN-SECRET", event_id="e1", payload={"mrn": "MRN-2"})
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["service"] == "intake" and record["event_id"] == "e1"
    assert "MRN-SECRET" not in line and "MRN-2" not in line
