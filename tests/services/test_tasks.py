"""The task queue inside CWMP sessions, on SQLite and PostgreSQL (no HTTP)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from acs.cwmp import messages as m
from acs.db import hot, queries
from acs.services import fault_log, maintenance, tasks
from acs.simulator import datamodels
from tests.fake_cpe import FakeCpe
from tests.services.harness import ServiceCpe, device_columns, queue, rows, session, spec

DEVICE = "00D09E-IGD-SN0001"
IGD = "InternetGatewayDevice"


@pytest.fixture
async def cpe(runtime, clock):
    """A CPE that has had its first session (bootstrap provisioning done)."""
    c = ServiceCpe(runtime)
    await session(c, "0 BOOTSTRAP", "1 BOOT")
    c.answered.clear()
    return c


async def params_of(runtime) -> dict[str, Any]:
    [(p,)] = await rows(runtime.db, "SELECT parameters FROM devices")
    return p if isinstance(p, dict) else json.loads(p)


async def test_first_session_provisions_connection_request_credentials(runtime, clock):
    cpe = ServiceCpe(runtime)
    requests = await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    [spv] = requests
    assert isinstance(spv, m.SetParameterValues)
    names = {p.name: p for p in spv.parameter_list}
    assert names[f"{IGD}.ManagementServer.PeriodicInformInterval"].value == 3600
    assert names[f"{IGD}.ManagementServer.PeriodicInformInterval"].type == "xsd:unsignedInt"
    assert names[f"{IGD}.ManagementServer.PeriodicInformEnable"].value is True
    username = names[f"{IGD}.ManagementServer.ConnectionRequestUsername"].value
    password = names[f"{IGD}.ManagementServer.ConnectionRequestPassword"].value
    [row] = await rows(
        runtime.db, "SELECT cr_username, cr_password_enc, periodic_inform_interval FROM devices"
    )
    assert row.cr_username == username
    assert password not in row.cr_password_enc  # sealed, never in clear
    assert runtime.box.open(row.cr_password_enc) == password
    assert row.periodic_inform_interval == 3600
    # the CPE really took them
    assert cpe.fake.model.get(f"{IGD}.ManagementServer.ConnectionRequestUsername") == username
    # later sessions do not provision again...
    assert await session(cpe, "2 PERIODIC") == []
    # ...until a BOOTSTRAP, which rotates the credentials
    [again] = await session(cpe, "0 BOOTSTRAP")
    new_user = {p.name: p.value for p in again.parameter_list}[
        f"{IGD}.ManagementServer.ConnectionRequestUsername"
    ]
    assert new_user != username
    [(stored,)] = await rows(runtime.db, "SELECT cr_username FROM devices")
    assert stored == new_user


async def test_refused_provisioning_is_not_retried_every_session(runtime, clock):
    fake = FakeCpe()
    fake.model.parameters[f"{IGD}.ManagementServer.ConnectionRequestPassword"].writable = False
    cpe = ServiceCpe(runtime, fake)
    [spv] = await session(cpe, "0 BOOTSTRAP")
    assert isinstance(spv, m.SetParameterValues)
    assert await session(cpe, "2 PERIODIC") == []
    [fault] = (await fault_log.list_faults(runtime.db))[0]
    assert (fault["code"], fault["source"]) == (9003, "cpe")


async def test_get_parameter_values_lands_in_the_tree(runtime, clock, cpe):
    [task_id] = await queue(
        runtime,
        clock,
        {
            "name": "GetParameterValues",
            "parameter_names": [
                f"{IGD}.LANDevice.1.WLANConfiguration.1.",
                f"{IGD}.Time.NTPServer1",
            ],
        },
    )
    [request] = await session(cpe, "2 PERIODIC")
    assert request == m.GetParameterValues(
        (f"{IGD}.LANDevice.1.WLANConfiguration.1.", f"{IGD}.Time.NTPServer1")
    )
    task = await tasks.get(runtime.db, task_id)
    assert (task["status"], task["attempts"]) == ("done", 1)
    assert {p["name"]: p["value"] for p in task["result"]["parameter_list"]}[
        f"{IGD}.LANDevice.1.WLANConfiguration.1.Channel"
    ] == 6
    params = await params_of(runtime)
    assert params[f"{IGD}.LANDevice.1.WLANConfiguration.1.Channel"]["value"] == 6
    assert params[f"{IGD}.LANDevice.1.WLANConfiguration.1.Channel"]["type"] == "xsd:unsignedInt"
    assert params[f"{IGD}.Time.NTPServer1"]["value"] == "pool.ntp.org"


async def test_set_parameter_values_uses_known_types_and_updates_the_tree(runtime, clock, cpe):
    await queue(
        runtime, clock, {"name": "GetParameterValues", "parameter_names": [f"{IGD}.LANDevice.1."]}
    )
    await session(cpe)
    [task_id] = await queue(
        runtime,
        clock,
        {
            "name": "SetParameterValues",
            "parameter_values": [
                {"name": f"{IGD}.LANDevice.1.WLANConfiguration.1.Channel", "value": "11"},
                {"name": f"{IGD}.LANDevice.1.WLANConfiguration.1.SSID", "value": "home"},
                {
                    "name": f"{IGD}.LANDevice.1.WLANConfiguration.1.KeyPassphrase",
                    "value": "s3cret!",
                },
            ],
            "parameter_key": "k1",
        },
    )
    [request] = await session(cpe)
    sent = {p.name.rsplit(".", 1)[1]: (p.value, p.type) for p in request.parameter_list}
    assert sent["Channel"] == (11, "xsd:unsignedInt")  # the device's type, not a string
    assert sent["SSID"] == ("home", "xsd:string")
    assert request.parameter_key == "k1"
    task = await tasks.get(runtime.db, task_id)
    assert task["status"] == "done"
    assert task["result"] == {"status": 0, "parameter_key": "k1", "applied": "now"}
    assert task["arguments"]["parameter_values"][2]["value"] == tasks.REDACTED
    assert cpe.fake.model.get(f"{IGD}.LANDevice.1.WLANConfiguration.1.Channel") == 11
    params = await params_of(runtime)
    assert params[f"{IGD}.LANDevice.1.WLANConfiguration.1.Channel"]["value"] == 11
    assert params[f"{IGD}.LANDevice.1.WLANConfiguration.1.SSID"]["value"] == "home"


async def test_value_that_does_not_fit_the_known_type_is_refused_at_queue_time(runtime, clock, cpe):
    await queue(
        runtime, clock, {"name": "GetParameterValues", "parameter_names": [f"{IGD}.LANDevice.1."]}
    )
    await session(cpe)
    with pytest.raises(tasks.TaskValidationError, match="the device reports xsd:unsignedInt"):
        await queue(
            runtime,
            clock,
            {
                "name": "SetParameterValues",
                "parameter_values": [
                    {"name": f"{IGD}.LANDevice.1.WLANConfiguration.1.Channel", "value": "eleven"}
                ],
            },
        )
    assert (await tasks.list_tasks(runtime.db, name="SetParameterValues"))[1] == 0


async def test_cpe_fault_fails_the_task_and_the_session_goes_on(runtime, clock, cpe):
    bad, good = await queue(
        runtime,
        clock,
        {
            "name": "SetParameterValues",
            "parameter_values": [
                {"name": f"{IGD}.DeviceInfo.SoftwareVersion", "value": "x", "type": "xsd:string"},
                {"name": f"{IGD}.Nope", "value": "1", "type": "xsd:string"},
            ],
        },
        {"name": "GetRPCMethods"},
    )
    requests = await session(cpe)
    assert [type(r).__name__ for r in requests] == ["SetParameterValues", "GetRPCMethods"]
    task = await tasks.get(runtime.db, bad)
    assert task["status"] == "fault"
    assert task["fault"]["code"] == 9003
    assert task["fault"]["detail"]["set_parameter_values_fault"] == [
        {
            "parameter_name": f"{IGD}.DeviceInfo.SoftwareVersion",
            "fault_code": 9008,
            "fault_string": "Attempt to set a non-writable parameter",
        },
        {
            "parameter_name": f"{IGD}.Nope",
            "fault_code": 9005,
            "fault_string": "Invalid parameter name",
        },
    ]
    assert (await tasks.get(runtime.db, good))["status"] == "done"
    [(methods,)] = await rows(runtime.db, "SELECT rpc_methods FROM devices")
    methods = methods if isinstance(methods, list) else json.loads(methods)
    assert "Download" in methods
    [fault] = (await fault_log.list_faults(runtime.db, task_id=bad))[0]
    assert (fault["code"], fault["source"], fault["device_id"]) == (9003, "cpe", DEVICE)
    assert len(fault["detail"]["set_parameter_values_fault"]) == 2


async def test_tasks_run_in_order_and_reboot_runs_last_and_ends_the_session(runtime, clock, cpe):
    reboot, first, second = await queue(
        runtime,
        clock,
        {"name": "Reboot"},
        {"name": "GetParameterValues", "parameter_names": [f"{IGD}.Time.NTPServer1"]},
        {"name": "GetRPCMethods"},
    )
    requests = await session(cpe)
    assert [type(r).__name__ for r in requests] == ["GetParameterValues", "GetRPCMethods", "Reboot"]
    assert [(await tasks.get(runtime.db, i))["status"] for i in (first, second)] == ["done"] * 2
    task = await tasks.get(runtime.db, reboot)
    assert task["status"] == "awaiting_boot"
    command_key = task["command_key"]
    assert requests[2] == m.Reboot(command_key)
    # the CPE reboots and comes back with 1 BOOT + M Reboot <key>
    cpe.fake.model.reboot()
    await session(cpe, "1 BOOT")
    task = await tasks.get(runtime.db, reboot)
    assert task["status"] == "done"
    assert task["result"]["events"] == ["1 BOOT", "M Reboot"]


async def test_factory_reset_completes_on_bootstrap(runtime, clock, cpe):
    [task_id] = await queue(runtime, clock, {"name": "FactoryReset"})
    assert [type(r).__name__ for r in await session(cpe)] == ["FactoryReset"]
    assert (await tasks.get(runtime.db, task_id))["status"] == "awaiting_boot"
    requests = await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    assert (await tasks.get(runtime.db, task_id))["status"] == "done"
    assert [type(r).__name__ for r in requests] == ["SetParameterValues"]  # re-provisioned


async def test_download_waits_for_transfer_complete_across_sessions_and_reboots(
    runtime, clock, cpe
):
    [task_id] = await queue(
        runtime,
        clock,
        {
            "name": "Download",
            "file_type": "1 Firmware Upgrade Image",
            "url": "http://files.example/fw.bin",
            "file_size": 1234,
        },
    )
    [request] = await session(cpe)
    task = await tasks.get(runtime.db, task_id)
    assert task["status"] == "awaiting_transfer"
    assert request.command_key == task["command_key"] and request.command_key.startswith("acs-")
    assert (request.url, request.file_size) == ("http://files.example/fw.bin", 1234)
    # the CPE reboots twice before it reports, and reports without the 7 TRANSFER COMPLETE event
    await session(cpe, "1 BOOT")
    await session(cpe, "1 BOOT")
    assert (await tasks.get(runtime.db, task_id))["status"] == "awaiting_transfer"
    tc = m.TransferComplete(
        request.command_key,
        m.FaultStruct(0, ""),
        datetime(2030, 1, 1, tzinfo=UTC),
        datetime(2030, 1, 1, 0, 1, tzinfo=UTC),
    )
    await session(cpe, "1 BOOT", before_empty=[cpe.fake.request(tc)])
    task = await tasks.get(runtime.db, task_id)
    assert task["status"] == "done"
    assert task["result"]["transfer"] == {
        "start_time": "2030-01-01T00:00:00Z",
        "complete_time": "2030-01-01T00:01:00Z",
    }


async def test_failed_transfer_keeps_its_fault_struct(runtime, clock, cpe):
    [task_id] = await queue(
        runtime,
        clock,
        {
            "name": "Download",
            "file_type": "3 Vendor Configuration File",
            "url": "http://files.example/c.cfg",
            "command_key": "cfg-1",
        },
    )
    await session(cpe)
    tc = m.TransferComplete("cfg-1", m.FaultStruct(9012, "server said 401"))
    await session(cpe, "7 TRANSFER COMPLETE", "M Download", before_empty=[cpe.fake.request(tc)])
    task = await tasks.get(runtime.db, task_id)
    assert (task["status"], task["fault"]) == ("fault", {"code": 9012, "string": "server said 401"})
    [fault] = (await fault_log.list_faults(runtime.db, task_id=task_id))[0]
    assert (fault["code"], fault["string"], fault["source"]) == (9012, "server said 401", "cpe")


async def test_transfer_complete_for_unknown_key_is_logged_not_lost(runtime, clock, cpe):
    tc = m.TransferComplete("nobody-asked", m.FaultStruct(0, ""))
    await session(cpe, "7 TRANSFER COMPLETE", before_empty=[cpe.fake.request(tc)])
    [fault] = (await fault_log.list_faults(runtime.db))[0]
    assert fault["code"] == 8895
    assert fault["detail"]["transfer_complete"]["command_key"] == "nobody-asked"


async def test_transient_fault_retries_with_backoff_up_to_the_limit(make_runtime, clock):
    rt = await make_runtime(task_max_attempts=3, task_retry_base_seconds=60)
    rt.cwmp.clock = clock
    fake = FakeCpe()
    cpe = ServiceCpe(rt, fake)
    await session(cpe, "0 BOOTSTRAP")
    busy = {"n": 0}
    original = fake.model.handle

    def handle(request):
        if isinstance(request, m.GetRPCMethods):
            busy["n"] += 1
            return m.Fault(9002, "Internal error", soap_faultcode="Server")
        return original(request)

    fake.model.handle = handle
    [task_id] = await queue(rt, clock, {"name": "GetRPCMethods"})
    assert len(await session(cpe)) == 1
    task = await tasks.get(rt.db, task_id)
    assert (task["status"], task["attempts"], task["fault"]["code"]) == ("queued", 1, 9002)
    assert task["next_attempt"] == clock.dt + timedelta(seconds=60)
    assert await session(cpe) == []  # not before its retry time
    clock.now += 61
    assert len(await session(cpe)) == 1
    assert (await tasks.get(rt.db, task_id))["next_attempt"] == clock.dt + timedelta(seconds=120)
    clock.now += 121
    assert len(await session(cpe)) == 1
    task = await tasks.get(rt.db, task_id)
    assert (task["status"], task["attempts"]) == ("fault", 3)
    assert busy["n"] == 3
    assert (await fault_log.list_faults(rt.db, task_id=task_id))[1] == 3


async def test_session_that_dies_mid_task_leaves_it_queued(runtime, clock, cpe):
    [task_id] = await queue(runtime, clock, {"name": "GetRPCMethods"})
    assert (await cpe.inform()).status == 200
    request = await cpe.post(b"")
    assert b"GetRPCMethods" in request.body
    assert (await tasks.get(runtime.db, task_id))["status"] == "sent"
    clock.now += 31  # the CPE vanished; the sweeper closes the session
    assert await runtime.cwmp.expire_sessions() == 1
    task = await tasks.get(runtime.db, task_id)
    assert (task["status"], task["attempts"], task["next_attempt"]) == ("queued", 1, None)
    assert task["fault"]["code"] == 8891
    # and it runs in the next session
    assert [type(r).__name__ for r in await session(cpe)] == ["GetRPCMethods"]
    assert (await tasks.get(runtime.db, task_id))["status"] == "done"


async def test_inform_mid_session_requeues_the_task_for_the_new_session(runtime, clock):
    cpe = ServiceCpe(runtime, cookies=False)
    await session(cpe, "0 BOOTSTRAP")
    [task_id] = await queue(runtime, clock, {"name": "GetRPCMethods"})
    assert (await cpe.inform()).status == 200
    assert b"GetRPCMethods" in (await cpe.post(b"")).body
    # a connection request raced the session: the CPE starts over on the same connection
    assert [type(r).__name__ for r in await session(cpe, "6 CONNECTION REQUEST")] == [
        "GetRPCMethods"
    ]
    assert (await tasks.get(runtime.db, task_id))["status"] == "done"


async def test_empty_post_instead_of_an_answer_is_retried_later(runtime, clock, cpe):
    [task_id] = await queue(runtime, clock, {"name": "GetRPCMethods"})
    assert (await cpe.inform()).status == 200
    assert b"GetRPCMethods" in (await cpe.post(b"")).body
    assert (await cpe.post(b"")).status == 204
    task = await tasks.get(runtime.db, task_id)
    assert (task["status"], task["fault"]["code"]) == ("queued", 8890)
    assert task["next_attempt"] > clock.dt


async def test_expired_and_cancelled_tasks_are_not_sent(runtime, clock, cpe):
    soon = clock.dt + timedelta(seconds=10)
    expiring, cancelled, kept = await queue(
        runtime,
        clock,
        {"name": "GetRPCMethods", "expires": soon.isoformat()},
        {"name": "Reboot"},
        {"name": "GetParameterNames", "parameter_path": f"{IGD}.Time.", "next_level": False},
    )
    assert (await tasks.cancel(runtime.db, cancelled, clock.dt))["status"] == "cancelled"
    with pytest.raises(tasks.TaskStateError, match="already cancelled"):
        await tasks.cancel(runtime.db, cancelled, clock.dt)
    clock.now += 11
    assert [type(r).__name__ for r in await session(cpe)] == ["GetParameterNames"]
    assert (await tasks.get(runtime.db, expiring))["status"] == "expired"
    params = await params_of(runtime)
    assert params[f"{IGD}.Time.NTPServer1"]["writable"] is True
    assert params[f"{IGD}.Time."] == {"writable": False, "object": True}
    assert (await tasks.get(runtime.db, kept))["status"] == "done"
    retried = await tasks.retry(runtime.db, cancelled, clock.dt, 3600)
    assert (retried["status"], retried["attempts"]) == ("queued", 0)
    with pytest.raises(tasks.TaskStateError, match="only fault, expired or cancelled"):
        await tasks.retry(runtime.db, kept, clock.dt, 3600)
    with pytest.raises(tasks.TaskNotFound):
        await tasks.get(runtime.db, 999_999)


async def test_objects_attributes_and_the_tree(runtime, clock, cpe):
    add, attrs, get_attrs = await queue(
        runtime,
        clock,
        {"name": "AddObject", "object_name": f"{IGD}.LANDevice.1.WLANConfiguration."},
        {
            "name": "SetParameterAttributes",
            "parameter_list": [{"name": f"{IGD}.DeviceInfo.SoftwareVersion", "notification": 2}],
        },
        {"name": "GetParameterAttributes", "parameter_names": [f"{IGD}.Time.NTPServer1"]},
    )
    await session(cpe)
    assert [(await tasks.get(runtime.db, i))["status"] for i in (attrs, get_attrs)] == ["done"] * 2
    task = await tasks.get(runtime.db, add)
    assert task["result"] == {
        "instance_number": 2,
        "status": 0,
        "object": f"{IGD}.LANDevice.1.WLANConfiguration.2.",
    }
    params = await params_of(runtime)
    assert params[f"{IGD}.DeviceInfo.SoftwareVersion"]["notification"] == 2
    assert params[f"{IGD}.Time.NTPServer1"]["notification"] == 0
    assert params[f"{IGD}.LANDevice.1.WLANConfiguration.2."] == {"object": True}
    await queue(
        runtime,
        clock,
        {
            "name": "GetParameterValues",
            "parameter_names": [f"{IGD}.LANDevice.1.WLANConfiguration.2."],
        },
    )
    await session(cpe)
    params = await params_of(runtime)
    assert f"{IGD}.LANDevice.1.WLANConfiguration.2.SSID" in params
    [delete] = await queue(
        runtime,
        clock,
        {"name": "DeleteObject", "object_name": f"{IGD}.LANDevice.1.WLANConfiguration.2."},
    )
    await session(cpe)
    assert (await tasks.get(runtime.db, delete))["status"] == "done"
    params = await params_of(runtime)
    assert not [k for k in params if k.startswith(f"{IGD}.LANDevice.1.WLANConfiguration.2.")]
    assert f"{IGD}.Time.NTPServer1" in params  # the rest of the tree stays


async def test_every_acs_rpc_runs(runtime, clock, cpe):
    ids = await queue(
        runtime,
        clock,
        {"name": "GetQueuedTransfers"},
        {"name": "GetAllQueuedTransfers"},
        {"name": "ScheduleInform", "delay_seconds": 30},
        {"name": "Upload", "file_type": "2 Vendor Log File", "url": "http://up.example/log"},
        {
            "name": "ScheduleDownload",
            "file_type": "1 Firmware Upgrade Image",
            "url": "http://f.example/fw",
            "time_window_list": [{"window_start": 0, "window_end": 3600}],
        },
        {"name": "CancelTransfer", "command_key": "nope"},
    )
    requests = await session(cpe)
    assert [type(r).__name__ for r in requests] == [
        "GetQueuedTransfers",
        "GetAllQueuedTransfers",
        "ScheduleInform",
        "Upload",
        "ScheduleDownload",
        "CancelTransfer",
    ]
    statuses = [(await tasks.get(runtime.db, i))["status"] for i in ids]
    assert statuses == ["done", "done", "done", "awaiting_transfer", "awaiting_transfer", "fault"]


async def test_transfer_and_boot_timeouts(make_runtime, clock):
    rt = await make_runtime(transfer_timeout=100, boot_timeout=50)
    rt.cwmp.clock = clock
    cpe = ServiceCpe(rt)
    await session(cpe, "0 BOOTSTRAP")
    download, reboot = await queue(
        rt,
        clock,
        {"name": "Download", "file_type": "1 Firmware Upgrade Image", "url": "http://f/fw"},
        {"name": "Reboot"},
    )
    await session(cpe)
    assert await maintenance.expire_tasks(rt.db, clock.dt) == 0
    later = clock.dt + timedelta(seconds=101)
    assert await maintenance.expire_tasks(rt.db, later) == 2
    assert (await tasks.get(rt.db, download))["fault"]["code"] == 8892
    assert (await tasks.get(rt.db, reboot))["fault"]["code"] == 8893
    logged, count = await fault_log.list_faults(rt.db, device_id=DEVICE)
    assert count == 2
    assert {(e["task_id"], e["code"], e["source"]) for e in logged} == {
        (download, 8892, "acs"),
        (reboot, 8893, "acs"),
    }
    assert await maintenance.expire_tasks(rt.db, later) == 0  # once only


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "Explode"}, "does not match any of the expected tags"),
        ({"name": "GetParameterValues"}, "parameter_names"),
        ({"name": "GetParameterValues", "parameter_names": []}, "at least 1 item"),
        (
            {
                "name": "SetParameterValues",
                "parameter_values": [{"name": "A.B", "value": "x", "type": "xsd:int"}],
            },
            "not an integer",
        ),
        (
            {
                "name": "SetParameterValues",
                "parameter_values": [{"name": "A.B", "value": "1"}, {"name": "A.B", "value": "2"}],
            },
            "given twice",
        ),
        (
            {"name": "SetParameterValues", "parameter_values": [{"name": "A.", "value": "1"}]},
            "is an object",
        ),
        ({"name": "AddObject", "object_name": "A.B"}, "ends with '.'"),
        ({"name": "DeleteObject", "object_name": "A.B."}, "instance path"),
        ({"name": "Download", "file_type": "9 Bogus", "url": "http://x"}, "file_type"),
        (
            {"name": "Download", "file_type": "1 Firmware Upgrade Image", "url": "file:///etc"},
            "http, https, ftp or tftp",
        ),
        ({"name": "ScheduleInform", "delay_seconds": 0}, "greater than or equal to 1"),
        ({"name": "Reboot", "command_key": "x" * 33}, "at most 32 characters"),
        ({"name": "Reboot", "bogus": 1}, "Extra inputs are not permitted"),
    ],
)
def test_bad_tasks_name_the_field(body, message):
    with pytest.raises(ValidationError, match=message):
        spec(body)


async def test_queueing_for_an_unknown_device(runtime, clock):
    with pytest.raises(tasks.DeviceNotFound):
        await queue(runtime, clock, {"name": "Reboot"}, device="nope")


async def test_two_devices_queues_are_separate(runtime, clock, cpe):
    other = ServiceCpe(runtime, FakeCpe(datamodels.gateway("SN0002")), host="192.0.2.77")
    await session(other, "0 BOOTSTRAP")
    [mine] = await queue(runtime, clock, {"name": "GetRPCMethods"})
    assert await session(other) == []
    assert (await tasks.get(runtime.db, mine))["status"] == "queued"
    assert len(await session(cpe)) == 1


PERIODIC = f"{IGD}.ManagementServer.PeriodicInformInterval"


async def forget(runtime, path: str) -> None:
    """Drop a parameter from the device's tree (bootstrap provisioning records the ones it
    sets, with their types), as on a device that refused that provisioning."""
    async with runtime.db.write() as conn:
        await queries.delete_parameter_subtree(hot.over(conn), DEVICE, path)


async def test_readme_example_takes_its_type_from_the_standard_data_model(runtime, clock, cpe):
    # the README's SetParameterValues: no type given, and the tree has none for it
    await forget(runtime, PERIODIC)
    assert PERIODIC not in await params_of(runtime)
    [task_id] = await queue(
        runtime,
        clock,
        {"name": "SetParameterValues", "parameter_values": [{"name": PERIODIC, "value": 600}]},
    )
    stored = (await tasks.get(runtime.db, task_id))["arguments"]["parameter_values"]
    assert stored == [{"name": PERIODIC, "value": 600, "type": "xsd:unsignedInt"}]
    [request] = await session(cpe, "6 CONNECTION REQUEST")
    assert request.parameter_list == (m.ParameterValueStruct(PERIODIC, 600, "xsd:unsignedInt"),)
    task = await tasks.get(runtime.db, task_id)
    assert (task["status"], task["fault"]) == ("done", None)
    assert task["result"] == {"status": 0, "parameter_key": "", "applied": "now"}
    assert cpe.fake.model.get(PERIODIC) == 600  # the simulator faults 9006 on xsd:int


async def test_given_and_reported_types_come_before_the_standard_one(runtime, clock, cpe):
    # a device that (against TR-098) reports the interval as a string
    cpe.fake.model.parameters[PERIODIC].type = "xsd:string"
    await queue(runtime, clock, {"name": "GetParameterValues", "parameter_names": [PERIODIC]})
    await session(cpe)
    await queue(
        runtime,
        clock,
        {"name": "SetParameterValues", "parameter_values": [{"name": PERIODIC, "value": 900}]},
        {
            "name": "SetParameterValues",
            "parameter_values": [
                {"name": f"{IGD}.DeviceInfo.ProvisioningCode", "value": 7, "type": "xsd:int"}
            ],
        },
    )
    reported, given = await session(cpe)
    assert reported.parameter_list == (m.ParameterValueStruct(PERIODIC, "900", "xsd:string"),)
    assert given.parameter_list == (
        m.ParameterValueStruct(f"{IGD}.DeviceInfo.ProvisioningCode", 7, "xsd:int"),
    )


async def test_value_that_does_not_fit_the_standard_type_is_refused_at_queue_time(
    runtime, clock, cpe
):
    await forget(runtime, PERIODIC)
    with pytest.raises(
        tasks.TaskValidationError,
        match=r"^parameter_values: InternetGatewayDevice\.ManagementServer\."
        r"PeriodicInformInterval: "
        r"-5 is out of range for xsd:unsignedInt \(0\.\.4294967295\) "
        r"\(the standard data model has xsd:unsignedInt\)$",
    ):
        await queue(
            runtime,
            clock,
            {"name": "SetParameterValues", "parameter_values": [{"name": PERIODIC, "value": -5}]},
        )
    assert (await tasks.list_tasks(runtime.db, name="SetParameterValues"))[1] == 0


def test_tasks_queued_without_the_tree_still_send_the_standard_type():
    # rollouts and work orders store the operator's arguments as given
    message = spec(
        {
            "name": "SetParameterValues",
            "parameter_values": [
                {"name": PERIODIC, "value": "600"},
                {
                    "name": f"{IGD}.LANDevice.1.WLANConfiguration.2.SSIDAdvertisementEnabled",
                    "value": 0,
                },
                {"name": f"{IGD}.Time.NTPServer1", "value": "pool.ntp.org"},
                {"name": f"{IGD}.X_00D09E_Debug.LogLevel", "value": 3},  # vendor: inferred
                {"name": f"{IGD}.ManagementServer.PeriodicInformTime", "value": "soon"},
            ],
        }
    ).to_message("")
    assert message.parameter_list == (
        m.ParameterValueStruct(PERIODIC, 600, "xsd:unsignedInt"),
        m.ParameterValueStruct(
            f"{IGD}.LANDevice.1.WLANConfiguration.2.SSIDAdvertisementEnabled", False, "xsd:boolean"
        ),
        m.ParameterValueStruct(f"{IGD}.Time.NTPServer1", "pool.ntp.org", "xsd:string"),
        m.ParameterValueStruct(f"{IGD}.X_00D09E_Debug.LogLevel", 3, "xsd:int"),
        # not a dateTime: sent as what it is, for the CPE to judge
        m.ParameterValueStruct(f"{IGD}.ManagementServer.PeriodicInformTime", "soon", "xsd:string"),
    )


async def test_a_whole_tree_answer_lands_in_the_tree_and_the_task_keeps_its_count(runtime, clock):
    from acs.cwmp import xsd
    from acs.services.policy import results
    from acs.simulator.model import Parameter

    fake = FakeCpe()
    extra = results.LISTED_ENTRIES + 200
    for i in range(extra):
        fake.model.parameters[f"{IGD}.X_00D09E_Big.{i}.Name"] = Parameter(f"v{i}", xsd.STRING, True)
    cpe = ServiceCpe(runtime, fake)
    await session(cpe, "0 BOOTSTRAP")
    [task_id] = await queue(
        runtime, clock, {"name": "GetParameterValues", "parameter_names": [f"{IGD}."]}
    )
    await session(cpe)
    task = await tasks.get(runtime.db, task_id)
    total = len(fake.model.parameters)
    assert (task["status"], task["result"]) == ("done", {"parameter_count": total})
    tree = await params_of(runtime)
    assert tree[f"{IGD}.X_00D09E_Big.{extra - 1}.Name"]["value"] == f"v{extra - 1}"
    assert sum(1 for k in tree if k.startswith(f"{IGD}.X_00D09E_Big.")) == extra


async def test_setting_the_inform_interval_moves_the_silence_deadline_at_once(runtime, clock, cpe):
    """Found with the simulator: a longer interval set by a task was watched at the old one
    until the device's next Inform, and the device was flagged late before it came."""
    await queue(
        runtime,
        clock,
        {"name": "SetParameterValues", "parameter_values": [{"name": PERIODIC, "value": 86400}]},
    )
    await session(cpe)
    row = await device_columns(runtime.db, "periodic_inform_interval", "inform_deadline")
    grace = runtime.settings.silent_grace
    assert tuple(row) == (86400, clock.dt + timedelta(seconds=86400 + grace))
