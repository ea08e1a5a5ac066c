"""Provisioning through TR-069 sessions, on both databases: Downloads of stored files and
rendered configurations, firmware version checks, CTC binding, SIP accounts, rollouts."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from acs.cwmp import messages as m
from acs.provisioning import configfile
from acs.provisioning import models as phone_models
from acs.services import ctc, devices, rollouts, task_specs, tasks
from acs.services.voip import NoVoiceLines, SipAccount, parameter_values
from acs.simulator import datamodels
from tests.fake_cpe import FakeCpe
from tests.services.harness import ServiceCpe, device_columns, session

T0 = 1_800_000_000.0
PHONE_MAC = "00:15:65:11:3a:f8"
PHONE = "0C383E-X6-001565113af8"
CTC_GW = "00E0FC-HG8245C-48575443A1B2C3D4"


async def queue(runtime, clock, device, *specs) -> list[int]:
    queued = await tasks.queue(
        runtime.db,
        device,
        [task_specs.TASK_ADAPTER.validate_python(s) for s in specs],
        created_by="test",
        now=clock.dt,
        default_ttl=3600,
    )
    return [t["id"] for t in queued]


async def store(runtime, name, content, **meta) -> None:
    async def chunks():
        yield content

    meta.setdefault("file_type", "1 Firmware Upgrade Image")
    await runtime.files.store(
        name,
        chunks(),
        oui=meta.pop("oui", None),
        product_class=meta.pop("product_class", None),
        version=meta.pop("version", None),
        created_by="test",
        now=datetime.now(UTC),
        **meta,
    )


@pytest.fixture
async def phone(runtime, clock):
    cpe = ServiceCpe(runtime, FakeCpe(datamodels.phone(PHONE_MAC)))
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    cpe.answered.clear()
    return cpe


async def test_download_of_a_stored_file_fills_url_type_size_and_name(runtime, clock, phone):
    await store(runtime, "x6-2.5.0.z", b"ACS-SIM-FIRMWARE 2.5.0\n" + b"\0" * 100, version="2.5.0")
    [task_id] = await queue(runtime, clock, PHONE, {"name": "Download", "file": "x6-2.5.0.z"})
    [download] = await session(phone)
    assert isinstance(download, m.Download)
    assert (download.file_type, download.file_size, download.target_file_name) == (
        "1 Firmware Upgrade Image",
        123,
        "x6-2.5.0.z",
    )
    url = urlsplit(download.url)
    assert (url.scheme, url.netloc, url.path) == ("http", "localhost", "/files/x6-2.5.0.z")
    token = parse_qs(url.query)["t"][0]
    assert runtime.files.check_token(token, "/files/x6-2.5.0.z", now=T0, sha256=None) is True
    # valid for ACS_FILE_URL_TTL, not forever
    later = T0 + runtime.settings.file_url_ttl + 10
    assert runtime.files.check_token(token, "/files/x6-2.5.0.z", now=later, sha256=None) is False
    task = await tasks.get(runtime.db, task_id)
    assert (task["status"], task["result"]["expected_version"]) == ("awaiting_transfer", "2.5.0")


async def test_firmware_is_done_only_when_the_device_runs_its_version(runtime, clock, phone):
    await store(runtime, "fw.z", b"image", version="2.5.0")
    [good] = await queue(runtime, clock, PHONE, {"name": "Download", "file": "fw.z"})
    [download] = await session(phone)
    # the phone downloads, reboots into the image, and reports in its boot session
    phone.fake.model.set("Device.DeviceInfo.SoftwareVersion", "2.5.0", writable=False)
    tc = m.TransferComplete(download.command_key, m.FaultStruct(0, ""))
    await session(
        phone, "1 BOOT", "7 TRANSFER COMPLETE", "M Download", before_empty=[phone.fake.request(tc)]
    )
    task = await tasks.get(runtime.db, good)
    assert (task["status"], task["result"]["software_version"]) == ("done", "2.5.0")

    await store(runtime, "fw2.z", b"image 2", version="2.6.0")
    [bad] = await queue(runtime, clock, PHONE, {"name": "Download", "file": "fw2.z"})
    [download] = await session(phone)
    # this time it reports the transfer before rebooting, then boots into the old version
    tc = m.TransferComplete(download.command_key, m.FaultStruct(0, ""))
    await session(phone, "7 TRANSFER COMPLETE", before_empty=[phone.fake.request(tc)])
    assert (await tasks.get(runtime.db, bad))["status"] == "awaiting_boot"
    await session(phone, "1 BOOT")
    task = await tasks.get(runtime.db, bad)
    assert task["status"] == "fault"
    assert task["fault"] == {
        "code": 8897,
        "string": "after the upgrade the device reports software version '2.5.0', "
        "expected '2.6.0' (the version of the file)",
    }


async def test_download_of_the_devices_configuration(runtime, clock, phone):
    prov = runtime.provisioning
    await prov.put_profile(
        "general",
        "X6",
        modules={"GLOBAL CONFIG MODULE": {"Time Zone": "32"}},
        config_key=None,
        common_key=None,
        mode=None,
        now=clock.dt,
    )
    await prov.put_phone(
        PHONE_MAC,
        model="X6",
        profile=None,
        input_id=None,
        variables={"user": "1001"},
        modules={"SIP CONFIG MODULE": {"SIP1 Register User": "{{user}}"}},
        mode=None,
        now=clock.dt,
    )
    [task_id] = await queue(runtime, clock, PHONE, {"name": "Download", "config": True})
    [download] = await session(phone)
    assert (download.file_type, download.target_file_name) == (
        "3 Vendor Configuration File",
        "001565113af8.cfg",
    )
    path = urlsplit(download.url).path
    assert path == "/prov/001565113af8.cfg"
    content = (
        await prov.render(
            phone_models.MacFile("001565113af8", "text"), base_url="http://localhost", now=clock.dt
        )
    ).content
    assert download.file_size == len(content)
    assert configfile.parse_text(content).config["SIP CONFIG MODULE"] == {
        "SIP1 Register User": "1001"
    }
    task = await tasks.get(runtime.db, task_id)
    assert task["result"] == {
        "config": "001565113af8.cfg",
        "config_version": "2.0001",
        "status": 1,
        "start_time": None,
        "complete_time": None,
    }


async def test_config_download_needs_a_phone_record(runtime, clock, phone):
    with pytest.raises(tasks.TaskValidationError, match="no phone configuration for MAC"):
        await queue(runtime, clock, PHONE, {"name": "Download", "config": True})
    with pytest.raises(tasks.TaskValidationError, match="no stored file 'nope'"):
        await queue(runtime, clock, PHONE, {"name": "Download", "file": "nope"})
    await store(runtime, "book.csv", b"a,b", file_type="phonebook")
    with pytest.raises(tasks.TaskValidationError, match="not a TR-069 FileType"):
        await queue(runtime, clock, PHONE, {"name": "Download", "file": "book.csv"})


def ctc_gateway() -> FakeCpe:
    model = datamodels.gateway("48575443A1B2C3D4")
    model.manufacturer, model.oui, model.product_class = "Huawei", "00E0FC", "HG8245C"
    base = "InternetGatewayDevice.X_CT-COM_UserInfo."
    model.set(base + "UserName", "loid-0001", writable=True)
    model.set(base + "UserId", "pw-1", writable=True)
    model.set(base + "Status", 99, "xsd:unsignedInt", writable=True)
    model.set(base + "Result", 99, "xsd:unsignedInt", writable=True)
    return FakeCpe(model, namespace="urn:dslforum-org:cwmp-1-0")


async def test_ctc_bind_against_a_work_order(make_runtime, clock):
    rt = await make_runtime(mode="ctc")
    rt.cwmp.clock = clock
    await ctc.create_order(
        rt.db,
        loid="loid-0001",
        password="pw-1",
        task_list=[
            {
                "name": "SetParameterValues",
                "parameter_values": [
                    {
                        "name": "InternetGatewayDevice.Time.NTPServer1",
                        "value": "ntp.ctc.example",
                        "type": "xsd:string",
                    }
                ],
            },
        ],
        profile=None,
        created_by="ops",
        now=clock.dt,
    )
    gw = ctc_gateway()
    cpe = ServiceCpe(rt, gw)
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    # the LOID is not in the Inform: the ACS asks for X_CT-COM_UserInfo, binds, writes back
    requests = await session(cpe, "X CT-COM BIND")
    assert [type(r).__name__ for r in requests] == [
        "GetParameterValues",
        "SetParameterValues",
        "SetParameterValues",
    ]
    assert requests[0].parameter_names == ("InternetGatewayDevice.X_CT-COM_UserInfo.",)
    base = "InternetGatewayDevice.X_CT-COM_UserInfo."
    assert (gw.model.get(base + "Status"), gw.model.get(base + "Result")) == (0, 1)
    assert gw.model.get("InternetGatewayDevice.Time.NTPServer1") == "ntp.ctc.example"
    [order] = (await ctc.list_orders(rt.db))[0]
    assert (order["status"], order["device_id"]) == ("bound", CTC_GW)
    # the device says BIND again: already bound, Status 0 again, tasks not queued twice
    requests = await session(cpe, "X CT-COM BIND")
    assert [type(r).__name__ for r in requests] == ["GetParameterValues", "SetParameterValues"]
    assert (await tasks.list_tasks(rt.db, device_id=CTC_GW, name="SetParameterValues"))[1] == 1


async def test_ctc_unknown_loid_and_wrong_password(make_runtime, clock):
    rt = await make_runtime(mode="ctc")
    rt.cwmp.clock = clock
    gw = ctc_gateway()
    base = "InternetGatewayDevice.X_CT-COM_UserInfo."
    for key in ("UserName", "UserId"):
        gw.model.parameters[base + key].notification = 2  # in the Inform this time
    cpe = ServiceCpe(rt, gw)
    await session(cpe, "0 BOOTSTRAP")
    requests = await session(cpe, "X CT-COM BIND")
    assert [type(r).__name__ for r in requests] == ["SetParameterValues"]  # no GPV needed
    assert (gw.model.get(base + "Status"), gw.model.get(base + "Result")) == (1, 0)
    await ctc.create_order(
        rt.db,
        loid="loid-0001",
        password="other",
        task_list=[],
        profile=None,
        created_by="ops",
        now=clock.dt,
    )
    await session(cpe, "X CT-COM BIND")
    assert (gw.model.get(base + "Status"), gw.model.get(base + "Result")) == (2, 0)


async def test_ctc_rotates_acs_credentials_on_bootstrap(make_runtime, clock):
    rt = await make_runtime(mode="ctc")
    rt.cwmp.clock = clock
    gw = ctc_gateway()
    cpe = ServiceCpe(rt, gw)
    [spv] = await session(cpe, "0 BOOTSTRAP")
    names = {p.name: p.value for p in spv.parameter_list}
    user = names["InternetGatewayDevice.ManagementServer.Username"]
    password = names["InternetGatewayDevice.ManagementServer.Password"]
    assert user.startswith("acs-") and len(password) >= 16
    (stored_user,) = await device_columns(rt.db, "cwmp_username")
    assert stored_user == user
    # the shared pair no longer works for this device; its own does
    shared = ServiceCpe(rt, gw)
    shared.use_model_credentials = False
    assert (await shared.inform()).status == 401
    assert (await ServiceCpe(rt, gw).inform()).status == 200  # uses ManagementServer.*


async def test_common_mode_never_rejects_ctc_events(runtime, clock):
    cpe = ServiceCpe(runtime, ctc_gateway())
    await session(cpe, "0 BOOTSTRAP")
    assert await session(cpe, "X CT-COM BIND", "X CT-COM ALARM") == []


async def test_sip_accounts_on_the_devices_tr104_paths(runtime, clock, phone):
    params = await devices.parameters_of(runtime.db, PHONE)
    with pytest.raises(NoVoiceLines, match="GetParameterValues of its VoiceService"):
        parameter_values(params, [SipAccount(line=1, auth_user_name="1001")])
    await queue(
        runtime,
        clock,
        PHONE,
        {"name": "GetParameterValues", "parameter_names": ["Device.Services.VoiceService."]},
    )
    await session(phone)
    params = await devices.parameters_of(runtime.db, PHONE)
    values = parameter_values(
        params,
        [
            SipAccount(
                line=2,
                auth_user_name="1002",
                auth_password="s3cret",
                display_name="Bob",
                enable=True,
                registrar_server="sip.example.com",
            ),
        ],
    )
    vp = "Device.Services.VoiceService.1.VoiceProfile.1."
    assert values == [
        {"name": vp + "Line.2.SIP.AuthUserName", "value": "1002"},
        {"name": vp + "Line.2.SIP.AuthPassword", "value": "s3cret"},
        {"name": vp + "Line.2.CallingFeatures.CallerIDName", "value": "Bob"},
        {"name": vp + "Line.2.Enable", "value": "Enabled"},
        {"name": vp + "SIP.RegistrarServer", "value": "sip.example.com"},
    ]
    with pytest.raises(NoVoiceLines, match="the device has 2 line"):
        parameter_values(params, [SipAccount(line=3, auth_user_name="x")])
    await queue(runtime, clock, PHONE, {"name": "SetParameterValues", "parameter_values": values})
    await session(phone)
    assert phone.fake.model.get(vp + "Line.2.SIP.AuthUserName") == "1002"
    assert phone.fake.model.get(vp + "Line.2.Enable") == "Enabled"


async def test_rollout_in_waves_stops_when_a_wave_fails(runtime, clock):
    fakes = [FakeCpe(datamodels.phone(f"00:15:65:00:00:{i:02x}")) for i in range(5)]
    cpes = [ServiceCpe(runtime, f, host=f"198.51.100.{i}") for i, f in enumerate(fakes)]
    for cpe in cpes:
        await session(cpe, "0 BOOTSTRAP")
    other = ServiceCpe(runtime, FakeCpe(datamodels.gateway("GW1")), host="198.51.100.99")
    await session(other, "0 BOOTSTRAP")
    rollout, poke = await rollouts.create(
        runtime.db,
        name="ntp",
        filter={"product_class": "X6"},
        task={
            "name": "SetParameterValues",
            "parameter_values": [
                {"name": "Device.Time.NTPServer1", "value": "ntp.example", "type": "xsd:string"}
            ],
        },
        wave_size=2,
        failure_threshold=0.4,
        connection_request=False,
        created_by="ops",
        now=clock.dt,
        task_ttl=3600,
    )
    assert (rollout["targets"], rollout["waves"], rollout["current_wave"], poke) == (5, 3, 1, [])
    assert rollout["wave_progress"] == [
        {"wave": 1, "targets": 2, "done": 0, "failed": 0, "pending": 2},
        {"wave": 2, "targets": 2, "done": 0, "failed": 0, "pending": 2},  # not queued yet
        {"wave": 3, "targets": 1, "done": 0, "failed": 0, "pending": 1},
    ]
    for cpe in cpes[:2]:
        assert len(await session(cpe)) == 1
    assert await session(cpes[2]) == []  # wave 2 is not queued yet
    assert await rollouts.advance(runtime.db, clock.dt, 3600) == []
    state = await rollouts.get(runtime.db, rollout["id"])
    assert (state["current_wave"], state["progress"]["done"]) == (2, 2)
    # wave 2 fails: one device refuses the value
    fakes[2].model.parameters["Device.Time.NTPServer1"].writable = False
    fakes[3].model.parameters["Device.Time.NTPServer1"].writable = False
    for cpe in cpes[2:4]:
        await session(cpe)
    await rollouts.advance(runtime.db, clock.dt, 3600)
    state = await rollouts.get(runtime.db, rollout["id"])
    assert state["status"] == "stopped"
    assert state["reason"] == "wave 2: 2 of 2 failed (100% > 40%)"
    assert state["progress"] == {"done": 2, "failed": 2, "pending": 1}
    assert await session(cpes[4]) == []  # wave 3 never runs
    assert await session(other) == []  # not targeted at all


async def test_rollout_validation_and_stop(runtime, clock):
    with pytest.raises(rollouts.RolloutError, match="unknown filter fields"):
        await rollouts.create(
            runtime.db,
            name="x",
            filter={"colour": "red"},
            task={"name": "Reboot"},
            wave_size=1,
            failure_threshold=0,
            connection_request=False,
            created_by=None,
            now=clock.dt,
            task_ttl=60,
        )
    empty, _ = await rollouts.create(
        runtime.db,
        name="x",
        filter={"product_class": "none"},
        task={"name": "Reboot"},
        wave_size=1,
        failure_threshold=0,
        connection_request=False,
        created_by=None,
        now=clock.dt,
        task_ttl=60,
    )
    assert (empty["status"], empty["reason"]) == ("done", "no device matched the filter")
    cpe = ServiceCpe(runtime)
    await session(cpe, "0 BOOTSTRAP")
    running, _ = await rollouts.create(
        runtime.db,
        name="r",
        filter={},
        task={"name": "Reboot"},
        wave_size=10,
        failure_threshold=0,
        connection_request=False,
        created_by=None,
        now=clock.dt,
        task_ttl=60,
    )
    stopped = await rollouts.stop(runtime.db, running["id"], clock.dt, "stopped by ops")
    assert (stopped["status"], stopped["progress"]["failed"]) == ("stopped", 1)
    assert await session(cpe) == []  # its queued task was cancelled
    with pytest.raises(rollouts.RolloutError, match="is stopped"):
        await rollouts.stop(runtime.db, running["id"], clock.dt, "again")
