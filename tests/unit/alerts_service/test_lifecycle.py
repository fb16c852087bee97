"""Decisions and person actions -> alert documents and events (pure)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from attune_alerts.domain.decisions import Raise, Resolve, Update
from attune_alerts.domain.lifecycle import (
    EpisodeContext,
    InvalidTransition,
    StoredAlert,
    acknowledged,
    alert_event,
    alert_id_for,
    escalated,
    event_id_for,
    jsonable,
    raised,
    resolved_by_person,
    resolved_by_rule,
    updated,
)
from attune_shared.events import AlertEvent
from attune_shared.ids import client_ref
from tests.support.ids import ep
from tests.unit.alerts_service.builders import T0

EPISODE = ep("ep_1")
CTX = EpisodeContext(EPISODE, "north-01", client_ref(b"k", "north-01", "M1"), "c-17")
RAISE = Raise(
    rule_id="alliance.rupture",
    rule_version=1,
    severity="high",
    title="Possible alliance rupture: review",
    evidence={"instrument": "WAI-SR", "score": 3.0, "mu": 4.0, "criteria": ("strict",)},
    suggested_action="Invite the client's feedback.",
    thresholds_used={"rupture_strict_drop": 2.0, "repair_window_sessions": 3},
)


def _raised(origin: str = "in-1") -> StoredAlert:
    return raised(CTX, RAISE, origin_event_id=origin, at=T0, tracking={"raised_position": 5})


def test_raise_derives_the_alert_id_from_episode_rule_and_input_and_records_rule_and_thresholds() -> None:
    s = _raised()
    a = s.alert
    assert a.alert_id == alert_id_for(EPISODE, "alliance.rupture", "in-1") == _raised().alert_id
    assert a.alert_id != _raised("in-2").alert_id
    assert (a.clinic_id, a.client_ref, a.clinician_id, a.episode_id) == (
        CTX.clinic_id,
        CTX.client_ref,
        "c-17",
        EPISODE,
    )
    assert a.status == "open" and a.severity == "high" and a.escalation_level == 0 and a.raised_at == T0
    assert a.evidence["rule_version"] == 1
    assert a.evidence["thresholds_used"] == {"rupture_strict_drop": 2.0, "repair_window_sessions": 3}
    assert a.evidence["criteria"] == ["strict"]  # tuples become JSON arrays
    assert s.sequence == 1 and s.tracking == {"raised_position": 5}


def test_event_ids_are_derived_from_alert_type_and_sequence() -> None:
    s = _raised()
    e = alert_event(s, "alert.raised", T0)
    assert isinstance(e, AlertEvent)
    assert (
        e.event_id
        == event_id_for(s.alert_id, "alert.raised", 1)
        == alert_event(s, "alert.raised", T0).event_id
    )
    assert e.kafka_key == CTX.client_ref
    u = updated(s, Update("alliance.rupture", {"score": 2.8}))
    assert u is not None and u.sequence == 2
    assert alert_event(u, "alert.updated", T0).event_id == event_id_for(s.alert_id, "alert.updated", 2)
    assert (
        len({event_id_for(s.alert_id, t, n) for t in ("alert.raised", "alert.updated") for n in (1, 2)}) == 4
    )


def test_update_replaces_evidence_keeps_rule_version_and_thresholds_and_may_raise_severity() -> None:
    s = _raised()
    u = updated(s, Update("alliance.rupture", {"score": 2.8, "trigger_count": 2}, severity="urgent"))
    assert u is not None
    assert u.alert.evidence == {
        "score": 2.8,
        "trigger_count": 2,
        "rule_version": 1,
        "thresholds_used": {"rupture_strict_drop": 2.0, "repair_window_sessions": 3},
    }
    assert u.alert.severity == "urgent" and u.alert.alert_id == s.alert_id and u.tracking == s.tracking
    same = updated(s, Update("alliance.rupture", {"score": 2.9}))
    assert same is not None and same.alert.severity == "high"


def test_rule_resolution_keeps_evidence_and_adds_resolution_evidence() -> None:
    s = _raised()
    r = resolved_by_rule(
        s,
        Resolve("alliance.rupture", "repaired", {"repair_score": 4.1}),
        at=T0 + timedelta(days=14),
        extra={"sessions_to_repair": 2, "sessions_to_repair_from": "trough"},
    )
    assert r is not None
    a = r.alert
    assert a.status == "resolved" and a.resolution == "repaired" and a.resolved_at == T0 + timedelta(days=14)
    assert a.evidence["score"] == 3.0 and a.evidence["rule_version"] == 1
    assert a.evidence["resolution_evidence"] == {
        "repair_score": 4.1,
        "sessions_to_repair": 2,
        "sessions_to_repair_from": "trough",
    }
    assert r.resolved_by == "rules" and r.sequence == 2
    # A resolved alert takes no more rule changes.
    assert updated(r, Update("alliance.rupture", {})) is None
    assert resolved_by_rule(r, Resolve("alliance.rupture", "episode_ended", {}), at=T0) is None


def test_person_lifecycle_open_acknowledged_resolved_and_invalid_transitions() -> None:
    s = _raised()
    with pytest.raises(InvalidTransition, match="acknowledge it first"):
        resolved_by_person(s, resolution="addressed", by="lead-north", at=T0)
    a = acknowledged(s, by="lead-north", at=T0 + timedelta(minutes=5), note="called")
    assert a.alert.status == "acknowledged" and a.alert.acknowledged_by == "lead-north"
    assert a.notes[0]["note"] == "called" and a.sequence == 2
    with pytest.raises(InvalidTransition):
        acknowledged(a, by="lead-north", at=T0)
    with pytest.raises(InvalidTransition, match="addressed or false_positive"):
        resolved_by_person(a, resolution="repaired", by="lead-north", at=T0)
    r = resolved_by_person(a, resolution="false_positive", by="lead-north", at=T0 + timedelta(hours=1))
    assert (
        r.alert.status == "resolved"
        and r.alert.resolution == "false_positive"
        and r.resolved_by == "lead-north"
    )
    assert r.sequence == 3 and "note" not in alert_event(r, "alert.resolved", T0).model_dump_json()
    with pytest.raises(InvalidTransition, match="already resolved"):
        resolved_by_person(r, resolution="addressed", by="lead-north", at=T0)


def test_escalation_applies_only_to_open_alerts_below_the_level() -> None:
    s = _raised()
    e = escalated(s, level=1)
    assert e is not None and e.alert.escalation_level == 1 and e.sequence == 2
    assert escalated(e, level=1) is None
    assert escalated(acknowledged(s, by="x", at=T0), level=1) is None


def test_jsonable_turns_sets_tuples_and_datetimes_into_json() -> None:
    assert jsonable({"a": (1, 2), "b": frozenset({"y", "x"}), "t": T0, "n": {"k": [T0]}}) == {
        "a": [1, 2],
        "b": ["x", "y"],
        "t": T0.isoformat(),
        "n": {"k": [T0.isoformat()]},
    }
