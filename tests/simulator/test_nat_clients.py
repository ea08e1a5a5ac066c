"""The simulated CPE's STUN client (acs.simulator.nat) against the ACS's STUN server on
127.0.0.1: provisioned by the ACS, it binds (401, then signed), reports its address with a
value change, and takes the UDP connection request on the same socket. (Behind a real NAT:
tests/e2e/test_nat.py.)"""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime

from acs.simulator import datamodels
from acs.simulator.agent import CpeAgent
from acs.simulator.nat import NatClients, local_address_towards
from tests.fake_cpe import FakeCpe
from tests.services.harness import ServiceCpe, session

MS = "InternetGatewayDevice.ManagementServer."


async def test_a_provisioned_device_binds_reports_and_takes_a_udp_connection_request(
    make_runtime,
):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    runtime = await make_runtime(
        stun_port=sock.getsockname()[1],
        stun_server_address="127.0.0.1",
        stun_keepalive=1,
        connection_request_order="udp,http",
    )
    await runtime.stun.start(sock)
    agent = CpeAgent(
        datamodels.gateway("SN0001"), "http://127.0.0.1:9/", username="acs", password="cpe-secret"
    )
    await agent.start()
    try:
        cpe = ServiceCpe(runtime, FakeCpe(agent.model))
        await session(cpe, "0 BOOTSTRAP", "1 BOOT")
        agent.nat = NatClients(agent, stun_on=True)
        await agent.nat.update()
        client = agent.nat.stun
        assert client is not None
        deadline = time.monotonic() + 10
        while not agent.model.get(MS + "UDPConnectionRequestAddress"):
            assert time.monotonic() < deadline, "no binding"
            await asyncio.sleep(0.02)
        local = client.transport.get_extra_info("sockname")
        assert agent.model.get(MS + "UDPConnectionRequestAddress") == f"127.0.0.1:{local[1]}"
        assert agent.model.get(MS + "NATDetected") is False
        assert client.requests == 2  # refused without MESSAGE-INTEGRITY, then signed
        # the ACS asked for active notification: the device says so in a session
        assert agent.take_wake_events() == ("4 VALUE CHANGE",)
        await session(cpe)
        view = await runtime.connection_requests.nat_view("00D09E-IGD-SN0001", datetime.now(UTC))
        assert view["stun_binding"] == f"127.0.0.1:{local[1]}" and view["stun_fresh"]
        result = await runtime.connection_requests.poke("00D09E-IGD-SN0001")
        assert (result.ok, result.method) == (True, "udp")
        deadline = time.monotonic() + 5
        while agent.connection_requests == 0:
            assert time.monotonic() < deadline, "the UDP connection request did not arrive"
            await asyncio.sleep(0.02)
        assert agent.take_wake_events() == ("6 CONNECTION REQUEST",)
        # the keep-alive goes on, unsigned: the binding is the one recorded
        sent = client.requests
        while client.requests == sent:
            assert time.monotonic() < deadline + 5
            await asyncio.sleep(0.05)
    finally:
        await agent.stop()


def test_the_listener_is_on_the_interface_toward_the_acs():
    assert local_address_towards("127.0.0.1", 7547) == "127.0.0.1"
    # no route to probe (a broadcast address without SO_BROADCAST): the loopback, without
    # asking DNS (a name that does not resolve can take the resolver's whole timeout)
    assert local_address_towards("255.255.255.255", 7547) == "127.0.0.1"
