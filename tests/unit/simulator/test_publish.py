"""publish(): Kafka with acks=all, idempotence, keys and bounded in-flight; HTTP in batches of 500."""

import asyncio
import json
import time
from typing import Any

import aiokafka
import httpx
import pytest

from attune_cli.simulator import PublishError, Scenario, SimConfig, generate, publish


@pytest.fixture(scope="module")
def tiny() -> Scenario:
    return generate(SimConfig(clinics=1, clients=4, weeks=4, seed=3))


class FakeProducer:
    """Stands in for AIOKafkaProducer: records what is sent, acknowledges a moment later."""

    instances: list["FakeProducer"] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.pending: list[asyncio.Future[None]] = []
        self.max_unacked = 0
        self.started = self.stopped = False
        FakeProducer.instances.append(self)

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future[None]:
        self.sent.append((topic, value, key))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.0005, future.set_result, None)
        self.pending.append(future)
        self.max_unacked = max(self.max_unacked, sum(not f.done() for f in self.pending))
        return future


async def test_kafka_sends_every_record_in_order_with_its_key(
    default_scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", FakeProducer)
    seen: list[int] = []
    result = await publish(
        default_scenario,
        "kafka",
        bootstrap="broker:9092",
        topic="t1-ehr.events.v1",
        progress=lambda done, total: seen.append(done),
        max_in_flight=50,
    )
    producer = FakeProducer.instances[-1]
    assert producer.kwargs["acks"] == "all"
    assert producer.kwargs["enable_idempotence"] is True
    assert producer.kwargs["bootstrap_servers"] == "broker:9092"
    assert producer.started and producer.stopped
    assert [(v, k) for _, v, k in producer.sent] == [(r.value, r.key) for r in default_scenario.records]
    assert {t for t, _, _ in producer.sent} == {"t1-ehr.events.v1"}
    assert producer.max_unacked <= 50
    assert result.sent == len(default_scenario.records)
    assert seen[-1] == len(default_scenario.records) and seen == sorted(seen)


async def test_kafka_rate_limit_paces_the_sends(tiny: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", FakeProducer)
    began = time.monotonic()
    await publish(tiny, "kafka", rate=1000.0)
    assert time.monotonic() - began >= (len(tiny.records) - 1) / 1000 * 0.9


class FakeIntake:
    """intake's POST /v1/ehr/events as far as the simulator can tell."""

    def __init__(self, status: int = 202) -> None:
        self.status = status
        self.bodies: list[list[Any]] = []
        self.tokens: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/ehr/events"
        self.tokens.append(request.headers.get("authorization"))
        events = json.loads(request.content)["events"]
        self.bodies.append(events)
        rejected = [{"index": i, "code": "x"} for i, e in enumerate(events) if not isinstance(e, dict)]
        return httpx.Response(
            self.status, json={"accepted": len(events), "duplicates": 0, "rejected": rejected}
        )


async def test_http_posts_batches_of_at_most_500_with_the_token(default_scenario: Scenario) -> None:
    intake = FakeIntake()
    result = await publish(
        default_scenario, "http", http_url="http://intake", transport=httpx.MockTransport(intake)
    )
    assert all(len(body) <= 500 for body in intake.bodies)
    assert set(intake.tokens) == {"Bearer dev-ehr-sim"}
    sent = [json.dumps(e) for body in intake.bodies for e in body]
    expected = [json.dumps(json.loads(r.value)) for r in default_scenario.records if r.json_ok]
    assert sent == expected  # every JSON record, in order
    assert sorted(result.skipped) == ["invalid_json", "invalid_json"]  # not JSON: Kafka only
    assert result.sent == len(expected)
    assert result.rejected == 2  # the two not_an_object records in this fake


async def test_http_refusal_is_an_error(tiny: Scenario) -> None:
    with pytest.raises(PublishError, match="401"):
        await publish(tiny, "http", transport=httpx.MockTransport(FakeIntake(status=401)))


async def test_unknown_transport_is_refused(tiny: Scenario) -> None:
    with pytest.raises(ValueError, match="via"):
        await publish(tiny, "smoke-signals")  # type: ignore[arg-type]
