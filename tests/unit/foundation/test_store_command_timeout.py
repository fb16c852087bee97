"""A store command that is never answered fails after MONGODB_SOCKET_TIMEOUT_MS instead of waiting for
ever: the batch subscriber then retries it (a transient error, logged) instead of a consumer that
stops without a word while its lag grows (docs/reliability.md, the store outage).

The store here is a fake MongoDB server on a local port: it answers the handshake (`hello`) and never
answers anything else, as a store does whose command is stuck (a stand-in's wedged connection pool,
a session behind a lock that is never released, a peer gone without closing the connection).
"""

from __future__ import annotations

import asyncio
import struct
from datetime import UTC, datetime
from typing import Any

import bson
import pytest
from pymongo.errors import NetworkTimeout, PyMongoError

from attune_shared.kafka import TRANSIENT, is_fatal
from attune_shared.mongo import make_client
from attune_shared.settings import ServiceSettings

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013


def _hello() -> bytes:
    return bson.encode(
        {
            "ok": 1.0,
            "isWritablePrimary": True,
            "ismaster": True,
            "helloOk": True,
            "maxWireVersion": 21,
            "minWireVersion": 0,
            "maxBsonObjectSize": 16 * 1024 * 1024,
            "maxMessageSizeBytes": 48_000_000,
            "maxWriteBatchSize": 100_000,
            "localTime": datetime.now(UTC),
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": 1,
        }
    )


class SilentStore:
    """Answers `hello` (OP_QUERY or OP_MSG); swallows every other command without a reply."""

    def __init__(self) -> None:
        self.unanswered: list[str] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(16)
                length, request_id, _, opcode = struct.unpack("<iiii", header)
                body = await reader.readexactly(length - 16)
                if opcode == OP_QUERY:  # a legacy handshake: flags, collection name, skip, limit, doc
                    payload = struct.pack("<iqii", 0, 0, 0, 1) + _hello()
                    writer.write(struct.pack("<iiii", 16 + len(payload), 0, request_id, OP_REPLY) + payload)
                elif opcode == OP_MSG:  # flags, then a kind-0 section: the command document
                    size = struct.unpack("<i", body[5:9])[0]
                    command: dict[str, Any] = bson.decode(body[5 : 5 + size])
                    name = next(iter(command))
                    if name.lower() not in ("hello", "ismaster"):
                        self.unanswered.append(name)
                        continue
                    payload = struct.pack("<I", 0) + b"\0" + _hello()
                    writer.write(struct.pack("<iiii", 16 + len(payload), 0, request_id, OP_MSG) + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_an_unanswered_store_command_fails_in_time_and_is_transient() -> None:
    store = SilentStore()
    server = await asyncio.start_server(store.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = ServiceSettings(mongodb_uri=f"mongodb://127.0.0.1:{port}", mongodb_socket_timeout_ms=500)
    client = make_client(settings)
    try:
        with pytest.raises(PyMongoError) as caught:
            # without a socket timeout this waits for ever (cut off here after 20 s: the test fails)
            await asyncio.wait_for(client["attune_test"]["things"].insert_one({"_id": 1}), timeout=20)
        assert isinstance(caught.value, NetworkTimeout)
        assert isinstance(caught.value, TRANSIENT) and not is_fatal(caught.value)
        assert "insert" in store.unanswered
    finally:
        await asyncio.wait_for(client.close(), timeout=20)
        server.close()


def test_the_store_client_has_a_socket_timeout_by_default() -> None:
    client = make_client(ServiceSettings())
    assert client.options.pool_options.socket_timeout == ServiceSettings().mongodb_socket_timeout_ms / 1000
