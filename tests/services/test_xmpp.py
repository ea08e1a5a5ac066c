"""The ACS's XMPP session (acs.services.xmpp) against a real Prosody, with a TR-181 device of
the simulator signing in with the account the ACS made for it (XEP-0133), on both databases:
connection requests over the session, handed from another worker through the database,
refused credentials, a server that goes away and comes back, a certificate not trusted."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from acs.db import tables
from acs.services import connreq, metrics
from acs.simulator import datamodels
from acs.simulator.agent import CpeAgent
from acs.simulator.nat import NatClients
from tests.fake_cpe import FakeCpe
from tests.prosody import Prosody, require_prosody
from tests.services.harness import ServiceCpe, session

PHONE = "0C383E-X6-0c383e000006"
PMS = "Device.ManagementServer."


async def until(check: Callable[[], Awaitable[Any]], seconds: float = 20, what: str = "") -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {seconds} s: {what}")


@pytest.fixture
def prosody():
    require_prosody()
    server = Prosody("acs.test", admins=["acs@acs.test"])
    server.register("acs", "acs-password")
    server.start()
    yield server
    server.close()


@pytest.fixture
async def xmpp_runtime(make_runtime, prosody):
    """A runtime whose worker holds the XMPP session (signed in), making devices' accounts."""
    runtime = await make_runtime(
        xmpp_jid="acs@acs.test",
        xmpp_password="acs-password",
        xmpp_server=prosody.server,
        xmpp_ca_file=str(prosody.cert),
        xmpp_cpe_domain="acs.test",
    )
    task = asyncio.create_task(runtime.xmpp.run())

    async def connected() -> bool:
        return (await runtime.xmpp.health()).get("state") == "connected"

    await until(connected, what="the ACS's XMPP session")
    yield runtime
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.fixture
async def phone(xmpp_runtime, prosody):
    """A phone provisioned with an XMPP account, signed in, its JID reported to the ACS."""
    runtime = xmpp_runtime
    agent = CpeAgent(
        datamodels.phone("0c:38:3e:00:00:06"),
        "http://127.0.0.1:9/unused",
        username="acs",
        password="cpe-secret",
    )
    await agent.start()
    cpe = ServiceCpe(runtime, FakeCpe(agent.model))
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    n = tables.nat_traversal

    async def account() -> str | None:
        async with runtime.db.read() as conn:
            return (
                await conn.execute(select(n.c.xmpp_account).where(n.c.device_id == PHONE))
            ).scalar_one_or_none() == "created"

    await until(account, what="the device's account made")
    agent.nat = NatClients(
        agent, xmpp_on=True, xmpp_server=("127.0.0.1", prosody.port), xmpp_ca=prosody.cert
    )
    await agent.nat.update()
    assert agent.nat.xmpp is not None
    await asyncio.wait_for(agent.nat.xmpp.online.wait(), 20)
    jid = agent.model.get(PMS + "ConnReqJabberID")
    assert jid == "0c383e-x6-0c383e000006@acs.test/cwmp"
    # active notification: the device says so in a 4 VALUE CHANGE session
    assert agent.take_wake_events() == ("4 VALUE CHANGE",)
    await session(cpe)
    yield agent, cpe
    await agent.stop()


def xmpp_first(runtime) -> connreq.ConnectionRequester:
    settings = runtime.settings.model_copy(update={"connection_request_order": "xmpp,http"})
    return connreq.ConnectionRequester(runtime.db, runtime.box, settings, xmpp=runtime.xmpp)


async def test_a_connection_request_over_xmpp(xmpp_runtime, phone):
    agent, _ = phone
    before = metrics.REGISTRY.get_sample_value(
        "acs_connection_requests_total", {"via": "xmpp", "outcome": "ok"}
    )
    result = await xmpp_first(xmpp_runtime).poke(PHONE)
    jid = "0c383e-x6-0c383e000006@acs.test/cwmp"
    assert (result.ok, result.method, result.target, result.error) == (True, "xmpp", jid, None)
    assert result.reason == f"ConnReqJabberID {jid}"
    assert agent.connection_requests == 1
    assert agent.take_wake_events() == ("6 CONNECTION REQUEST",)
    after = metrics.REGISTRY.get_sample_value(
        "acs_connection_requests_total", {"via": "xmpp", "outcome": "ok"}
    )
    assert after == (before or 0) + 1


async def test_another_worker_hands_the_request_to_the_holder(xmpp_runtime, phone, make_runtime):
    agent, _ = phone
    other = await make_runtime(
        **{
            k: getattr(xmpp_runtime.settings, k)
            for k in ("xmpp_jid", "xmpp_password", "xmpp_server", "xmpp_ca_file")
        }
    )
    assert other.xmpp is not None and other.xmpp.link is None  # never held the session
    result = await xmpp_first(other).poke(PHONE)
    assert (result.ok, result.method) == (True, "xmpp")
    assert agent.connection_requests == 1
    r = tables.xmpp_requests
    async with other.db.read() as conn:
        kinds = (await conn.execute(select(r.c.kind, r.c.taken_by, r.c.result))).all()
    handed = [k for k in kinds if k.kind == "connection_request"]
    assert len(handed) == 1
    assert handed[0].taken_by == xmpp_runtime.xmpp.holder
    assert handed[0].result["ok"] is True


async def test_refused_credentials_are_the_devices_answer(xmpp_runtime, phone):
    agent, _ = phone
    agent.model.set(PMS + "ConnectionRequestPassword", "changed")
    result = await xmpp_first(xmpp_runtime).poke(PHONE)
    assert (result.ok, result.method, result.error) == (False, "xmpp", "not-authorized")
    # the device answered: HTTP is not tried after it
    assert [a["via"] for a in result.attempts if a["outcome"] != "skipped"] == ["xmpp"]
    assert agent.connection_requests == 0


async def test_a_device_offline_gives_way_to_the_next_path(xmpp_runtime, phone):
    agent, _ = phone
    await agent.nat.close()
    agent.nat = None
    result = await xmpp_first(xmpp_runtime).poke(PHONE)
    xmpp = result.attempts[0]
    assert (xmpp["via"], xmpp["outcome"]) == ("xmpp", "failed")
    assert xmpp["detail"].startswith("service-unavailable")
    # then HTTP, to the agent's own listener: it got there
    assert (result.ok, result.method) == (True, "http")


async def test_the_session_comes_back_after_the_server_did(xmpp_runtime, prosody, make_runtime):
    other = await make_runtime(
        xmpp_jid="acs@acs.test", xmpp_password="acs-password", xmpp_server=prosody.server
    )
    prosody.stop()

    async def down() -> dict[str, Any] | None:
        health = await xmpp_runtime.xmpp.health()
        return health if health["state"] in ("disconnected", "connecting") else None

    health = await until(down, what="the session seen lost")
    assert health["holder"] == xmpp_runtime.xmpp.holder
    result = await other.xmpp.connection_request("x", "d@acs.test/cwmp", "u", "p", 2)
    assert not result.ok and result.error.startswith("unreachable: the ACS's XMPP session is down")
    prosody.start()

    async def back() -> bool:
        return (await xmpp_runtime.xmpp.health())["state"] == "connected"

    await until(back, seconds=30, what="the session back")


async def test_an_untrusted_certificate_is_no_session(make_runtime, prosody, tmp_path, caplog):
    runtime = await make_runtime(
        xmpp_jid="acs@acs.test", xmpp_password="acs-password", xmpp_server=prosody.server
    )  # the system's CAs: the test's self-signed certificate is not among them
    task = asyncio.create_task(runtime.xmpp.run())
    try:

        async def failed() -> dict[str, Any] | None:
            health = await runtime.xmpp.health()
            return health if health.get("error") else None

        health = await until(failed, what="the session refused")
        assert health["state"] in ("disconnected", "connecting")
        assert health["error"] == (
            "the server's certificate is not trusted: self-signed certificate"
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
