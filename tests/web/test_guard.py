"""acs.web.guard: the reading machine on its own, then the guarded uvicorn protocol on real
sockets (a uvicorn server in the test's loop, asyncio streams as clients). If uvicorn stops
calling the hooks the guard relies on, the socket tests fail: nothing is closed."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from acs.services import metrics
from acs.services.throttle import source_key
from acs.web import guard as g
from acs.web.guard import ConnectionGuard, ConnectionLimits, Event, Phase, Reading

LIMITS = ConnectionLimits(header_timeout=10, body_timeout=30, body_min_rate=100)
_names = itertools.count(1)


def _guard(limits: ConnectionLimits, **kwargs: Any) -> ConnectionGuard:
    """A guard with a listener name of its own: its counts start at zero."""
    return ConnectionGuard(limits, f"test{next(_names)}", **kwargs)


def closed(guard: ConnectionGuard) -> dict[str, int]:
    """What the guard closed, by reason (``metrics.HTTP_CONNECTIONS_CLOSED``)."""
    return {
        reason: int(
            metrics.REGISTRY.get_sample_value(
                "acs_http_connections_closed_total", {"listener": guard.listener, "reason": reason}
            )
            or 0
        )
        for reason in ("per_source", "headers", "body", "idle")
    }


# --- the machine -------------------------------------------------------------------------


def test_a_new_connection_has_the_header_deadline_from_its_connect():
    r = Reading(now=100.0)
    assert (r.phase, r.pending, r.deadline(LIMITS), r.idle) == (Phase.NEW, 0, 110.0, False)
    r.move(Event.BEGIN, 105.0)  # its first byte, 5 s later: the clock does not restart
    assert (r.phase, r.pending, r.deadline(LIMITS)) == (Phase.HEADERS, 1, 110.0)


def test_one_request_and_its_answer():
    r = Reading(now=0.0)
    r.move(Event.BEGIN, 1.0)
    r.move(Event.HEADERS_DONE, 2.0)
    assert (r.phase, r.deadline(LIMITS)) == (Phase.BODY, 32.0)
    r.body_bytes += 250
    r.body_bytes += 250  # 500 bytes at 100 B/s earn 5 s
    assert r.deadline(LIMITS) == 37.0
    r.move(Event.MESSAGE_DONE, 3.0)
    assert (r.phase, r.deadline(LIMITS), r.idle) == (Phase.READ, None, False)  # answering
    r.move(Event.RESPONSE_DONE, 4.0)
    assert (r.phase, r.pending, r.deadline(LIMITS), r.idle) == (Phase.READ, 0, None, True)
    # the next request on the kept-alive connection: headers from its first byte
    r.move(Event.BEGIN, 50.0)
    assert (r.phase, r.deadline(LIMITS), r.idle) == (Phase.HEADERS, 60.0, False)
    r.move(Event.HEADERS_DONE, 51.0)
    assert r.deadline(LIMITS) == 81.0  # the earlier body's bytes do not count


def test_an_early_answer_leaves_the_body_deadline():
    """The app answered (413, 503) before the body was read: the body must still come in
    time, and the connection is idle only once it has."""
    r = Reading(now=0.0)
    r.move(Event.BEGIN, 0.0)
    r.move(Event.HEADERS_DONE, 1.0)
    r.move(Event.RESPONSE_DONE, 2.0)
    assert (r.phase, r.pending, r.deadline(LIMITS), r.idle) == (Phase.BODY, 0, 31.0, False)
    r.move(Event.MESSAGE_DONE, 3.0)
    assert (r.deadline(LIMITS), r.idle) == (None, True)


def test_a_pipelined_body_waits_for_its_turn_without_a_deadline():
    r = Reading(now=0.0)
    r.move(Event.BEGIN, 0.0)
    r.move(Event.HEADERS_DONE, 0.0)
    r.move(Event.MESSAGE_DONE, 0.0)
    r.move(Event.BEGIN, 1.0)  # the second request, while the first is answered
    assert (r.phase, r.pending, r.deadline(LIMITS)) == (Phase.HEADERS, 2, 11.0)
    r.move(Event.HEADERS_DONE, 2.0)  # uvicorn stops reading it until the first is answered
    assert (r.phase, r.deadline(LIMITS)) == (Phase.BODY, None)
    r.move(Event.RESPONSE_DONE, 20.0)  # its turn: its body is read from now
    assert (r.phase, r.pending, r.deadline(LIMITS)) == (Phase.BODY, 1, 50.0)
    r.move(Event.MESSAGE_DONE, 21.0)
    r.move(Event.RESPONSE_DONE, 22.0)
    assert (r.pending, r.idle) == (0, True)


@pytest.mark.parametrize(
    ("moves", "illegal"),
    [
        ([], Event.HEADERS_DONE),
        ([], Event.RESPONSE_DONE),
        ([Event.BEGIN], Event.BEGIN),
        ([Event.BEGIN], Event.MESSAGE_DONE),
        ([Event.BEGIN, Event.HEADERS_DONE], Event.HEADERS_DONE),
        (
            [Event.BEGIN, Event.HEADERS_DONE, Event.MESSAGE_DONE, Event.RESPONSE_DONE],
            Event.RESPONSE_DONE,
        ),
    ],
)
def test_moves_out_of_order_are_refused(moves, illegal):
    r = Reading(now=0.0)
    for event in moves:
        r.move(event, 0.0)
    before = (r.phase, r.pending)
    with pytest.raises(g.IllegalMove):
        r.move(illegal, 1.0)
    assert (r.phase, r.pending) == before


def test_every_transition_is_tested_above():
    assert len(g.TRANSITIONS) == 7


@pytest.mark.parametrize(
    ("host", "source"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:198.51.100.7", "198.51.100.7"),  # a dual-stack listener's IPv4 peer
        ("not-an-address", "not-an-address"),
    ],
)
def test_sources(host, source):
    assert source_key(host) == source


# --- one listener's books ----------------------------------------------------------------


class _Transport:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class _Connection:
    def __init__(self) -> None:
        self.transport = _Transport()


def test_the_cap_per_source_counts_open_connections():
    guard = _guard(ConnectionLimits(per_source=2))
    assert [guard.admit("a"), guard.admit("a"), guard.admit("a"), guard.admit("b")] == [
        True,
        True,
        False,
        True,
    ]
    guard.release("a")
    assert guard.admit("a") is True
    assert guard.per_source == {"a": 2, "b": 1}
    guard.release("b")
    assert guard.per_source == {"a": 2}
    assert closed(guard)["per_source"] == 1


def test_past_the_idle_bound_the_longest_idle_is_closed():
    guard = _guard(ConnectionLimits(idle=2))
    a, b, c, d = (_Connection() for _ in range(4))
    guard.became_idle(a)  # type: ignore[arg-type]
    guard.became_idle(b)  # type: ignore[arg-type]
    guard.busy(a)  # type: ignore[arg-type]  # a request came on a: no longer idle
    guard.became_idle(a)  # type: ignore[arg-type]  # idle again, now the newest
    guard.became_idle(c)  # type: ignore[arg-type]
    assert [x.transport.closed for x in (a, b, c)] == [False, True, False]
    guard.became_idle(d)  # type: ignore[arg-type]
    assert [x.transport.closed for x in (a, c, d)] == [True, False, False]
    assert list(guard.idle) == [c, d]
    assert closed(guard)["idle"] == 2


def test_refusals_are_logged_once_a_minute_per_source_and_kind(caplog):
    now = [0.0]
    guard = _guard(ConnectionLimits(per_source=1), clock=lambda: now[0])
    caplog.set_level("INFO", logger="acs.http")
    guard.admit("a")
    for _ in range(5):
        guard.admit("a")
    guard.expired("a", Phase.HEADERS)
    guard.expired("a", Phase.HEADERS)
    guard.expired("a", Phase.BODY)
    now[0] = 61.0
    guard.admit("a")
    lines = [(r.levelname, r.getMessage(), r.fields["reason"]) for r in caplog.records]
    assert lines == [
        (
            "WARNING",
            "connection refused",
            "1 connections open from this source (ACS_HTTP_MAX_CONNECTIONS_PER_SOURCE)",
        ),
        (
            "INFO",
            "connection closed",
            "request headers not complete within 10 s (ACS_HTTP_HEADER_TIMEOUT)",
        ),
        (
            "INFO",
            "connection closed",
            "request body not complete within 30 s and 1 s per 500 bytes (ACS_HTTP_BODY_TIMEOUT)",
        ),
        (
            "WARNING",
            "connection refused",
            "1 connections open from this source (ACS_HTTP_MAX_CONNECTIONS_PER_SOURCE)",
        ),
    ]
    assert caplog.records[0].fields["client"] == "a"
    assert closed(guard) == {"per_source": 6, "headers": 2, "body": 1, "idle": 0}


def test_the_hooks_are_uvicorns():
    """The guard's protocol overrides these methods of uvicorn's httptools protocol; a
    uvicorn without them would make it guard nothing (the module refuses to import)."""
    for name in g._HOOKS:
        assert callable(getattr(HttpToolsProtocol, name)), name
        assert name in vars(g.GuardedProtocol), name


# --- on real sockets ---------------------------------------------------------------------


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body, answers its length."""
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = str(size).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Listener:
    def __init__(self, guard: ConnectionGuard, port: int):
        self.guard = guard
        self.port = port

    async def connect(self, source: str = "127.0.0.1") -> tuple[Any, Any]:
        return await asyncio.open_connection("127.0.0.1", self.port, local_addr=(source, 0))


@pytest.fixture
async def listen() -> AsyncIterator[Callable[..., Any]]:
    from acs.server import _Server, bind, listener_config

    servers: list[tuple[_Server, asyncio.Task[None]]] = []

    async def start(**limits: Any) -> Listener:
        sock = bind("127.0.0.1", 0)
        guard = ConnectionGuard(ConnectionLimits(**limits), f"test{next(_names)}")
        config = listener_config(_app, guard, timeout_keep_alive=60)
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
            assert not task.done(), task
        servers.append((server, task))
        return Listener(guard, sock.getsockname()[1])

    yield start
    for server, task in servers:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def _closed_by_server(reader: Any, seconds: float = 10.0) -> bytes:
    """What the server sent before it closed the connection (bounded wait)."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        async with asyncio.timeout(seconds):
            while chunk := await reader.read(65536):
                data += chunk
    return data


REQUEST = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"


async def _request(reader: Any, writer: Any, body: bytes = b"hello") -> bytes:
    writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return head.split(b"\r\n", 1)[0] + b" " + await reader.readexactly(length)


async def test_a_connection_that_sends_nothing_gets_408_and_is_closed(listen):
    listener = await listen(header_timeout=0.3)
    reader, writer = await listener.connect()
    data = await _closed_by_server(reader)
    assert data.split(b"\r\n")[0] == b"HTTP/1.1 408 Request Timeout"
    assert data.endswith(b"\r\n\r\nrequest timeout\n")
    assert closed(listener.guard)["headers"] == 1
    writer.close()


async def test_headers_sent_a_byte_at_a_time_are_cut_off_at_the_deadline(listen):
    listener = await listen(header_timeout=0.5)
    reader, writer = await listener.connect()
    writer.write(b"POST / HTTP/1.1\r\nHost: t\r\n")

    async def trickle() -> None:
        with contextlib.suppress(OSError):
            while True:
                writer.write(b"X")
                await writer.drain()
                await asyncio.sleep(0.05)

    task = asyncio.create_task(trickle())
    data = await _closed_by_server(reader)
    task.cancel()
    assert data.startswith(b"HTTP/1.1 408 ")
    assert closed(listener.guard) == {"per_source": 0, "headers": 1, "body": 0, "idle": 0}
    writer.close()


async def test_a_slow_body_is_cut_off_and_a_steady_one_is_not(listen):
    listener = await listen(body_timeout=0.3, body_min_rate=1000)
    slow_reader, slow = await listener.connect()
    steady_reader, steady = await listener.connect()
    head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3000\r\n\r\n"
    slow.write(head + b"a")
    steady.write(head)

    async def send_steadily() -> None:
        # 3,000 bytes over about 0.6 s, twice the body timeout, at about 5,000 B/s
        for _ in range(30):
            steady.write(b"b" * 100)
            await steady.drain()
            await asyncio.sleep(0.02)

    await send_steadily()
    reply = await asyncio.wait_for(steady_reader.readuntil(b"\r\n\r\n"), 10)
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert await steady_reader.readexactly(4) == b"3000"
    # the slow one: closed without an answer (its request is being read: no 408 across it)
    assert await _closed_by_server(slow_reader) == b""
    assert closed(listener.guard) == {"per_source": 0, "headers": 0, "body": 1, "idle": 0}
    for writer in (slow, steady):
        writer.close()


async def test_the_connection_past_the_cap_of_its_source_is_closed_unread(listen):
    listener = await listen(per_source=2)
    a = [await listener.connect("127.0.0.2") for _ in range(2)]
    refused_reader, refused = await listener.connect("127.0.0.2")
    refused.write(REQUEST)
    assert await _closed_by_server(refused_reader) == b""
    other = await listener.connect("127.0.0.3")  # another source is not counted with it
    for reader, writer in (*a, other):
        assert await _request(reader, writer) == b"HTTP/1.1 200 OK 5"
    assert listener.guard.per_source == {"127.0.0.2": 2, "127.0.0.3": 1}
    # one of the two closes: the source may open another
    a[0][1].close()
    await a[0][1].wait_closed()
    for _ in range(200):
        if listener.guard.per_source["127.0.0.2"] == 1:
            break
        await asyncio.sleep(0.01)
    again = await listener.connect("127.0.0.2")
    assert await _request(*again) == b"HTTP/1.1 200 OK 5"
    assert closed(listener.guard)["per_source"] == 1
    for _, writer in (a[1], other, again):
        writer.close()


async def test_past_the_idle_bound_the_longest_idle_connection_is_closed(listen):
    listener = await listen(idle=2)
    conns = [await listener.connect() for _ in range(3)]
    for reader, writer in conns[:2]:
        assert await _request(reader, writer) == b"HTTP/1.1 200 OK 5"
    assert len(listener.guard.idle) == 2
    assert await _request(*conns[2]) == b"HTTP/1.1 200 OK 5"  # a third idle one
    assert await _closed_by_server(conns[0][0]) == b""  # the first to go idle is closed
    # the others stay usable, and a kept-alive connection gets a new header deadline
    assert await _request(*conns[1], body=b"again") == b"HTTP/1.1 200 OK 5"
    assert closed(listener.guard)["idle"] == 1
    for _, writer in conns:
        writer.close()


async def test_a_kept_alive_connection_is_not_cut_by_the_header_deadline_while_idle(listen):
    listener = await listen(header_timeout=0.3)
    reader, writer = await listener.connect()
    assert await _request(reader, writer) == b"HTTP/1.1 200 OK 5"
    await asyncio.sleep(0.6)  # idle past the header timeout: keep-alive's (60 s) applies
    assert await _request(reader, writer, b"second") == b"HTTP/1.1 200 OK 6"
    assert closed(listener.guard)["headers"] == 0
    writer.close()


async def test_pipelined_requests_are_answered_in_order(listen):
    listener = await listen(body_timeout=0.3)
    reader, writer = await listener.connect()
    writer.write(REQUEST + REQUEST.replace(b"5\r\n\r\nhello", b"3\r\n\r\nabc"))
    first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert first.startswith(b"HTTP/1.1 200 ")
    assert await reader.readexactly(1) == b"5"
    second = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert second.startswith(b"HTTP/1.1 200 ")
    assert await reader.readexactly(1) == b"3"
    assert closed(listener.guard)["body"] == 0
    writer.close()
