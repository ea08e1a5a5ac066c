"""Connection requests to real listeners on 127.0.0.1: HTTP Digest/Basic and UDP."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import socket
from urllib.parse import parse_qs, urlsplit

import pytest

from acs.cwmp import digest
from acs.services import connreq
from acs.simulator import datamodels
from acs.simulator.agent import CpeAgent
from tests.fake_cpe import FakeCpe
from tests.services.harness import ServiceCpe, device_columns

DEVICE = "00D09E-IGD-SN0001"


async def provisioned(runtime, agent: CpeAgent) -> ServiceCpe:
    """The device has had its first session: the ACS set its CR credentials."""
    cpe = ServiceCpe(runtime, FakeCpe(agent.model))
    assert (await cpe.inform("0 BOOTSTRAP")).status == 200
    assert (await cpe.empty()).status == 204
    return cpe


@pytest.fixture
async def agent():
    a = CpeAgent(
        datamodels.gateway("SN0001"),
        "http://127.0.0.1:9/unused",
        username="acs",
        password="cpe-secret",
    )
    await a.start()
    yield a
    await a.stop()


async def test_http_digest_connection_request(runtime, agent):
    await provisioned(runtime, agent)
    result = await runtime.connection_requests.poke(DEVICE)
    assert (result.ok, result.method, result.status_code, result.error) == (True, "http", 200, None)
    assert result.latency_ms is not None and result.latency_ms >= 0
    assert agent.connection_requests == 1
    assert agent.wake_events == ["6 CONNECTION REQUEST"]
    (recorded,) = await device_columns(runtime.db, "cr_result")
    assert recorded["ok"] is True and recorded["status_code"] == 200


async def test_wrong_credentials_are_reported_as_auth_refused(runtime, agent):
    await provisioned(runtime, agent)
    agent.model.set("InternetGatewayDevice.ManagementServer.ConnectionRequestPassword", "changed")
    result = await runtime.connection_requests.poke(DEVICE)
    assert (result.ok, result.status_code) == (False, 401)
    assert result.error == "auth refused: the device rejected our credentials"
    assert agent.connection_requests == 0


async def test_unreachable_device(runtime, agent):
    await provisioned(runtime, agent)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/cr"
    result = await connreq.http_connection_request(url, "u", "p", 2.0)
    assert not result.ok and result.error.startswith("unreachable")


async def test_timeout(runtime):
    async def silent(reader, writer):
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await connreq.http_connection_request(f"http://127.0.0.1:{port}/", "u", "p", 0.3)
    finally:
        server.close()
    assert (result.ok, result.error) == (False, "timeout")


async def test_basic_challenge_is_answered_with_basic():
    seen: list[str] = []

    async def basic_cpe(reader, writer):
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            auth = [
                line
                for line in head.decode().split("\r\n")
                if line.lower().startswith("authorization:")
            ]
            expected = "Basic " + base64.b64encode(b"user:pass").decode()
            if auth and auth[0].split(":", 1)[1].strip() == expected:
                seen.append("ok")
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            else:
                writer.write(
                    b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="cpe"'
                    b"\r\nContent-Length: 0\r\n\r\n"
                )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(basic_cpe, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await connreq.http_connection_request(
            f"http://127.0.0.1:{port}/x", "user", "pass", 2.0
        )
    finally:
        server.close()
    assert (result.ok, result.status_code, seen) == (True, 204, ["ok"])


async def test_no_credentials_known_yet():
    async def challenge(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm="x", '
            b'nonce="n", qop="auth"\r\nContent-Length: 0\r\n\r\n'
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(challenge, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await connreq.http_connection_request(f"http://127.0.0.1:{port}/", None, None, 2)
    finally:
        server.close()
    assert result.error.startswith("auth refused: no connection request credentials")


async def test_device_without_connection_request_url(runtime):
    fake = FakeCpe()
    cpe = ServiceCpe(runtime, fake)
    assert (await cpe.inform("0 BOOTSTRAP")).status == 200
    result = await runtime.connection_requests.poke(DEVICE)
    assert (result.ok, result.method, result.error) == (
        False,
        "none",
        "no way to reach the device (http: the device reported no ConnectionRequestURL; "
        "udp: no connection request credentials known; xmpp: XMPP is off (ACS_XMPP_JID))",
    )
    assert result.attempts == (
        {
            "via": "http",
            "outcome": "skipped",
            "detail": "the device reported no ConnectionRequestURL",
        },
        {"via": "udp", "outcome": "skipped", "detail": "no connection request credentials known"},
        {"via": "xmpp", "outcome": "skipped", "detail": "XMPP is off (ACS_XMPP_JID)"},
    )
    with pytest.raises(connreq.DeviceNotFound):
        await runtime.connection_requests.poke("nope")


async def test_udp_connection_request():
    agent = CpeAgent(
        datamodels.gateway("SN0001"),
        "http://127.0.0.1:9/",
        username="acs",
        password="cpe-secret",
        udp=True,
    )
    await agent.start()
    try:
        agent.model.set("InternetGatewayDevice.ManagementServer.ConnectionRequestUsername", "cr")
        agent.model.set("InternetGatewayDevice.ManagementServer.ConnectionRequestPassword", "pw")
        address = agent.model.get(
            "InternetGatewayDevice.ManagementServer.UDPConnectionRequestAddress"
        )
        result = await connreq.udp_connection_request(str(address), "cr", "pw", repeats=3)
        assert (result.ok, result.method) == (True, "udp")
        for _ in range(50):
            if agent.connection_requests:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # the repeats arrive too, and are recognised as repeats
        assert agent.connection_requests == 1
        bad = await connreq.udp_connection_request(str(address), "cr", "wrong", repeats=1)
        assert bad.ok  # UDP cannot know...
        await asyncio.sleep(0.1)
        assert agent.connection_requests == 1  # ...but the CPE ignored the bad signature
    finally:
        await agent.stop()


async def test_the_operators_order_decides_between_http_and_udp(runtime):
    """HTTP first by default (the URL is reachable on 127.0.0.1); udp,http puts the reported
    UDPConnectionRequestAddress first."""
    agent = CpeAgent(
        datamodels.gateway("SN0001"),
        "http://127.0.0.1:9/",
        username="acs",
        password="cpe-secret",
        udp=True,
    )
    await agent.start()
    try:
        agent.model.parameters[
            "InternetGatewayDevice.ManagementServer.UDPConnectionRequestAddress"
        ].notification = 2  # reported in every Inform, as TR-111 asks
        await provisioned(runtime, agent)
        address = str(
            agent.model.get("InternetGatewayDevice.ManagementServer.UDPConnectionRequestAddress")
        )
        result = await runtime.connection_requests.poke(DEVICE)
        assert (result.ok, result.method, result.reason) == (
            True,
            "http",
            "the device's ConnectionRequestURL",
        )
        assert [a["via"] for a in result.attempts] == ["http", "xmpp"]
        udp_first = connreq.ConnectionRequester(
            runtime.db,
            runtime.box,
            runtime.settings.model_copy(update={"connection_request_order": "udp,http"}),
        )
        result = await udp_first.poke(DEVICE)
        assert (result.ok, result.method, result.target, result.reason) == (
            True,
            "udp",
            address,
            f"UDPConnectionRequestAddress {address} (reported)",
        )
        assert result.attempts == ({"via": "udp", "outcome": "ok", "detail": result.reason},)
        for _ in range(50):
            if agent.connection_requests == 2:
                break
            await asyncio.sleep(0.02)
        assert agent.connection_requests == 2
    finally:
        await agent.stop()


def test_udp_message_format():
    message = connreq.udp_message(
        "10.1.1.1",
        5050,
        "CPE57689",
        "pw",
        ts=1120673700,
        message_id=1234,
        cnonce="XTGRWIPC6D3IPXS3",
    )
    line, host, blank, end = message.decode().split("\r\n")
    assert (host, blank, end) == ("Host: 10.1.1.1:5050", "", "")
    method, url, version = line.split(" ")
    assert (method, version) == ("GET", "HTTP/1.1")
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith("http://10.1.1.1:5050?")
    expected = hmac.new(b"pw", b"11206737001234CPE57689XTGRWIPC6D3IPXS3", hashlib.sha1)
    assert query == {
        "ts": "1120673700",
        "id": "1234",
        "un": "CPE57689",
        "cn": "XTGRWIPC6D3IPXS3",
        "sig": expected.hexdigest().upper(),
    }
    assert connreq.split_address("[::1]:7547") == ("::1", 7547)
    assert connreq.split_address("10.0.0.1") == ("10.0.0.1", 80)


def test_challenge_parsing_and_answers():
    challenges = digest.parse_challenges(
        ['Digest realm="r", nonce="n,1", qop="auth,auth-int", algorithm=MD5, Basic realm="b"']
    )
    assert challenges == [
        ("Digest", {"realm": "r", "nonce": "n,1", "qop": "auth,auth-int", "algorithm": "MD5"}),
        ("Basic", {"realm": "b"}),
    ]
    header = connreq.authorization(challenges, "u", "p", "/cr")
    assert header.startswith('Digest username="u", realm="r", nonce="n,1", uri="/cr"')
    assert "qop=auth, nc=00000001" in header
    assert connreq.authorization([("Basic", {})], "u", "p", "/") == "Basic dTpw"
    assert connreq.authorization([], "u", "p", "/") is None
