"""CPE behaviour that broke sessions, survived: each with the sample of ``soap_samples/`` the CPE
sends where it is about a message. On SQLite and PostgreSQL, without HTTP."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from acs.cwmp import faults, soap
from acs.cwmp import messages as m
from acs.services import fault_log, maintenance, task_specs, tasks
from acs.simulator.model import CpeModel
from tests.fake_cpe import FakeCpe
from tests.services.harness import ServiceCpe, count, rows, session

SAMPLES = Path(__file__).resolve().parents[2] / "soap_samples"
DEVICE = "00D09E-IGD-SN0001"
IGD = "InternetGatewayDevice"


@pytest.fixture
async def cpe(runtime, clock):
    c = ServiceCpe(runtime)
    await session(c, "0 BOOTSTRAP", "1 BOOT")
    return c


async def queue(runtime, clock, *specs: dict[str, Any], device: str = DEVICE) -> list[int]:
    queued = await tasks.queue(
        runtime.db,
        device,
        [task_specs.TASK_ADAPTER.validate_python(s) for s in specs],
        created_by="test",
        now=clock.dt,
        default_ttl=3600,
    )
    return [t["id"] for t in queued]


def sample(name: str, cwmp_id: str | None = None) -> bytes:
    """A sample's bytes; ``cwmp_id`` replaces the one it carries (the ACS's ids are random)."""
    body = (SAMPLES / name).read_bytes()
    if cwmp_id is not None:
        old = soap.parse_envelope(body).cwmp_id
        assert old is not None
        body = body.replace(f">{old}<".encode(), f">{cwmp_id}<".encode())
    return body


async def tree(runtime) -> dict[str, Any]:
    [(p,)] = await rows(runtime.db, "SELECT parameters FROM devices WHERE id = :d", d=DEVICE)
    return p if isinstance(p, dict) else json.loads(p)


# --- a CPE that starts over while the ACS waits for its answer, then sends that answer -------


async def test_an_answer_to_the_replaced_session_is_credited_and_the_new_session_lives(
    runtime, clock, cpe, db
):
    values, rpc = await queue(
        runtime,
        clock,
        {"name": "GetParameterValues", "parameter_names": [f"{IGD}.DeviceInfo."]},
        {"name": "GetRPCMethods"},
    )
    assert (await cpe.inform()).status == 200
    request = soap.parse_envelope((await cpe.post(b"")).body)
    assert isinstance(request.message, m.GetParameterValues)
    # the CPE starts a new session on the same connection...
    assert (await cpe.inform("6 CONNECTION REQUEST")).status == 200
    assert (await tasks.get(runtime.db, values))["status"] == "queued"  # put back
    # ...and then sends the answer to the request it had
    reply = await cpe.post(
        sample("57-getparametervalues-response-earlier-session.xml", request.cwmp_id)
    )
    assert reply.status == 200  # the session goes on: the next task
    assert isinstance(soap.parse_envelope(reply.body).message, m.GetRPCMethods)
    assert await count(db, "cwmp_sessions") == 1
    task = await tasks.get(runtime.db, values)
    assert task["status"] == "done"
    assert [p["name"] for p in task["result"]["parameter_list"]] == [
        f"{IGD}.DeviceInfo.UpTime",
        f"{IGD}.DeviceInfo.ProvisioningCode",
    ]
    assert (await tree(runtime))[f"{IGD}.DeviceInfo.ProvisioningCode"]["value"] == "ABCD.1234"
    # the rest of the session as usual
    assert (await cpe.post(cpe.fake.answer(reply.body))).status == 204
    assert (await tasks.get(runtime.db, rpc))["status"] == "done"


async def test_an_answer_to_no_request_is_dropped_and_the_session_lives(runtime, clock, cpe, db):
    [rpc] = await queue(runtime, clock, {"name": "GetRPCMethods"})
    assert (await cpe.inform()).status == 200
    reply = await cpe.post(sample("57-getparametervalues-response-earlier-session.xml"))
    assert reply.status == 200
    assert isinstance(soap.parse_envelope(reply.body).message, m.GetRPCMethods)
    assert f"{IGD}.DeviceInfo.ProvisioningCode" not in {
        k for k, v in (await tree(runtime)).items() if v.get("value") == "ABCD.1234"
    }
    assert (await cpe.post(cpe.fake.answer(reply.body))).status == 204
    assert (await tasks.get(runtime.db, rpc))["status"] == "done"
    assert await count(db, "cwmp_sessions") == 0


# --- a CPE back from FactoryReset with 1 BOOT only ------------------------------------------


def ont() -> FakeCpe:
    """A CPE with the DeviceId of sample 58."""
    envelope = soap.parse_envelope(sample("58-inform-after-factory-reset-1-boot.xml"))
    ident = envelope.message.device_id
    model = CpeModel(
        ident.manufacturer, ident.oui, ident.product_class, ident.serial_number, root=IGD
    )
    return FakeCpe(model)


async def test_factory_reset_completes_on_1_boot_alone(runtime, clock):
    cpe = ServiceCpe(runtime, ont())
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    device = "00E0FC-HG8245H-48575443B2C3D4E5"
    [reset] = await queue(runtime, clock, {"name": "FactoryReset"}, device=device)
    assert [type(r).__name__ for r in await session(cpe)] == ["FactoryReset"]
    assert (await tasks.get(runtime.db, reset))["status"] == "awaiting_boot"
    clock.now += 90
    assert (await cpe.post(sample("58-inform-after-factory-reset-1-boot.xml"))).status == 200
    task = await tasks.get(runtime.db, reset)
    assert task["status"] == "done"
    assert task["result"] == {"booted": "2027-01-15T08:01:30Z", "events": ["1 BOOT"]}


async def test_a_boot_timeout_says_what_the_device_did_instead(make_runtime, clock):
    rt = await make_runtime(boot_timeout=50)
    rt.cwmp.clock = clock
    cpe = ServiceCpe(rt)
    await session(cpe, "0 BOOTSTRAP")
    [reboot] = await queue(rt, clock, {"name": "Reboot"})
    clock.now += 10
    await session(cpe)
    sent = clock.dt
    clock.now += 20
    cpe.fake.model.pending_events.clear()  # it never rebooted...
    await session(cpe, "4 VALUE CHANGE")  # ...and informed of something else
    assert await maintenance.expire_tasks(rt.db, sent + timedelta(seconds=51)) == 1
    task = await tasks.get(rt.db, reboot)
    expected = (
        "Reboot sent 2027-01-15T08:00:10Z: no boot Inform in time; 1 Inform(s) since "
        "(0 with a boot event), the last at 2027-01-15T08:00:30Z with 4 VALUE CHANGE"
    )
    assert task["fault"] == {"code": faults.ACS_BOOT_TIMEOUT, "string": expected}
    [logged] = (await fault_log.list_faults(rt.db, task_id=reboot))[0]
    assert logged["string"] == expected


async def test_a_timeout_of_a_device_that_never_came_back(make_runtime, clock):
    rt = await make_runtime(transfer_timeout=100)
    rt.cwmp.clock = clock
    cpe = ServiceCpe(rt)
    await session(cpe, "0 BOOTSTRAP")
    [download] = await queue(
        rt,
        clock,
        {"name": "Download", "file_type": "1 Firmware Upgrade Image", "url": "http://f/fw"},
    )
    clock.now += 5
    await session(cpe)
    assert await maintenance.expire_tasks(rt.db, clock.dt + timedelta(seconds=101)) == 1
    task = await tasks.get(rt.db, download)
    assert task["fault"]["string"] == (
        "Download sent 2027-01-15T08:00:05Z: no TransferComplete in time; no Inform since"
    )


# --- AddObject/DeleteObject answered with a fault code in Status ---------------------------


@pytest.mark.parametrize(
    ("spec", "answer", "status"),
    [
        (
            {"name": "AddObject", "object_name": f"{IGD}.LANDevice.1.WLANConfiguration."},
            "59-addobject-response-fault-code-as-status.xml",
            9004,
        ),
        (
            {"name": "DeleteObject", "object_name": f"{IGD}.LANDevice.1.WLANConfiguration.1."},
            "60-deleteobject-response-fault-code-as-status.xml",
            9005,
        ),
    ],
)
async def test_an_object_status_other_than_0_or_1_is_a_fault(
    runtime, clock, cpe, spec, answer, status
):
    [task_id] = await queue(runtime, clock, spec)
    assert (await cpe.inform()).status == 200
    before = await tree(runtime)
    request = soap.parse_envelope((await cpe.post(b"")).body)
    assert type(request.message).__name__ == spec["name"]
    assert (await cpe.post(sample(answer, request.cwmp_id))).status == 204
    task = await tasks.get(runtime.db, task_id)
    name = f"{spec['name']}Response"
    message = f"{name} with Status {status} (only 0 or 1 are defined): taken as a failure"
    assert (task["status"], task["fault"]) == (
        "fault",
        {"code": faults.ACS_INVALID_RESPONSE, "string": message},
    )
    assert await tree(runtime) == before  # no bogus instance, nothing deleted
    [logged] = (await fault_log.list_faults(runtime.db, task_id=task_id))[0]
    assert (logged["code"], logged["source"], logged["string"]) == (
        faults.ACS_INVALID_RESPONSE,
        "acs",
        message,
    )


# --- CancelTransfer resolves the transfer it cancels ----------------------------------------


async def test_a_successful_cancel_transfer_cancels_the_transfer_task(runtime, clock, cpe):
    [scheduled] = await queue(
        runtime,
        clock,
        {
            "name": "ScheduleDownload",
            "command_key": "fw-2027",
            "file_type": "1 Firmware Upgrade Image",
            "url": "http://f.example/fw",
            "time_window_list": [{"window_start": 3600, "window_end": 7200}],
        },
    )
    await session(cpe)
    assert (await tasks.get(runtime.db, scheduled))["status"] == "awaiting_transfer"
    [cancel] = await queue(runtime, clock, {"name": "CancelTransfer", "command_key": "fw-2027"})
    assert (await cpe.inform()).status == 200
    request = soap.parse_envelope((await cpe.post(b"")).body)
    assert request.message == m.CancelTransfer("fw-2027")
    assert (await cpe.post(sample("41-canceltransfer-response.xml", request.cwmp_id))).status == 204
    assert (await tasks.get(runtime.db, scheduled))["status"] == "cancelled"
    done = await tasks.get(runtime.db, cancel)
    assert (done["status"], done["result"]) == ("done", {"cancelled_tasks": [scheduled]})


async def test_a_refused_cancel_transfer_leaves_the_transfer_waiting(runtime, clock, cpe):
    [download] = await queue(
        runtime,
        clock,
        {
            "name": "Download",
            "command_key": "fw-2",
            "file_type": "1 Firmware Upgrade Image",
            "url": "http://f.example/fw",
        },
    )
    await session(cpe)
    [cancel] = await queue(runtime, clock, {"name": "CancelTransfer", "command_key": "fw-2"})
    assert (await cpe.inform()).status == 200
    request = soap.parse_envelope((await cpe.post(b"")).body)
    refusal = soap.render_envelope(
        m.Fault(9021, "Cancelation of file transfer not permitted in current state"),
        namespace=soap.CWMP_NAMESPACES["1.2"],
        cwmp_id=request.cwmp_id,
    )
    assert (await cpe.post(refusal)).status == 204
    assert (await tasks.get(runtime.db, download))["status"] == "awaiting_transfer"
    assert (await tasks.get(runtime.db, cancel))["fault"]["code"] == 9021


# --- what the ACS sets goes into the tree, with its type ------------------------------------


async def test_values_the_acs_sets_are_recorded_with_their_types(runtime, clock, cpe):
    params = await tree(runtime)
    base = f"{IGD}.ManagementServer."
    assert params[base + "PeriodicInformInterval"]["value"] == 3600
    assert params[base + "PeriodicInformInterval"]["type"] == "xsd:unsignedInt"
    assert params[base + "PeriodicInformEnable"]["type"] == "xsd:boolean"
    assert params[base + "ConnectionRequestUsername"]["value"].startswith("cr-")
    # a secret: its type, not its value
    assert params[base + "ConnectionRequestPassword"]["value"] == ""
    assert params[base + "ConnectionRequestPassword"]["type"] == "xsd:string"
    # so the README's example goes out with the right type, and the CPE takes it
    [task_id] = await queue(
        runtime,
        clock,
        {
            "name": "SetParameterValues",
            "parameter_values": [{"name": base + "PeriodicInformInterval", "value": 600}],
        },
    )
    [spv] = await session(cpe)
    assert spv.parameter_list == (
        m.ParameterValueStruct(base + "PeriodicInformInterval", 600, "xsd:unsignedInt"),
    )
    assert (await tasks.get(runtime.db, task_id))["status"] == "done"
    assert cpe.fake.model.get(base + "PeriodicInformInterval") == 600
