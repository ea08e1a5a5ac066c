"""The STUN server of a worker (acs.services.stun) on a real UDP socket of 127.0.0.1, with a
device provisioned through the CWMP service, on both databases: bindings recorded only when
authenticated, keep-alives written at most once a minute, and UDP connection requests sent
from the STUN socket (what a NAT filtering by address and port lets in)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from acs.cwmp import stun
from acs.db import tables
from acs.services import metrics
from acs.services.stun import SEEN_EVERY, StunServer, fresh_for
from tests.fake_cpe import FakeCpe
from tests.services.harness import ServiceCpe, session

GATEWAY = "00D09E-IGD-SN0001"
MS = "InternetGatewayDevice.ManagementServer."


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Client:
    """A CPE's UDP socket: Binding Requests out, answers (and connection requests) in."""

    def __init__(self, server: tuple[str, int]):
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()
        return host, port

    async def ask(self, request: stun.ClientRequest) -> stun.Message:
        self.sock.sendto(request.encode(), self.server)
        data, _ = await asyncio.to_thread(self.sock.recvfrom, 2048)
        return stun.parse(data)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
async def stunned(make_runtime):
    """A runtime whose STUN server listens on 127.0.0.1, and a device provisioned for it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    runtime = await make_runtime(stun_port=sock.getsockname()[1], stun_keepalive=30)
    assert runtime.stun is not None
    clock = Clock()
    runtime.stun.clock = clock
    await runtime.stun.start(sock)
    cpe = ServiceCpe(runtime, FakeCpe())
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    model = cpe.fake.model
    credentials = (str(model.get(MS + "STUNUsername")), str(model.get(MS + "STUNPassword")))
    client = Client(sock.getsockname())
    yield runtime, clock, credentials, client, cpe
    client.close()


def tid() -> bytes:
    return os.urandom(16)


async def binding(runtime) -> Any:
    n = tables.nat_traversal
    async with runtime.db.read() as conn:
        return (
            await conn.execute(
                select(n.c.stun_host, n.c.stun_port, n.c.stun_seen, n.c.stun_changed).where(
                    n.c.device_id == GATEWAY
                )
            )
        ).one()


def count(outcome: str) -> float:
    return metrics.REGISTRY.get_sample_value("acs_stun_requests_total", {"outcome": outcome}) or 0


async def test_a_binding_is_recorded_once_authenticated(stunned, caplog):
    runtime, _clock, (username, password), client, _ = stunned
    caplog.set_level(logging.INFO, logger="acs.stun")
    before = count("changed"), count("unauthorized")
    reply = await client.ask(stun.ClientRequest(tid(), username))
    assert (reply.type, stun.error_code(reply)) == (stun.MessageType.BINDING_ERROR_RESPONSE, 401)
    assert (await binding(runtime)).stun_host is None
    reply = await client.ask(
        stun.ClientRequest(tid(), username, binding_change=True, password=password)
    )
    assert reply.type == stun.MessageType.BINDING_RESPONSE
    assert stun.mapped_address(reply) == client.address
    assert stun.check_integrity(reply, password.encode()) is stun.Style.RFC3489
    row = await binding(runtime)
    assert (row.stun_host, row.stun_port) == client.address
    assert row.stun_seen == row.stun_changed
    assert (count("changed"), count("unauthorized")) == (before[0] + 1, before[1] + 1)
    [line] = [r for r in caplog.records if r.getMessage() == "stun binding"]
    assert line.fields == {  # type: ignore[attr-defined]
        "device": GATEWAY,
        "binding": f"127.0.0.1:{client.address[1]}",
        "was": None,
        "binding_change": True,
    }


async def test_keepalives_cost_no_statement_until_a_minute_has_passed(stunned):
    runtime, clock, (username, password), client, _ = stunned
    await client.ask(stun.ClientRequest(tid(), username, password=password))
    first = await binding(runtime)
    for _ in range(3):
        reply = await client.ask(stun.ClientRequest(tid(), username))  # no integrity needed
        assert stun.mapped_address(reply) == client.address
    assert runtime.stun._seen == {}
    assert await runtime.stun.flush(datetime.now(UTC)) == 0
    clock.now += SEEN_EVERY
    await client.ask(stun.ClientRequest(tid(), username))
    later = datetime.now(UTC)
    assert await runtime.stun.flush(later) == 1
    row = await binding(runtime)
    assert row.stun_seen == later.replace(microsecond=row.stun_seen.microsecond)
    assert row.stun_changed == first.stun_changed


async def test_a_moved_binding_must_authenticate_and_a_wrong_password_records_nothing(stunned):
    runtime, _clock, (username, password), client, _ = stunned
    await client.ask(stun.ClientRequest(tid(), username, password=password))
    moved = Client(client.server)
    try:
        reply = await moved.ask(stun.ClientRequest(tid(), username))
        assert stun.error_code(reply) == 401
        reply = await moved.ask(stun.ClientRequest(tid(), username, password="guess"))
        assert stun.error_code(reply) == 431
        assert (await binding(runtime)).stun_port == client.address[1]
        reply = await moved.ask(stun.ClientRequest(tid(), username, password=password))
        assert reply.type == stun.MessageType.BINDING_RESPONSE
        assert (await binding(runtime)).stun_port == moved.address[1]
    finally:
        moved.close()


async def test_unknown_usernames_and_garbage(stunned):
    runtime, _clock, _creds, client, _ = stunned
    reply = await client.ask(stun.ClientRequest(tid(), "nobody-knows"))
    assert stun.mapped_address(reply) == client.address
    before = count("malformed")
    client.sock.sendto(b"GET / HTTP/1.1\r\n\r\n", client.server)
    reply = await client.ask(stun.ClientRequest(tid()))  # still answering
    assert reply.type == stun.MessageType.BINDING_RESPONSE
    assert count("malformed") == before + 1
    assert (await binding(runtime)).stun_host is None


async def test_the_connection_request_goes_from_the_stun_socket_to_the_binding(stunned):
    runtime, _clock, (username, password), client, cpe = stunned
    await client.ask(stun.ClientRequest(tid(), username, password=password))
    # the device's ConnectionRequestURL is on a private address it does not inform from:
    # behind a NAT, so HTTP is tried only after UDP
    cpe.fake.model.set(MS + "ConnectionRequestURL", "http://192.168.1.2:7547/cr", writable=False)
    await session(cpe, "2 PERIODIC")
    result = await runtime.connection_requests.poke(GATEWAY)
    host, port = client.address
    assert (result.ok, result.method, result.target) == (True, "udp", f"{host}:{port}")
    assert result.reason.startswith(f"STUN binding {host}:{port} seen ")
    assert result.attempts[0] == {"via": "udp", "outcome": "ok", "detail": result.reason}
    assert result.attempts[1:] == (
        {"via": "xmpp", "outcome": "skipped", "detail": "XMPP is off (ACS_XMPP_JID)"},
    )
    data, source = await asyncio.to_thread(client.sock.recvfrom, 2048)
    assert source == client.server  # from the STUN server's own address and port
    line = data.decode().split("\r\n")[0]
    query = {k: v[0] for k, v in parse_qs(urlsplit(line.split(" ")[1]).query).items()}
    cr_username = cpe.fake.model.get(MS + "ConnectionRequestUsername")
    assert query["un"] == cr_username


async def test_a_stale_binding_is_not_used(stunned):
    runtime, _clock, (username, password), client, _cpe = stunned
    await client.ask(stun.ClientRequest(tid(), username, password=password))
    old = datetime.now(UTC) - fresh_for(30) - fresh_for(0)
    n = tables.nat_traversal
    async with runtime.db.write() as conn:
        await conn.execute(n.update().values(stun_seen=old))
    result = await runtime.connection_requests.poke(GATEWAY)
    # the gateway's URL (empty in the bundled model) is not there: nothing else to try
    assert result.method == "none"
    udp = next(a for a in result.attempts if a["via"] == "udp")
    assert udp["outcome"] == "skipped"
    assert udp["detail"].startswith(
        f"the STUN binding 127.0.0.1:{client.address[1]} was last seen "
    )
    assert udp["detail"].endswith("(stale after 125 s)")


def test_fresh_for():
    assert fresh_for(30).total_seconds() == 2 * 30 + 60 + 5


async def test_a_server_that_is_not_listening_refuses_to_send(make_runtime):
    runtime = await make_runtime(stun_port=3478)
    with pytest.raises(OSError, match="not listening"):
        runtime.stun.send(b"x", "127.0.0.1", 9)
    assert isinstance(runtime.stun, StunServer)
