"""Device status and events (services/monitoring.py, services/events.py), on SQLite and
PostgreSQL: never_seen, online, late, offline and back, each move recorded once; events of
Informs, tasks and rollouts."""

from __future__ import annotations

import asyncio
import multiprocessing
from datetime import datetime, timedelta
from typing import Any

import pytest

from acs.db.engine import Database
from acs.services import devices, events, monitoring, rollouts
from acs.simulator import datamodels
from tests.fake_cpe import FakeCpe
from tests.services.harness import ServiceCpe, device_columns, queue, rows, session

DEVICE = "00D09E-IGD-SN0001"
HOUR = 3600
GRACE = 120  # ACS_SILENT_GRACE's default


async def kinds(db: Database, after: int = 0) -> list[tuple[str, str | None, dict[str, Any]]]:
    return [
        (e["type"], e["device_id"], e["details"])
        for e in await events.list_events(db, after=after, limit=1000)
    ]


async def view(db: Database, now: datetime, device: str = DEVICE) -> dict[str, Any]:
    return await devices.get_device(db, device, now=now)


async def by_status(db: Database, status: str, now: datetime) -> list[str]:
    found, _ = await devices.search(db, devices.DeviceFilter(status=status), now=now)
    return [d["id"] for d in found]


async def test_online_late_offline_and_back_each_recorded_once(runtime, clock, db):
    cpe = ServiceCpe(runtime)
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    informed = clock.dt
    assert await kinds(db) == [
        ("device.registered", DEVICE, {}),
        ("device.bootstrapped", DEVICE, {}),
        ("device.booted", DEVICE, {}),
    ]
    row = await device_columns(db, "status", "status_since", "inform_deadline")
    assert tuple(row) == ("online", informed, informed + timedelta(seconds=HOUR + GRACE))
    late_at = informed + timedelta(seconds=HOUR + GRACE)
    offline_at = informed + timedelta(seconds=3 * HOUR + GRACE)

    assert await monitoring.move_overdue(db, late_at - timedelta(seconds=1), runtime.watch) == 0
    # past the deadline, before the job ran: already late in views and searches
    just_after = late_at + timedelta(seconds=1)
    assert (await view(db, just_after))["status"] == "late"
    assert await by_status(db, "late", just_after) == [DEVICE]
    assert await by_status(db, "online", just_after) == []
    assert await monitoring.move_overdue(db, just_after, runtime.watch) == 1
    assert await monitoring.move_overdue(db, just_after, runtime.watch) == 0  # once
    late = await view(db, just_after)
    assert (late["status"], late["status_since"], late["next_deadline"]) == (
        "late",
        just_after,
        offline_at,
    )
    assert late["silent_since"] == just_after  # the deprecated field, for one release
    assert await by_status(db, "silent", just_after) == [DEVICE]  # the old name: late or offline
    assert await by_status(db, "late", just_after) == [DEVICE]

    later = offline_at + timedelta(seconds=5)
    assert await monitoring.move_overdue(db, later, runtime.watch) == 1
    assert (await view(db, later))["status"] == "offline"
    assert (await view(db, later))["next_deadline"] is None
    assert await monitoring.move_overdue(db, later + timedelta(days=30), runtime.watch) == 0
    assert await by_status(db, "offline", later) == [DEVICE]

    clock.now = later.timestamp()
    start = (await events.list_events(db, limit=1000))[-1]["id"]
    await session(cpe, "2 PERIODIC")
    back = await view(db, later)
    assert (back["status"], back["status_since"]) == ("online", later)
    assert await kinds(db, after=start) == [("device.back", DEVICE, {"was": "offline"})]
    stamp = informed.isoformat()
    assert [k for k in await kinds(db) if k[0] in ("device.late", "device.offline")] == [
        ("device.late", DEVICE, {"last_inform": stamp}),
        ("device.offline", DEVICE, {"last_inform": stamp}),
    ]


async def test_a_periodic_inform_of_an_online_device_records_nothing(runtime, clock, db):
    cpe = ServiceCpe(runtime)
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    before = len(await kinds(db))
    clock.now += HOUR
    await session(cpe, "2 PERIODIC")
    assert len(await kinds(db)) == before
    row = await device_columns(db, "status", "inform_deadline")
    assert tuple(row) == ("online", clock.dt + timedelta(seconds=HOUR + GRACE))


async def test_a_new_software_version_is_an_event(runtime, clock, db):
    model = datamodels.gateway("SN0001")
    cpe = ServiceCpe(runtime, FakeCpe(model))
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    old = model.get("InternetGatewayDevice.DeviceInfo.SoftwareVersion")
    model.set("InternetGatewayDevice.DeviceInfo.SoftwareVersion", "9.9.9")
    start = (await events.list_events(db, limit=1000))[-1]["id"]
    await session(cpe, "1 BOOT")
    assert await kinds(db, after=start) == [
        ("device.booted", DEVICE, {}),
        ("device.version_changed", DEVICE, {"from": old, "to": "9.9.9"}),
    ]


async def test_watched_parameters_changes_are_events(make_runtime, clock):
    url = "InternetGatewayDevice.ManagementServer.ConnectionRequestURL"
    rt = await make_runtime(watched_parameters=url)
    rt.cwmp.clock = clock
    model = datamodels.gateway("SN0001")
    cpe = ServiceCpe(rt, FakeCpe(model))
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")  # first seen: no change to tell
    start = (await events.list_events(rt.db, limit=1000))[-1]["id"]
    await session(cpe, "2 PERIODIC")
    assert await kinds(rt.db, after=start) == []  # the same value again
    old = model.get(url)
    model.set(url, "http://198.51.100.9:7547/cr")
    await session(cpe, "2 PERIODIC")
    assert await kinds(rt.db, after=start) == [
        (
            "device.parameters_changed",
            DEVICE,
            {"changes": {url: {"from": old, "to": "http://198.51.100.9:7547/cr"}}},
        )
    ]


async def test_a_registered_device_is_never_seen_until_it_informs(runtime, clock, db):
    registered = await devices.register(
        db,
        oui="00D09E",
        product_class="IGD",
        serial_number="SN0001",
        tags=["lab"],
        mode=None,
        now=clock.dt,
    )
    assert registered["id"] == DEVICE
    assert (registered["status"], registered["first_seen"], registered["last_inform"]) == (
        "never_seen",
        None,
        None,
    )
    assert await by_status(db, "never_seen", clock.dt) == [DEVICE]
    with pytest.raises(devices.DeviceExists):
        await devices.register(
            db,
            oui="00D09E",
            product_class="IGD",
            serial_number="SN0001",
            tags=[],
            mode=None,
            now=clock.dt,
        )
    clock.now += 60
    await session(ServiceCpe(runtime), "0 BOOTSTRAP", "1 BOOT")
    seen = await view(db, clock.dt)
    assert (seen["status"], seen["first_seen"], seen["last_inform"], seen["tags"]) == (
        "online",
        clock.dt,
        clock.dt,
        ["lab"],
    )
    assert [k[0] for k in await kinds(db)] == [
        "device.registered",
        "device.bootstrapped",
        "device.booted",
    ]


async def test_without_a_periodic_interval_a_device_is_unknown(make_runtime, clock):
    rt = await make_runtime(periodic_inform_interval=0)  # the ACS sets none
    rt.cwmp.clock = clock
    model = datamodels.gateway("SN0001")
    model.set("InternetGatewayDevice.ManagementServer.PeriodicInformInterval", 0)  # off
    await session(ServiceCpe(rt, FakeCpe(model)), "0 BOOTSTRAP", "1 BOOT")
    row = await device_columns(rt.db, "status", "inform_deadline")
    assert tuple(row) == ("unknown", None)
    far = clock.dt + timedelta(days=365)
    assert await monitoring.move_overdue(rt.db, far, rt.watch) == 0
    assert (await view(rt.db, far))["status"] == "unknown"


async def test_the_acs_setting_an_interval_watches_an_unknown_device(runtime, clock, db):
    model = datamodels.gateway("SN0001")
    model.set("InternetGatewayDevice.ManagementServer.PeriodicInformInterval", 0)  # off
    await session(ServiceCpe(runtime, FakeCpe(model)), "0 BOOTSTRAP", "1 BOOT")
    # bootstrap provisioning set ACS_PERIODIC_INFORM_INTERVAL in that session
    row = await device_columns(db, "status", "periodic_inform_interval", "inform_deadline")
    assert tuple(row) == ("online", HOUR, clock.dt + timedelta(seconds=HOUR + GRACE))


async def test_task_outcomes_are_events(runtime, clock, db):
    cpe = ServiceCpe(runtime)
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    good, bad = await queue(
        runtime,
        clock,
        {"name": "GetParameterValues", "parameter_names": ["InternetGatewayDevice.DeviceInfo."]},
        {"name": "GetParameterValues", "parameter_names": ["Bad.Name."]},
    )
    start = (await events.list_events(db, limit=1000))[-1]["id"]
    await session(cpe, "2 PERIODIC")
    assert await kinds(db, after=start) == [
        ("task.done", DEVICE, {"task": good, "rpc": "GetParameterValues"}),
        (
            "task.fault",
            DEVICE,
            {
                "task": bad,
                "rpc": "GetParameterValues",
                "code": 9005,
                "fault": "Invalid parameter name: Bad.Name.",
            },
        ),
    ]


async def test_rollout_events(runtime, clock, db):
    cpe = ServiceCpe(runtime)
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    start = (await events.list_events(db, limit=1000))[-1]["id"]
    rollout, _ = await rollouts.create(
        db,
        name="refresh",
        filter={},
        task={"name": "GetRPCMethods"},
        wave_size=1,
        failure_threshold=0.5,
        connection_request=False,
        created_by="ops",
        now=clock.dt,
        task_ttl=HOUR,
    )
    await session(cpe, "2 PERIODIC")
    assert await rollouts.advance(db, clock.dt, HOUR) == []
    assert await rollouts.advance(db, clock.dt, HOUR) == []  # finished once
    rid = rollout["id"]
    task = await _task_of(db, rid)
    assert [(k[0], k[2]) for k in await kinds(db, after=start)] == [
        ("rollout.started", {"rollout": rid, "name": "refresh", "targets": 1, "waves": 1}),
        ("rollout.wave", {"rollout": rid, "name": "refresh", "wave": 1, "waves": 1}),
        ("task.done", {"task": task, "rpc": "GetRPCMethods"}),
        (
            "rollout.finished",
            {"rollout": rid, "name": "refresh", "targets": 1, "done": 1, "failed": 0, "pending": 0},
        ),
    ]


async def _task_of(db: Database, rollout_id: int) -> int:
    [(task,)] = await rows(
        db, "SELECT task_id FROM rollout_targets WHERE rollout_id = :r", r=rollout_id
    )
    return int(task)


async def test_events_page_by_cursor_and_filter(runtime, clock, db):
    for n in range(3):
        await session(ServiceCpe(runtime, FakeCpe(datamodels.gateway(f"SN000{n}"))), "0 BOOTSTRAP")
    everything = await events.list_events(db, limit=1000)
    assert [e["id"] for e in everything] == sorted(e["id"] for e in everything)
    first = await events.list_events(db, limit=2)
    rest = await events.list_events(db, after=first[-1]["id"], limit=1000)
    assert first + rest == everything
    registered = await events.list_events(db, types=["device.registered"])
    assert [e["device_id"] for e in registered] == [f"00D09E-IGD-SN000{n}" for n in range(3)]
    one = await events.list_events(db, device_id="00D09E-IGD-SN0001")
    assert {e["type"] for e in one} == {"device.registered", "device.bootstrapped"}
    with pytest.raises(events.BadEventFilter, match=r"unknown event type 'device\.exploded'"):
        await events.list_events(db, types=["device.exploded"])
    assert await events.prune(db, clock.dt + timedelta(days=29), 30) == 0
    assert await events.prune(db, clock.dt + timedelta(days=31), 30) == len(everything)
    assert await events.list_events(db) == []


def _run_job(url: str, now: str, ready: Any, results: Any) -> None:
    async def run() -> int:
        db = Database(url)
        try:
            await db.probe()  # connected, and the code loaded: then both start together
            ready.wait(timeout=60)
            watch = monitoring.Watch(grace=GRACE, offline_after=3)
            return await monitoring.move_overdue(db, datetime.fromisoformat(now), watch, batch=7)
        finally:
            await db.dispose()

    results.put(asyncio.run(run()))


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_two_processes_move_each_device_once(runtime, clock, db, database_url):
    """Every worker of every node runs the status job: two processes at once over the same
    overdue devices record each move exactly once between them."""
    fleet = 200
    for n in range(fleet):
        await session(ServiceCpe(runtime, FakeCpe(datamodels.gateway(f"SN{n:04d}"))), "1 BOOT")
    start = (await events.list_events(db, limit=1000))[-1]["id"]
    due = (clock.dt + timedelta(seconds=HOUR + GRACE + 1)).isoformat()
    ctx = multiprocessing.get_context("spawn")
    results, ready = ctx.Queue(), ctx.Barrier(2)
    procs = [
        ctx.Process(target=_run_job, args=(database_url, due, ready, results)) for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    moved = [results.get(timeout=5) for _ in procs]
    assert sum(moved) == fleet
    late = await events.list_events(db, after=start, types=["device.late"], limit=1000)
    assert sorted(e["device_id"] for e in late) == sorted(
        f"00D09E-IGD-SN{n:04d}" for n in range(fleet)
    )


async def test_watched_parameters_changed_by_a_getparametervalues_answer(make_runtime, clock):
    path = "InternetGatewayDevice.DeviceInfo.UpTime"
    rt = await make_runtime(watched_parameters=path)
    rt.cwmp.clock = clock
    model = datamodels.gateway("SN0001")
    cpe = ServiceCpe(rt, FakeCpe(model))
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    spec = {"name": "GetParameterValues", "parameter_names": [path]}
    await queue(rt, clock, spec)
    await session(cpe, "2 PERIODIC")  # first known: from nothing to its value
    model.set(path, 777777)
    await queue(rt, clock, spec)
    start = (await events.list_events(rt.db, limit=1000))[-1]["id"]
    await session(cpe, "2 PERIODIC")
    changed = [k for k in await kinds(rt.db, after=start) if k[0] == "device.parameters_changed"]
    [(_, device, details)] = changed
    assert device == DEVICE
    assert details["changes"][path]["to"] == 777777
