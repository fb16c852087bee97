"""Configuration files, outbox documents, backoff and e-mail text (pure)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from attune_alerts.delivery import backoff_seconds, deliveries_for, email_text
from attune_alerts.domain.lifecycle import alert_event, escalated
from attune_alerts.ports import make_record
from attune_alerts.settings import AlertsSettings, load_contacts, load_thresholds
from attune_shared.clinic_settings import ClinicSettingsError
from tests.unit.alerts_service.builders import T0
from tests.unit.alerts_service.test_lifecycle import _raised


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "f.json"
    path.write_text(json.dumps(data))
    return path


def test_thresholds_file_default_and_per_clinic_overrides(tmp_path: Path) -> None:
    th = load_thresholds(
        _write(
            tmp_path,
            {"default": {"sla_high_hours": 12}, "clinics": {"north-01": {"repair_window_sessions": 6}}},
        )
    )
    assert (
        th.for_clinic("south-01").sla_high_hours == 12
        and th.for_clinic("south-01").repair_window_sessions == 3
    )
    assert (
        th.for_clinic("north-01").sla_high_hours == 12
        and th.for_clinic("north-01").repair_window_sessions == 6
    )
    assert load_thresholds(None).for_clinic("x").inactivity_days == 21


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"default": {"rupture_strcit_drop": 2}}, "unknown alert threshold"),
        ({"clinics": {"north-01": {"repair_window_sessions": 2.5}}}, "whole number"),
        ({"clinics": {"north-01": {"sla_urgent_hours": -1}}}, "positive"),
        ({"defaults": {}}, "unknown top-level key"),
    ],
)
def test_a_bad_thresholds_file_stops_the_service_naming_the_problem(
    tmp_path: Path, data: object, message: str
) -> None:
    with pytest.raises(ClinicSettingsError, match=message):
        load_thresholds(_write(tmp_path, data))


def test_contacts_file_validation_and_secret_lookup(tmp_path: Path) -> None:
    contacts = load_contacts(
        _write(
            tmp_path,
            {
                "clinics": {
                    "north-01": {
                        "webhooks": [{"url": "https://hooks.example/a", "secret": "0123456789abcdef"}],
                        "lead_email": "lead@north.example",
                        "escalation": {
                            "email": "duty@north.example",
                            "webhooks": [{"url": "https://pager.example/x", "secret": "fedcba9876543210"}],
                        },
                    }
                }
            },
        )
    )
    assert contacts.secret_for("north-01", "https://hooks.example/a") == "0123456789abcdef"
    assert contacts.secret_for("north-01", "https://pager.example/x") == "fedcba9876543210"
    assert contacts.secret_for("south-01", "https://hooks.example/a") is None
    with pytest.raises(ClinicSettingsError, match="secret"):
        load_contacts(
            _write(
                tmp_path, {"clinics": {"n": {"webhooks": [{"url": "https://x.example", "secret": "short"}]}}}
            )
        )
    with pytest.raises(ClinicSettingsError, match="http"):
        load_contacts(
            _write(
                tmp_path, {"clinics": {"n": {"webhooks": [{"url": "ftp://x.example/a", "secret": "0" * 16}]}}}
            )
        )


def test_outbox_documents_per_event_and_target_with_derived_ids(tmp_path: Path) -> None:
    contacts = load_contacts(
        _write(
            tmp_path,
            {
                "clinics": {
                    "north-01": {
                        "webhooks": [{"url": "https://hooks.example/a", "secret": "0123456789abcdef"}],
                        "lead_email": "lead@north.example",
                        "escalation": {"email": "duty@north.example"},
                    }
                }
            },
        )
    )
    s = _raised()
    raised = make_record(s, alert_event(s, "alert.raised", T0), cause="in:x:0", origin_event_id="x")
    docs = deliveries_for(raised, contacts, email_enabled=True)
    assert sorted((d["channel"], d["target"], d["purpose"]) for d in docs) == [
        ("email", "lead@north.example", "lead"),
        ("webhook", "https://hooks.example/a", "clinic"),
    ]
    assert [d["_id"] for d in docs] == [
        d["_id"] for d in deliveries_for(raised, contacts, email_enabled=True)
    ]
    assert all(d["body"] == raised.body and d["status"] == "pending" and d["attempts"] == [] for d in docs)
    assert [d["channel"] for d in deliveries_for(raised, contacts, email_enabled=False)] == ["webhook"]
    e = escalated(s, level=1)
    assert e is not None
    esc = make_record(e, alert_event(e, "alert.escalated", T0), cause="escalation:1", origin_event_id=None)
    targets = {(d["channel"], d["target"]) for d in deliveries_for(esc, contacts, email_enabled=True)}
    assert targets == {("webhook", "https://hooks.example/a"), ("email", "duty@north.example")}
    assert deliveries_for(raised, load_contacts(None), email_enabled=True) == []


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rnd = random.Random(7)
    delays = [backoff_seconds(n, 2.0, 60.0, rnd) for n in range(1, 9)]
    for n, d in enumerate(delays, start=1):
        full = min(60.0, 2.0 * 2 ** (n - 1))
        assert full * 0.5 <= d <= full
    assert max(delays) <= 60.0


def test_email_text_has_title_rule_severity_clinic_and_link_only() -> None:
    s = _raised()
    body = alert_event(s, "alert.raised", T0).model_dump_json()
    subject, text = email_text(body, "https://alerts.example/")
    assert subject == "[Attune] high alert raised: Possible alliance rupture: review"
    assert "Rule: alliance.rupture (version 1)" in text and "Clinic: north-01" in text
    assert f"https://alerts.example/v1/alerts/{s.alert_id}" in text
    assert s.alert.client_ref not in text and "WAI-SR" not in text and s.alert.episode_id not in text


def test_settings_defaults_and_email_switch() -> None:
    s = AlertsSettings()
    assert s.attune_http_port == 8083 and s.attune_alerts_clock == "wall" and not s.email_enabled
    assert s.attune_alerts_webhook_max_attempts == 8 and s.attune_alerts_webhook_timeout_seconds == 5
    assert s.attune_alerts_sweep_seconds == 30 and s.database_name == "attune_alerts"
    assert AlertsSettings(attune_smtp_host="smtp.example").email_enabled
