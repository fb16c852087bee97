"""Per key, records go out in the order they happened, except the deliberate late deliveries."""

import json

from attune_cli.simulator import Scenario
from tests.unit.simulator.helpers import per_key_records


def test_each_keys_records_keep_their_order_except_late_ones(default_scenario: Scenario) -> None:
    for key, records in per_key_records(default_scenario).items():
        if key is None:
            continue
        on_time = [r.occurred_at for r in records if r.kind == "event"]
        assert all(r is not None for r in on_time)
        assert on_time == sorted(on_time), key  # type: ignore[type-var]


def test_late_records_really_come_after_later_events_of_their_key(default_scenario: Scenario) -> None:
    late_types = set()
    for key, records in per_key_records(default_scenario).items():
        for index, record in enumerate(records):
            if record.kind != "late":
                continue
            late_types.add(record.event_type)
            assert record.occurred_at is not None
            earlier_sends = [r for r in records[:index] if r.occurred_at is not None]
            assert any(r.occurred_at > record.occurred_at for r in earlier_sends), key
    assert late_types == {"session.attended", "appointment.scheduled"}


def test_a_questionnaire_arrives_before_its_own_attended_session(default_scenario: Scenario) -> None:
    found = 0
    for records in per_key_records(default_scenario).values():
        for index, record in enumerate(records):
            if record.kind == "late" and record.event_type == "session.attended":
                appointment = json.loads(record.value)["payload"]["appointment_id"]
                before = [json.loads(r.value)["payload"] for r in records[:index] if r.kind == "event"]
                assert any(p.get("appointment_id") == appointment and "items" in p for p in before)
                found += 1
    assert found >= 5


def test_duplicates_follow_their_original(default_scenario: Scenario) -> None:
    sent: set[str | None] = set()
    for record in default_scenario.records:
        if record.kind == "duplicate":
            assert record.event_id in sent
        elif record.kind != "poison":
            sent.add(record.event_id)
