"""Errors that retrying cannot fix stop the retry loop at once; transient ones are retried."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed, TopicAuthorizationFailedError
from pymongo.errors import AutoReconnect, OperationFailure

from attune_shared.kafka import FatalError, is_fatal, retry_transient


@pytest.mark.parametrize(
    "exc",
    [
        SaslAuthenticationFailed(),
        TopicAuthorizationFailedError(),
        OperationFailure("auth failed", code=18),
        OperationFailure("not authorized", code=13),
    ],
)
async def test_credentials_and_permissions_are_fatal(exc: Exception) -> None:
    assert is_fatal(exc)
    calls = 0

    async def fail() -> None:
        nonlocal calls
        calls += 1
        raise exc

    with pytest.raises(FatalError):
        await retry_transient("op", fail)
    assert calls == 1


async def test_a_passing_outage_is_retried() -> None:
    failures = [KafkaConnectionError(), AutoReconnect("store away")]

    async def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    assert not is_fatal(KafkaConnectionError()) and not is_fatal(OperationFailure("x", code=11600))
    assert await retry_transient("op", flaky, max_delay=0.01) == "done"
