"""The ASGI CWMP endpoint's own guard: past the in-flight bound it refuses what would start a
session, and still serves requests that continue one; a body still trickling in holds no
slot of it."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from acs.db.errors import StorageError
from acs.web.cwmp_app import SLOT_BYTES, CwmpEndpoint


async def _post(endpoint: CwmpEndpoint, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": headers,
        "client": ("192.0.2.7", 40000),
        "scheme": "http",
    }
    await endpoint(scope, receive, send)
    start = sent[0]
    return {"status": start["status"], "headers": dict(start["headers"])}


async def test_in_flight_bound_refuses_new_work_but_not_open_sessions(make_runtime):
    runtime = await make_runtime(cwmp_max_inflight=4)
    endpoint = CwmpEndpoint(app=None, runtime=runtime)
    cookie = [(b"cookie", b"acs_session=abc")]
    # what the service answers these two (an empty POST outside any session: 400)
    assert (await _post(endpoint, []))["status"] == 400
    assert (await _post(endpoint, cookie))["status"] == 400
    endpoint.inflight = 4  # as if four requests were being read or served
    refused = await _post(endpoint, [])
    assert refused["status"] == 503
    assert int(refused["headers"][b"retry-after"]) >= 1
    # with a session cookie it continues a session: past the guard, to the service
    assert (await _post(endpoint, cookie))["status"] == 400
    assert endpoint.inflight == 4


@pytest.mark.parametrize(
    "error",
    [
        PoolTimeout("QueuePool limit of size 10 overflow 10 reached, connection timed out"),
        OperationalError("SELECT 1", {}, Exception("server closed the connection")),
        ConnectionResetError("reset by peer"),
        StorageError("database is locked"),
    ],
    ids=["pool-exhausted", "database-error", "connection-reset", "storage-error"],
)
async def test_storage_trouble_is_a_503_with_retry_after(make_runtime, monkeypatch, error):
    """Whatever keeps the database from serving a request (a pool with every connection busy
    for its timeout in an overload, a lost connection) is "come back later", not a 500."""
    runtime = await make_runtime()
    endpoint = CwmpEndpoint(app=None, runtime=runtime)

    @asynccontextmanager
    async def failing() -> Any:
        raise error
        yield

    monkeypatch.setattr(runtime.db, "hot_write", failing)
    answer = await _post(endpoint, [(b"cookie", b"acs_session=abc")])
    assert answer["status"] == 503
    assert int(answer["headers"][b"retry-after"]) >= 1
    assert endpoint.inflight == 0


class _Trickle:
    """A request whose body arrives when the test says (``give``), on a real endpoint."""

    def __init__(self, endpoint: CwmpEndpoint):
        self.chunks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/",
            "headers": [],
            "client": ("192.0.2.8", 40001),
            "scheme": "http",
        }
        self.task = asyncio.create_task(endpoint(scope, self.chunks.get, self._send))

    async def _send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def give(self, body: bytes, more: bool = True) -> None:
        await self.chunks.put({"type": "http.request", "body": body, "more_body": more})
        for _ in range(5):  # let the endpoint take it
            await asyncio.sleep(0)

    async def leave(self) -> None:
        await self.chunks.put({"type": "http.disconnect"})
        await asyncio.wait_for(self.task, 5)

    async def status(self) -> int:
        await asyncio.wait_for(self.task, 5)
        return int(self.sent[0]["status"])


async def test_a_body_trickling_in_holds_no_slot_of_the_in_flight_bound(make_runtime):
    """Before: four clients sending a byte now and then held all four slots, and every
    Inform was refused for as long as they stayed."""
    runtime = await make_runtime(cwmp_max_inflight=4)
    endpoint = CwmpEndpoint(app=None, runtime=runtime)
    slow = [_Trickle(endpoint) for _ in range(4)]
    for request in slow:
        await request.give(b"<")
    assert endpoint.inflight == 0
    assert (await _post(endpoint, []))["status"] == 400  # served: the service's answer
    # past SLOT_BYTES a body holds a slot (its memory is worth bounding)
    large = [_Trickle(endpoint) for _ in range(4)]
    for request in large:
        await request.give(b" " * (SLOT_BYTES + 1))
    assert endpoint.inflight == 4
    fifth = _Trickle(endpoint)
    await fifth.give(b" " * (SLOT_BYTES + 1))
    assert await fifth.status() == 503
    assert (b"connection", b"close") in fifth.sent[0]["headers"]  # the rest is not read
    assert endpoint.inflight == 4
    # clients that leave before their body is complete get no answer and free their slots
    for request in (*slow, *large):
        await request.leave()
        assert request.sent == []
    assert endpoint.inflight == 0
