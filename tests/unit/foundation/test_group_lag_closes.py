"""group_lag (the services' lag gauge, `attune lag`, the demo and the soak) closes its Kafka clients
also when the broker is away: before, a failed start left them open, one pair every poll of an outage
("Unclosed AIOKafkaConsumer" at garbage collection)."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from attune_shared import kafka
from attune_shared.settings import ServiceSettings

CLOSED: list[str] = []


class _Admin:
    def __init__(self, **_: Any) -> None:
        pass

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        CLOSED.append("admin")


class _Consumer:
    def __init__(self, **_: Any) -> None:
        pass

    async def start(self) -> None:
        raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9092)]")

    async def stop(self) -> None:
        CLOSED.append("consumer")


async def test_clients_are_closed_when_the_broker_is_away(monkeypatch: pytest.MonkeyPatch) -> None:
    CLOSED.clear()
    monkeypatch.setattr(kafka, "AIOKafkaAdminClient", _Admin)
    monkeypatch.setattr(kafka, "AIOKafkaConsumer", _Consumer)
    with pytest.raises(KafkaConnectionError):
        await kafka.group_lag(ServiceSettings(), "attune-intake", ["ehr.events.v1"])
    assert sorted(CLOSED) == ["admin", "consumer"]
