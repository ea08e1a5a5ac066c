"""Presets in sessions: convergence, the mark that makes a converged device cost nothing,
failures backed off per preset, loops reported, the default preset, inform storms."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from acs.cwmp import faults, xsd
from acs.cwmp import messages as m
from acs.services import presets
from acs.services.errors import Conflict, NotFound
from acs.simulator import datamodels
from tests.fake_cpe import FakeCpe, device_id
from tests.services.harness import ServiceCpe, counted, device_columns, rows, session

IGD = "InternetGatewayDevice"
NTP = f"{IGD}.Time.NTPServer1"
WLAN = f"{IGD}.LANDevice.1.WLANConfiguration."


async def make(runtime: Any, clock: Any, **spec: Any) -> dict[str, Any]:
    return await runtime.presets.create(
        presets.PresetSpec.model_validate(spec), now=clock.dt, created_by="test"
    )


def sent(answered: list[Any]) -> list[tuple[str, Any]]:
    """What the ACS asked, as (RPC, its names)."""
    out: list[tuple[str, Any]] = []
    for r in answered:
        if isinstance(r, m.SetParameterValues):
            out.append(("SPV", {p.name: p.value for p in r.parameter_list}))
        elif isinstance(r, m.GetParameterValues):
            out.append(("GPV", sorted(r.parameter_names)))
        elif isinstance(r, m.AddObject):
            out.append(("AddObject", r.object_name))
        else:
            out.append((type(r).__name__, None))
    return out


async def test_a_new_device_converges_and_then_costs_nothing(runtime, clock):
    await make(
        runtime,
        clock,
        name="igd-base",
        filter={"product_class": "IGD"},
        desired={
            "parameters": {"Time.NTPServer1": "ntp.example.net"},
            "objects": [{"path": WLAN, "keys": {"SSID": "guest"}, "parameters": {"Channel": 11}}],
            "tags": ["managed"],
            "periodic_inform_interval": 600,
        },
    )
    cpe = ServiceCpe(runtime)
    dev = device_id(cpe.fake)
    first = sent(await session(cpe, "0 BOOTSTRAP", "1 BOOT"))
    spread = presets.spread_time(dev, 600)
    assert first[0][0] == "SPV"  # bootstrap provisioning, the interval of the setting
    assert first[0][1][f"{IGD}.ManagementServer.PeriodicInformInterval"] == 3600
    assert first[1:] == [
        ("GPV", sorted([NTP, WLAN])),  # the ACS knows neither yet: it asks first
        ("AddObject", WLAN),  # no instance has SSID "guest"
        (
            "SPV",  # what differs (bootstrap enabled periodic Informs already)
            {
                NTP: "ntp.example.net",
                f"{IGD}.ManagementServer.PeriodicInformInterval": 600,
                f"{IGD}.ManagementServer.PeriodicInformTime": spread,
                WLAN + "2.SSID": "guest",
                WLAN + "2.Channel": 11,
            },
        ),
    ]
    model = cpe.fake.model
    assert (model.get(NTP), model.get(WLAN + "2.SSID"), model.get(WLAN + "2.Channel")) == (
        "ntp.example.net",
        "guest",
        11,
    )
    tags, mark, interval = await device_columns(
        runtime.db, "tags", "presets_mark", "periodic_inform_interval"
    )
    assert tags == ["managed"] and mark is not None and interval == 600

    # converged: the next Informs queue nothing and run no statement of the presets'
    assert await session(cpe, "2 PERIODIC") == []
    with counted() as statements:
        assert (await cpe.inform("2 PERIODIC")).status == 200
    assert not [s for s in statements if "presets" in s and "meta" not in s]
    converged = len(statements)
    assert (await cpe.empty()).status == 204

    # the same Inform with no preset at all costs the same
    for view in await runtime.presets.list_all():
        await runtime.presets.update(view["name"], {"enabled": False}, now=clock.dt)
    await session(cpe, "2 PERIODIC")  # the new version's catalog is read once
    with counted() as statements:
        assert (await cpe.inform("2 PERIODIC")).status == 200
    assert len(statements) == converged
    assert (await cpe.empty()).status == 204


async def test_changes_of_presets_tree_or_tags_clear_the_mark(runtime, clock):
    await make(
        runtime,
        clock,
        name="ntp",
        filter={"tag": "ntp"},
        desired={"parameters": {"Time.NTPServer1": "ntp1.example.net"}},
    )
    cpe = ServiceCpe(runtime)
    dev = device_id(cpe.fake)
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    assert await session(cpe, "2 PERIODIC") == []  # not tagged: not for it
    from acs.services import devices

    await devices.set_tag(runtime.db, dev, "ntp", present=True)
    assert sent(await session(cpe, "2 PERIODIC")) == [
        ("GPV", [NTP]),
        ("SPV", {NTP: "ntp1.example.net"}),
    ]
    assert await session(cpe, "2 PERIODIC") == []
    await runtime.presets.update(
        "ntp", {"desired": {"parameters": {"Time.NTPServer1": "ntp2.example.net"}}}, now=clock.dt
    )
    assert sent(await session(cpe, "2 PERIODIC")) == [("SPV", {NTP: "ntp2.example.net"})]
    # an operator's task sets it back: the tree changed, the preset sets it again
    from tests.services.harness import queue

    await queue(
        runtime,
        clock,
        {"name": "SetParameterValues", "parameter_values": [{"name": NTP, "value": "x"}]},
        device=dev,
    )
    await session(cpe, "2 PERIODIC")
    assert sent(await session(cpe, "2 PERIODIC")) == [("SPV", {NTP: "ntp2.example.net"})]
    assert await session(cpe, "2 PERIODIC") == []


async def test_a_failing_preset_is_backed_off_alone_and_recorded_on_its_channel(runtime, clock):
    await make(
        runtime,
        clock,
        name="broken",
        weight=1,
        desired={"parameters": {"Time.NTPServer1": "ntp.example.net", "X_Nope.Value": "1"}},
    )
    await make(
        runtime, clock, name="wifi", weight=2, desired={"parameters": {WLAN + "1.Channel": 1}}
    )
    cpe = ServiceCpe(runtime)
    dev = device_id(cpe.fake)
    first = sent(await session(cpe, "0 BOOTSTRAP", "1 BOOT"))
    assert first[1:] == [
        ("GPV", sorted([NTP, f"{IGD}.X_Nope.Value", WLAN + "1.Channel"])),  # faults: 9005
        ("GPV", [WLAN + "1.Channel"]),  # so each path is asked alone
        ("GPV", [NTP]),
        ("GPV", [f"{IGD}.X_Nope.Value"]),  # faults: the device lacks it
        ("SPV", {NTP: "ntp.example.net", f"{IGD}.X_Nope.Value": "1"}),  # faults
        ("SPV", {WLAN + "1.Channel": 1}),  # the other preset goes on
    ]
    assert cpe.fake.model.get(WLAN + "1.Channel") == 1
    [fault] = await rows(runtime.db, "SELECT code, source, detail FROM faults")
    assert (fault.code, fault.source) == (faults.CPE_INVALID_ARGUMENTS, "cpe")
    detail = (
        fault.detail if isinstance(fault.detail, dict) else __import__("json").loads(fault.detail)
    )
    assert (detail["channel"], detail["failures"]) == ("preset:broken", 1)
    [event] = await rows(runtime.db, "SELECT type, device_id FROM events WHERE type LIKE 'preset%'")
    assert tuple(event) == ("preset.fault", dev)
    (state,) = await device_columns(runtime.db, "presets_state")
    preset_id = (await runtime.presets.get("broken"))["id"]
    assert state[str(preset_id)]["failures"] == 1
    # backed off: the next sessions leave it alone, and until its time the device's mark
    # says so (its Informs read neither presets nor the tree)
    assert await session(cpe, "2 PERIODIC") == []
    (mark,) = await device_columns(runtime.db, "presets_mark")
    assert mark is not None and f"{preset_id}@" in mark
    with counted() as statements:
        assert await session(cpe, "2 PERIODIC") == []
    assert not [s for s in statements if "presets" in s and "meta" not in s]
    assert not [s for s in statements if "parameters" in s and s.startswith("SELECT")]
    clock.now += presets.backoff(1) + 1
    assert sent(await session(cpe, "2 PERIODIC"))[-1][0] == "SPV"  # tried again
    (state,) = await device_columns(runtime.db, "presets_state")
    assert state[str(preset_id)]["failures"] == 2


async def test_presets_undoing_each_other_are_reported_not_run_for_ever(runtime, clock):
    tz = f"{IGD}.Time.LocalTimeZoneName"
    await make(
        runtime,
        clock,
        name="to-cet",
        filter={"parameters": {"Time.LocalTimeZoneName": "UTC"}},
        desired={"parameters": {"Time.LocalTimeZoneName": "CET"}},
    )
    await make(
        runtime,
        clock,
        name="to-utc",
        filter={"parameters": {"Time.LocalTimeZoneName": "CET"}},
        desired={"parameters": {"Time.LocalTimeZoneName": "UTC"}},
    )
    cpe = ServiceCpe(runtime)
    dev = device_id(cpe.fake)
    first = sent(await session(cpe, "0 BOOTSTRAP", "1 BOOT"))
    assert first[1:] == [("GPV", [tz]), ("SPV", {tz: "CET"})]  # then to-utc would undo it
    [event] = await rows(
        runtime.db, "SELECT type, device_id, details FROM events WHERE type = 'preset.loop'"
    )
    assert event.device_id == dev
    [fault] = await rows(runtime.db, "SELECT code, source FROM faults")
    assert (fault.code, fault.source) == (faults.ACS_PRESET_LOOP, "acs") == (8899, "acs")
    # both backed off: the next session does not fight again
    assert await session(cpe, "2 PERIODIC") == []


async def test_the_default_preset_can_be_changed_or_switched_off(runtime, clock):
    await runtime.presets.update(
        "bootstrap",
        {"desired": {"connection_request_credentials": True, "periodic_inform_interval": 900}},
        now=clock.dt,
    )
    cpe = ServiceCpe(runtime)
    [spv] = await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    values = {p.name: p.value for p in spv.parameter_list}
    assert values[f"{IGD}.ManagementServer.PeriodicInformInterval"] == 900
    assert values[f"{IGD}.ManagementServer.ConnectionRequestUsername"].startswith("cr-")

    await runtime.presets.update("bootstrap", {"enabled": False}, now=clock.dt)
    other = ServiceCpe(runtime, FakeCpe(datamodels.gateway("SN0002")))
    assert await session(other, "0 BOOTSTRAP", "1 BOOT") == []
    (cr,) = await device_columns_of(runtime, device_id(other.fake), "cr_username")
    assert cr == ""  # tried: its next Informs do not ask again
    assert await session(other, "2 PERIODIC") == []


async def device_columns_of(runtime: Any, dev: str, *names: str) -> Any:
    [row] = await rows(runtime.db, f"SELECT {', '.join(names)} FROM devices WHERE id = :id", id=dev)
    return row


async def test_periodic_inform_time_is_spread_per_device(make_runtime, clock):
    a, b = "00D09E-IGD-SN0001", "00D09E-IGD-SN0002"
    assert presets.spread_time(a, 3600) != presets.spread_time(b, 3600)
    assert presets.spread_time(a, 3600) == presets.spread_time(a, 3600)  # deterministic
    for dev in (a, b):
        offset = xsd.parse_datetime(presets.spread_time(dev, 600)) - presets.SPREAD_EPOCH
        assert 0 <= offset.total_seconds() < 600
    offsets = {presets.spread_time(f"00D09E-IGD-SN{n:04}", 3600) for n in range(1000)}
    assert len(offsets) > 600  # a thousand devices: spread, not bunched

    rt = await make_runtime()
    rt.cwmp.clock = clock
    cpe = ServiceCpe(rt)
    [spv] = await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    values = {p.name: p.value for p in spv.parameter_list}
    assert values[f"{IGD}.ManagementServer.PeriodicInformTime"] == presets.spread_time(a, 3600)
    assert cpe.fake.model.get(f"{IGD}.ManagementServer.PeriodicInformTime") == (
        presets.spread_time(a, 3600)
    )

    # a device without PeriodicInformTime gets the rest all the same
    model = datamodels.gateway("SN0002")
    del model.parameters[f"{IGD}.ManagementServer.PeriodicInformTime"]
    other = ServiceCpe(rt, FakeCpe(model))
    refused, again = await session(other, "0 BOOTSTRAP", "1 BOOT")
    assert f"{IGD}.ManagementServer.PeriodicInformTime" in {p.name for p in refused.parameter_list}
    assert f"{IGD}.ManagementServer.PeriodicInformTime" not in {
        p.name for p in again.parameter_list
    }
    assert model.get(f"{IGD}.ManagementServer.ConnectionRequestUsername")

    off = await make_runtime(spread_inform_time=False)
    off.cwmp.clock = clock
    third = ServiceCpe(off, FakeCpe(datamodels.gateway("SN0003")))
    [spv] = await session(third, "0 BOOTSTRAP", "1 BOOT")
    assert f"{IGD}.ManagementServer.PeriodicInformTime" not in {p.name for p in spv.parameter_list}


async def test_events_and_schedule_windows_choose_the_sessions(make_runtime, clock):
    rt = await make_runtime(presets_timezone="Europe/Paris")
    rt.cwmp.clock = clock
    await make(
        rt,
        clock,
        name="at-boot",
        events=["1 BOOT"],
        desired={"parameters": {"Time.NTPServer1": "boot.example.net"}},
    )
    # clock.dt is 2027-01-15 08:00 UTC, a Friday: 09:00 in Paris
    assert clock.dt == datetime(2027, 1, 15, 8, 0, tzinfo=UTC)
    await make(
        rt,
        clock,
        name="nightly",
        schedule="02:00-04:00 weekdays",
        desired={"parameters": {WLAN + "1.Channel": 13}},
    )
    cpe = ServiceCpe(rt)
    await session(cpe, "2 PERIODIC")
    assert cpe.fake.model.get(NTP) == "pool.ntp.org"  # not a boot
    assert sent(await session(cpe, "1 BOOT"))[-1] == ("SPV", {NTP: "boot.example.net"})
    assert cpe.fake.model.get(WLAN + "1.Channel") == 6  # outside its window
    assert await session(cpe, "2 PERIODIC") == []  # converged, the window waits
    clock.now += 17 * 3600 + 1800  # Saturday 02:30 in Paris: not a weekday
    assert await session(cpe, "2 PERIODIC") == []
    clock.now += 2 * 86400  # Monday 02:30
    assert sent(await session(cpe, "2 PERIODIC")) == [
        ("GPV", [WLAN + "1.Channel"]),
        ("SPV", {WLAN + "1.Channel": 13}),
    ]


def test_windows_parse_and_contain():
    w = presets.Window.parse("22:00-02:00 mon-fri")
    friday_late = datetime(2027, 1, 15, 23, 0)
    saturday_early = datetime(2027, 1, 16, 1, 0)
    saturday_late = datetime(2027, 1, 16, 23, 0)
    assert w.contains(friday_late) and w.contains(saturday_early)
    assert not w.contains(saturday_late)
    assert presets.Window.parse("02:00-04:00").days == frozenset(range(7))
    assert presets.Window.parse("02:00-04:00 sat,sun").days == frozenset({5, 6})
    assert presets.Window.parse("02:00-04:00 local, weekdays").days == frozenset(range(5))
    assert presets.Window.parse("02:00-04:00 Saturday-monday").days == frozenset({5, 6, 0})
    for bad in ("2-4", "25:00-26:00", "02:00-02:00", "02:00-04:00 someday", "", "  ",
                "02:00-04:00 monkey", "02:00-04:00 localx"):  # fmt: skip
        with pytest.raises(ValueError):
            presets.Window.parse(bad)
    # through the API's model: a refusal, not an exception of another kind (a 500)
    with pytest.raises(ValueError, match="an empty window"):
        presets.PresetSpec.model_validate({"name": "x", "schedule": " "})


PHONE_MAC = "0c:38:3e:12:34:56"


async def test_firmware_is_a_download_task_once_and_a_failed_one_backs_the_preset_off(
    runtime, clock
):
    from tests.services.test_provisioning_tr069 import store

    await store(runtime, "x6-2.5.0.z", b"image", version="2.5.0")
    await make(
        runtime,
        clock,
        name="x6-fw",
        filter={"product_class": "X6"},
        desired={"firmware": "x6-2.5.0.z", "phone_profile": "office"},
    )
    phone = ServiceCpe(runtime, FakeCpe(datamodels.phone(PHONE_MAC)))
    answered = await session(phone, "0 BOOTSTRAP", "1 BOOT")
    # bootstrap's SetParameterValues, then the queued Download runs in the same session
    assert [type(r).__name__ for r in answered] == ["SetParameterValues", "Download"]
    [task] = await rows(runtime.db, "SELECT id, status, created_by FROM tasks")
    assert (task.status, task.created_by) == ("awaiting_transfer", "preset:x6-fw")
    [phone_row] = await rows(runtime.db, "SELECT mac, profile FROM phones")
    assert tuple(phone_row) == ("0c383e123456", "office")
    # while it is under way, no second Download
    assert await session(phone, "2 PERIODIC") == []
    # the phone boots into its old version: the task faults, the preset is backed off
    download = answered[-1]
    tc = m.TransferComplete(download.command_key, m.FaultStruct(0, ""))
    await session(
        phone, "1 BOOT", "7 TRANSFER COMPLETE", "M Download", before_empty=[phone.fake.request(tc)]
    )
    assert (await rows(runtime.db, "SELECT status FROM tasks"))[0].status == "fault"
    assert await session(phone, "2 PERIODIC") == []
    [event] = await rows(runtime.db, "SELECT type FROM events WHERE type LIKE 'preset.%'")
    assert event.type == "preset.fault"
    assert await count_tasks(runtime) == 1  # not queued again while backed off
    clock.now += presets.backoff(1) + 1
    assert [type(r).__name__ for r in await session(phone, "2 PERIODIC")] == ["Download"]
    assert await count_tasks(runtime) == 2


async def count_tasks(runtime: Any) -> int:
    [(n,)] = await rows(runtime.db, "SELECT count(*) FROM tasks")
    return int(n)


async def test_what_the_device_turns_out_not_to_have_does_not_hold_up_the_rest(runtime, clock):
    await make(
        runtime,
        clock,
        name="partly",
        desired={"objects": [{"path": "X_Nope.Table.", "keys": {"Name": "a"}}], "tags": ["t"]},
    )
    cpe = ServiceCpe(runtime)
    first = sent(await session(cpe, "0 BOOTSTRAP", "1 BOOT"))
    assert first[1:] == [("GPV", [f"{IGD}.X_Nope.Table."])]  # faults: no such table
    (tags, mark) = await device_columns(runtime.db, "tags", "presets_mark")
    assert tags == ["t"] and mark is not None  # as converged as this device can be
    assert await session(cpe, "2 PERIODIC") == []


async def test_a_desired_value_of_the_wrong_type_is_refused_and_one_kept_from_before_is_a_fault(
    runtime, clock
):
    wifi = {"path": WLAN, "keys": {"SSID": "guest"}, "parameters": {"Channel": "auto"}}
    with pytest.raises(presets.BadPreset, match="'auto' is not an integer"):
        await make(runtime, clock, name="wifi", desired={"objects": [wifi]})
    # one stored before that check (an upgrade): the sessions go on, the preset is a fault
    good = {**wifi, "parameters": {"Channel": 6}}
    await make(runtime, clock, name="wifi", weight=1, desired={"objects": [good]})
    await make(runtime, clock, name="ntp", weight=2, desired={"parameters": {NTP: "ntp.example"}})
    async with runtime.db.write() as conn:
        await conn.execute(
            text("UPDATE presets SET desired = :d WHERE name = 'wifi'"),
            {"d": json.dumps({"objects": [wifi]})},
        )
    cpe = ServiceCpe(runtime)
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    assert cpe.fake.model.get(NTP) == "ntp.example"  # the other preset went on
    [fault] = await rows(runtime.db, "SELECT code, source, string FROM faults")
    assert (fault.code, fault.source) == (faults.ACS_INVALID_ARGUMENTS, "acs")
    assert "'auto' is not an integer" in fault.string
    assert await session(cpe, "2 PERIODIC") == []  # backed off: no fault each Inform


async def test_a_secret_is_set_again_after_a_factory_reset(runtime, clock):
    """The ACS cannot read a secret back: it keeps a digest of what it set, and a 0 BOOTSTRAP
    (a reset device) forgets those, so the secret is set again."""
    passphrase = f"{WLAN}1.KeyPassphrase"
    await make(runtime, clock, name="wpa", desired={"parameters": {passphrase: "s3cret-pass"}})
    cpe = ServiceCpe(runtime)
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    assert cpe.fake.model.get(passphrase) == "s3cret-pass"
    assert ("SPV", {passphrase: "s3cret-pass"}) not in sent(await session(cpe, "1 BOOT"))
    cpe.fake.model.set(passphrase, "")  # a factory reset
    assert ("SPV", {passphrase: "s3cret-pass"}) in sent(await session(cpe, "0 BOOTSTRAP"))
    assert cpe.fake.model.get(passphrase) == "s3cret-pass"


async def test_too_many_waiting_presets_to_name_in_the_mark_leave_no_mark(runtime, clock):
    """The mark names the presets left waiting (matching, acting on other events); when they
    do not fit its column the device is simply evaluated at every Inform (PostgreSQL refused
    the write of a longer one, and with it every session of the device)."""
    for i in range(80):
        await make(runtime, clock, name=f"boot-{i}", events=["1 BOOT"],
                   desired={"parameters": {NTP: f"ntp{i}.example"}})  # fmt: skip
    cpe = ServiceCpe(runtime)
    await session(cpe, "0 BOOTSTRAP")
    await session(cpe, "2 PERIODIC")  # none acts: all 80 wait
    (mark,) = await device_columns(runtime.db, "presets_mark")
    assert mark is None
    assert ("SPV", {NTP: "ntp79.example"}) in sent(await session(cpe, "1 BOOT"))


async def test_changes_at_once_are_all_kept_and_a_name_taken_twice_is_a_conflict(runtime, clock):
    """Two updates of one preset at once apply one after the other (the row is read locked
    where it is written), and two creates of one name at once make one preset and one 409."""
    await make(runtime, clock, name="ntp", desired={"parameters": {NTP: "a"}})
    await asyncio.gather(
        runtime.presets.update("ntp", {"weight": 7}, now=clock.dt),
        runtime.presets.update("ntp", {"enabled": False}, now=clock.dt),
    )
    view = await runtime.presets.get("ntp")
    assert (view["weight"], view["enabled"], view["version"]) == (7, False, 3)
    spec = presets.PresetSpec.model_validate({"name": "twice", "desired": {}})
    outcomes = await asyncio.gather(
        *(runtime.presets.create(spec, now=clock.dt, created_by="test") for _ in range(2)),
        return_exceptions=True,
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "dict"]
    with pytest.raises(Conflict, match="a preset named 'ntp' exists"):
        await runtime.presets.update("twice", {"name": "ntp"}, now=clock.dt)
    with pytest.raises(NotFound):
        await runtime.presets.update("nobody", {"weight": 1}, now=clock.dt)


async def test_a_filter_path_the_device_lacks_does_not_hide_the_other_presets(runtime, clock):
    """A refresh of several filter paths that faults (one the device lacks: 9005 for all)
    asks each path alone: the others' values are learnt and their presets act."""
    tz = f"{IGD}.Time.LocalTimeZoneName"
    missing = f"{IGD}.X_VENDOR_Missing.Flag"
    await make(
        runtime,
        clock,
        name="by-zone",
        filter={"parameters": {"Time.LocalTimeZoneName": "UTC"}},
        desired={"parameters": {"Time.NTPServer1": "ntp.zone"}},
    )
    await make(
        runtime,
        clock,
        name="by-missing",
        filter={"parameters": {"X_VENDOR_Missing.Flag": "1"}},
        desired={"parameters": {"Time.NTPServer1": "ntp.missing"}},
    )
    cpe = ServiceCpe(runtime)
    asked = sent(await session(cpe, "0 BOOTSTRAP", "1 BOOT"))
    gpvs = [names for rpc, names in asked if rpc == "GPV"]
    assert gpvs == [sorted([tz, missing]), [tz], [missing]]
    assert asked[-1] == ("SPV", {NTP: "ntp.zone"})
    assert cpe.fake.model.get(NTP) == "ntp.zone"
    assert await session(cpe, "2 PERIODIC") == []  # converged: nothing more


async def test_an_object_that_must_exist_is_added_to_an_empty_table(runtime, clock):
    """A table the device has but holds no instance answers the refresh with nothing: it is
    known as empty then, and the instance the preset wants is added and set."""
    xmpp = "Device.XMPP.Connection."
    await make(
        runtime,
        clock,
        name="xmpp",
        desired={
            "objects": [
                {
                    "path": "XMPP.Connection.",
                    "keys": {"Username": "u1"},
                    "parameters": {"Enable": True},
                }
            ]
        },
    )
    cpe = ServiceCpe(runtime, FakeCpe(datamodels.phone("00:15:65:11:3a:f8")))
    asked = [
        (rpc, what)
        for rpc, what in sent(await session(cpe, "0 BOOTSTRAP", "1 BOOT"))
        if rpc == "AddObject" or xmpp in str(what)
    ]
    assert asked == [
        ("GPV", [xmpp]),
        ("AddObject", xmpp),
        ("SPV", {f"{xmpp}1.Username": "u1", f"{xmpp}1.Enable": True}),
    ]
    spv = [r for r in cpe.answered if isinstance(r, m.SetParameterValues)][-1]
    assert [(p.value, p.type) for p in spv.parameter_list] == [
        ("u1", xsd.STRING),
        (True, xsd.BOOLEAN),  # JSON true: a boolean, not 1
    ]
    assert cpe.fake.model.get(f"{xmpp}1.Username") == "u1"
    assert await session(cpe, "2 PERIODIC") == []


async def test_presets_giving_a_phone_different_profiles_are_a_loop_backed_off(runtime, clock):
    for name, profile in (("office", "office"), ("lobby", "lobby")):
        await make(runtime, clock, name=name, desired={"phone_profile": profile})
    phone = ServiceCpe(runtime, FakeCpe(datamodels.phone(PHONE_MAC)))
    await session(phone, "0 BOOTSTRAP", "1 BOOT")
    [event] = await rows(runtime.db, "SELECT details FROM events WHERE type = 'preset.loop'")
    details = event.details if isinstance(event.details, dict) else json.loads(event.details)
    assert (sorted(details["presets"]), details["paths"]) == (
        ["lobby", "office"],
        ["phone profile"],
    )
    # both backed off: the next Informs do not fight again, nor report it again
    for _ in range(2):
        clock.now += presets.backoff(1) / 3
        assert await session(phone, "2 PERIODIC") == []
    assert len(await rows(runtime.db, "SELECT 1 FROM events WHERE type = 'preset.loop'")) == 1
