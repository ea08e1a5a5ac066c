"""The fleet against a scripted ACS (tests/simulator/fake_acs.py): the interval the ACS sets,
the state that survives a restart, stopping."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

from acs.cwmp import xsd
from acs.simulator.fleet import Fleet, FleetConfig
from acs.simulator.rawhttp import Authenticator, Connection
from acs.simulator.state import load
from tests.simulator.fake_acs import FakeAcs, set_values

SERIAL = "SIM00000000"
KEY = "00D09E-IGD-SIM00000000"
MS = "InternetGatewayDevice.ManagementServer."


def _config(url: str, **overrides: object) -> FleetConfig:
    settings: dict[str, object] = {
        "devices": 1,
        "auth": "none",
        "ramp": 0,
        "duration": None,
        "interval": 3600,
        **overrides,
    }
    return FleetConfig(acs_url=url, **settings)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def _running(config: FleetConfig) -> AsyncIterator[tuple[Fleet, asyncio.Task[dict]]]:
    fleet = Fleet(config)
    await fleet.start()
    run = asyncio.create_task(fleet.run())
    try:
        yield fleet, run
    finally:
        fleet.request_stop()
        await asyncio.wait_for(run, 10)
        await fleet.stop()


async def _eventually(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.02)


async def _connection_request(url: str, username: str, password: str) -> int:
    """What an ACS does (TR-069 3.2.2): a GET of the ConnectionRequestURL, with Digest."""
    conn = Connection(url, timeout=5)
    try:
        response = await conn.request(
            "GET", path=urlsplit(url).path, auth=Authenticator(username, password)
        )
    finally:
        await conn.close()
    return response.status


async def test_devices_follow_the_interval_the_acs_sets():
    async with FakeAcs() as acs:
        acs.queue(SERIAL, set_values((MS + "PeriodicInformInterval", 1, xsd.UNSIGNED_INT)))
        config = _config(acs.url, interval=3600, interval_forced=False)
        async with _running(config) as (fleet, _):
            # on 3600 s it would not come back for an hour
            await acs.until(lambda: len(acs.informs) >= 2)
        first, second = acs.informs[:2]
    assert (first.events, second.events) == (("0 BOOTSTRAP", "1 BOOT"), ("2 PERIODIC",))
    assert second.at - first.at >= 0.9
    assert fleet.periodic_interval(fleet.agents[0]) == 1.0


async def test_devices_stop_informing_when_the_acs_disables_it():
    async with FakeAcs() as acs:
        acs.queue(SERIAL, set_values((MS + "PeriodicInformEnable", False, xsd.BOOLEAN)))
        async with _running(_config(acs.url, interval_forced=False)) as (fleet, _):
            await _eventually(lambda: fleet.stats.ok == 1)
            assert fleet.periodic_interval(fleet.agents[0]) is None
            # still reachable: a connection request brings a session
            agent = fleet.agents[0]
            url = agent.model.get(MS + "ConnectionRequestURL")
            assert isinstance(url, str)
            assert await _connection_request(url, "", "") == 200
            await acs.until(lambda: len(acs.informs) == 2)
    assert [i.events for i in acs.informs] == [("0 BOOTSTRAP", "1 BOOT"), ("6 CONNECTION REQUEST",)]


async def test_a_forced_interval_wins_over_what_the_acs_sets():
    async with FakeAcs() as acs:
        acs.queue(SERIAL, set_values((MS + "PeriodicInformInterval", 3600, xsd.UNSIGNED_INT)))
        async with _running(_config(acs.url, interval=0.2)) as (fleet, _):
            await acs.until(lambda: len(acs.informs) >= 3)
    assert [i.events for i in acs.informs[:3]] == [
        ("0 BOOTSTRAP", "1 BOOT"),
        ("2 PERIODIC",),
        ("2 PERIODIC",),
    ]
    assert fleet.agents[0].model.get(MS + "PeriodicInformInterval") == 3600  # the ACS's value


async def test_a_restarted_fleet_keeps_its_connection_request_credentials(tmp_path: Path):
    state = tmp_path / "fleet.json"
    async with FakeAcs() as acs:
        acs.queue(
            SERIAL,
            set_values(
                (MS + "ConnectionRequestUsername", "cr-user", xsd.STRING),
                (MS + "ConnectionRequestPassword", "cr-pass", xsd.STRING),
                (MS + "PeriodicInformInterval", 900, xsd.UNSIGNED_INT),
            ),
        )
        first = Fleet(_config(acs.url, sessions=1, state=str(state), interval_forced=False))
        await first.start()
        assert (await first.run())["sessions_ok"] == 1
        await first.stop()  # writes the state
        old_url = first.agents[0].model.get(MS + "ConnectionRequestURL")
    saved = load(state)[KEY]["parameters"]
    assert saved[MS + "ConnectionRequestPassword"]["value"] == "cr-pass"

    restarted = Fleet(
        _config("http://127.0.0.1:9/acs", state=str(state), bootstrap=False, boot=False)
    )
    await restarted.start()
    try:
        agent = restarted.agents[0]
        url = agent.model.get(MS + "ConnectionRequestURL")
        assert isinstance(url, str) and url != old_url  # this run's listener
        assert await _connection_request(url, "cr-user", "cr-pass") == 200
        assert await _connection_request(url, "cr-user", "wrong") == 401
        assert agent.connection_requests == 1
        # kept too: the interval the ACS set, not the fleet's starting one
        assert agent.model.get(MS + "PeriodicInformInterval") == 900
        assert restarted.periodic_interval(agent) == 3600  # --interval forces, though
    finally:
        await restarted.stop()

    forgetful = Fleet(_config("http://127.0.0.1:9/acs", bootstrap=False, boot=False))
    await forgetful.start()
    try:
        url = forgetful.agents[0].model.get(MS + "ConnectionRequestURL")
        assert isinstance(url, str)
        assert await _connection_request(url, "cr-user", "cr-pass") == 401
    finally:
        await forgetful.stop()


async def test_the_state_file_is_written_while_the_fleet_runs(tmp_path: Path):
    state = tmp_path / "fleet.json"

    def written() -> bool:
        kept = load(state).get(KEY, {}).get("parameters", {})
        return kept.get(MS + "ConnectionRequestUsername", {}).get("value") == "cr-user"

    async with FakeAcs() as acs:
        acs.queue(SERIAL, set_values((MS + "ConnectionRequestUsername", "cr-user", xsd.STRING)))
        config = _config(acs.url, state=str(state), state_every=0.05)
        async with _running(config) as (_, run):
            await _eventually(written)
            assert not run.done()


async def test_a_stop_ends_the_wait_for_the_next_inform_at_once():
    async with FakeAcs() as acs:
        fleet = Fleet(_config(acs.url, interval=3600))
        await fleet.start()
        run = asyncio.create_task(fleet.run())
        await _eventually(lambda: fleet.stats.ok == 1)
        fleet.request_stop()
        summary = await asyncio.wait_for(run, 5)
        await fleet.stop()
    assert (summary["sessions_ok"], summary["sessions_failed"]) == (1, 0)


async def test_a_stop_during_the_ramp_starts_no_session():
    async with FakeAcs() as acs:
        fleet = Fleet(_config(acs.url, devices=3, ramp=3600))
        await fleet.start()
        run = asyncio.create_task(fleet.run())
        await asyncio.sleep(0)  # the devices begin their ramp
        fleet.request_stop()
        summary = await asyncio.wait_for(run, 5)
        await fleet.stop()
    assert (summary["sessions_ok"], summary["sessions_failed"], acs.informs) == (0, 0, [])


async def test_the_duration_ends_a_long_wait():
    async with FakeAcs() as acs:
        fleet = Fleet(_config(acs.url, interval=3600, duration=0.3))
        await fleet.start()
        summary = await asyncio.wait_for(fleet.run(), 5)
        await fleet.stop()
    assert (summary["sessions_ok"], summary["sessions_failed"]) == (1, 0)


async def test_abort_cancels_sessions_in_flight():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers; returns when the client goes
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    fleet = Fleet(_config(f"http://127.0.0.1:{port}/acs", devices=2, timeout=60))
    await fleet.start()
    run = asyncio.create_task(fleet.run())
    try:
        await _eventually(lambda: fleet.stats.in_flight == 2)
        fleet.abort()
        summary = await asyncio.wait_for(run, 5)
    finally:
        await fleet.stop()
        server.close()
        await server.wait_closed()
    assert (summary["sessions_ok"], summary["sessions_failed"]) == (0, 0)
    assert fleet.stats.in_flight == 0
