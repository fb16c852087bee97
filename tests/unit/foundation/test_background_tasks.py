"""A service's background tasks (reporting's materializer sweep, alerts' sweeps and deliveries,
measures' trajectory refits) run for its lifetime: one that ends by itself makes /readyz answer 503
instead of a service that looks ready while part of its work has stopped."""

from __future__ import annotations

import asyncio
from typing import Any

from attune_shared.kafka import make_broker
from attune_shared.runtime import Service
from attune_shared.settings import ServiceSettings


def _service() -> Service[None]:
    settings = ServiceSettings(attune_name_prefix="u_")
    return Service(settings=settings, broker=make_broker(settings), group_id="g", topics=["u_t"])


async def _up(service: Service[None]) -> dict[str, bool]:
    """readiness() with Kafka and the store answering."""

    class Db:
        async def command(self, name: str) -> dict[str, Any]:
            return {"ok": 1}

    async def ping(timeout: float | None) -> bool:
        return True

    service.db = Db()  # type: ignore[assignment]
    service.broker.ping = ping  # type: ignore[method-assign]
    return await service.readiness()


async def test_a_background_task_that_fails_makes_the_service_not_ready() -> None:
    service = _service()
    gate = asyncio.Event()

    async def sweep() -> None:
        await gate.wait()
        raise RuntimeError("a bug the sweep did not catch")

    async def forever() -> None:
        await asyncio.Event().wait()

    service.spawn(sweep(), "materializer")
    service.spawn(forever(), "lag")
    assert await _up(service) == {"kafka": True, "store": True}
    gate.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert service.ended_tasks == ["materializer"]
    assert await _up(service) == {"kafka": True, "store": True, "background": False}
    for task in service.tasks:
        task.cancel()


async def test_tasks_cancelled_at_stop_do_not_count() -> None:
    service = _service()

    async def forever() -> None:
        await asyncio.Event().wait()

    service.spawn(forever(), "sweep")
    await asyncio.sleep(0)
    service.tasks[0].cancel()
    await asyncio.sleep(0)
    assert service.ended_tasks == []
    assert "background" not in await _up(service)
