"""``acs tasks``: queue (simple forms and JSON, validated as the API validates), --wait and
its exit status against a device that really runs the tasks, list, show, cancel, retry."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from acs.config import Settings
from acs.services import operators, tasks
from acs.services.runtime import Runtime
from acs.simulator import datamodels
from tests.cli.conftest import SECRET_KEY, register
from tests.fake_cpe import FakeCpe
from tests.services.harness import Clock, ServiceCpe, session

GW = "00D09E-IGD-GW0001"
SERIAL = "InternetGatewayDevice.DeviceInfo.SerialNumber"
INTERVAL = "InternetGatewayDevice.ManagementServer.PeriodicInformInterval"
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


@pytest.fixture
def gateway(seed) -> str:
    async def work(runtime):
        return await register(runtime, "GW0001")

    return seed(work)


def _stored(seed) -> list[tuple[str, dict[str, Any], str, str | None]]:
    async def work(runtime):
        return (await tasks.list_tasks(runtime.db))[0]

    return [(t["name"], t["arguments"], t["status"], t["created_by"]) for t in seed(work)][::-1]


def test_simple_forms_queue_what_the_api_would(acs, seed, gateway):
    code, out, err = acs("tasks", "queue", GW, "Reboot")
    assert (code, err) == (0, "")
    header, row = out.splitlines()
    assert header.split() == ["ID", "DEVICE", "NAME", "STATUS", "ATTEMPTS", "CREATED", "FAULT"]
    assert re.fullmatch(rf"1   {GW}  Reboot  queued  0         {TIME}  -", row), row
    assert (
        acs("tasks", "queue", GW, "GetParameterValues", "--param", "A.", "--param", SERIAL)[0] == 0
    )
    assert (
        acs(
            "tasks",
            "queue",
            GW,
            "SetParameterValues",
            "--value",
            f"{INTERVAL}=600",
            "--value",
            "InternetGatewayDevice.X_Vendor.Note:xsd:string=a=b",
            "--arg",
            "parameter_key=k1",
        )[0]
        == 0
    )
    assert acs("tasks", "queue", GW, "ScheduleInform", "--arg", "delay_seconds=30")[0] == 0
    spec = '[{"name": "GetRPCMethods"}, {"name": "FactoryReset"}]'
    assert acs("tasks", "queue", GW, "--json-spec", "-", stdin=spec)[0] == 0
    actor = _stored(seed)[0][3]
    assert re.fullmatch(r"cli:\w+", actor or "")
    assert _stored(seed) == [
        ("Reboot", {"command_key": _stored(seed)[0][1]["command_key"]}, "queued", actor),
        ("GetParameterValues", {"parameter_names": ["A.", SERIAL]}, "queued", actor),
        (
            "SetParameterValues",
            {
                "parameter_values": [
                    # typed as the gateway reported it (bootstrap set it, with its type)
                    {"name": INTERVAL, "value": 600, "type": "xsd:unsignedInt"},
                    {
                        "name": "InternetGatewayDevice.X_Vendor.Note",
                        "value": "a=b",
                        "type": "xsd:string",
                    },
                ],
                "parameter_key": "k1",
            },
            "queued",
            actor,
        ),
        (
            "ScheduleInform",
            {"delay_seconds": 30, "command_key": _stored(seed)[3][1]["command_key"]},
            "queued",
            actor,
        ),
        ("GetRPCMethods", {}, "queued", actor),
        ("FactoryReset", {}, "queued", actor),
    ]
    assert re.fullmatch(r"acs-[0-9a-f]{16}", _stored(seed)[0][1]["command_key"])


@pytest.mark.parametrize(
    ("argv", "stdin", "code", "message"),
    [
        (("Rebot",), "", 1, "task: unknown task name 'Rebot'; did you mean Reboot?"),
        (("GetParameterValues",), "", 1, "task: parameter_names (--param): field required"),
        (
            ("Download", "--arg", "url=http://x/fw.bin"),
            "",
            1,
            "task: file_type: required with url",
        ),
        (
            ("SetParameterValues", "--value", "A.B:xsd:unsignedInt=-1"),
            "",
            1,
            "task: parameter_values.0: -1 is out of range for xsd:unsignedInt (0..4294967295)",
        ),
        (
            ("--json-spec", '[{"name": "Reboot"}, {"name": "AddObject", "objectname": "A."}]'),
            "",
            1,
            "tasks[1]: unknown field 'objectname'; did you mean 'object_name'?",
        ),
        (
            ("--json-spec", "{nope"),
            "",
            1,
            "--json-spec: not valid JSON at character 1: "
            "Expecting property name enclosed in double quotes",
        ),
        (("--json-spec", "[]"), "", 1, "task: no tasks given"),
        (("--json-spec", '"Reboot"'), "", 1, "task: should be an object or a list"),
        ((), "", 2, "give the task: TASK (Reboot, GetParameterValues, ...) or --json-spec"),
        (
            ("Reboot", "--json-spec", '{"name": "Reboot"}'),
            "",
            2,
            "give the task as TASK and flags, or as --json-spec, not both",
        ),
        (("Reboot", "--arg", "name=x"), "", 2, "give name as TASK"),
        (
            ("GetParameterValues", "--arg", "parameter_names=A."),
            "",
            2,
            "give parameter_names as --param",
        ),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else None,
)
def test_a_task_refused_says_each_mistake(acs, seed, gateway, where, argv, stdin, code, message):
    assert acs("tasks", "queue", GW, *argv, stdin=stdin) == (code, "", message + where + "\n")
    assert _stored(seed) == []


def test_a_task_for_no_device(acs, where):
    assert acs("tasks", "queue", "nope", "Reboot") == (1, "", f"no device 'nope'{where}\n")


def _device_session(settings: Settings, queued: int) -> threading.Thread:
    """A thread that, once ``queued`` tasks are queued, runs the gateway's next session
    (its own runtime, its own event loop: another process, as far as the command knows)."""
    failure: list[BaseException] = []

    async def work() -> None:
        runtime = await Runtime.start(settings, migrate_sqlite=False)
        try:
            deadline = time.monotonic() + 30
            while (await tasks.list_tasks(runtime.db, status="queued"))[1] < queued:
                assert time.monotonic() < deadline, "the command queued nothing"
                await asyncio.sleep(0.02)
            runtime.cwmp.clock = Clock(time.time())
            fake = FakeCpe(datamodels.gateway("GW0001"))
            await session(ServiceCpe(runtime, fake), "2 PERIODIC")
        finally:
            await runtime.close()

    def run() -> None:
        try:
            asyncio.run(work())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.failure = failure  # type: ignore[attr-defined]
    thread.start()
    return thread


def _joined(thread: threading.Thread) -> None:
    thread.join(60)
    assert not thread.is_alive()
    if thread.failure:  # type: ignore[attr-defined]
        raise thread.failure[0]  # type: ignore[attr-defined]


def test_wait_until_done_prints_the_values(acs, gateway, cli_settings):
    device = _device_session(cli_settings, 1)
    code, out, err = acs(
        "tasks", "queue", GW, "GetParameterValues", "--param", SERIAL, "--wait", "30"
    )
    _joined(device)
    assert (code, err) == (0, "")
    _, row, value = out.splitlines()
    assert re.fullmatch(rf"1   {GW}  GetParameterValues  done    1         {TIME}  -", row), row
    assert value == f"  {SERIAL} = GW0001"


def test_wait_exits_1_when_a_task_faults(acs, gateway, cli_settings):
    device = _device_session(cli_settings, 1)
    code, out, err = acs(
        "tasks",
        "queue",
        GW,
        "GetParameterValues",
        "--param",
        "Nothing.Here",
        "--wait",
        "30",
        "--json",
    )
    _joined(device)
    assert (code, err) == (1, "")
    answer = json.loads(out)
    assert answer["connection_request"] is None
    [task] = answer["data"]
    assert (task["status"], task["fault"]["code"]) == ("fault", 9005)


def test_wait_exits_3_when_time_runs_out(acs, gateway):
    code, out, err = acs("tasks", "queue", GW, "Reboot", "--connection-request", "--wait", "0.3")
    assert code == 3
    assert out.splitlines()[2] == (
        "connection request: failed (none): no way to reach the device (http: the device "
        "reported no ConnectionRequestURL; udp: no STUN binding and no "
        "UDPConnectionRequestAddress; xmpp: XMPP is off (ACS_XMPP_JID))"
    )
    assert err == "not finished within 0.3 s: task 1 (queued)\n"


def test_list_show_cancel_retry(acs, seed, gateway, where):
    for name in ("Reboot", "GetRPCMethods", "FactoryReset"):
        assert acs("tasks", "queue", GW, name)[0] == 0
    code, out, err = acs("tasks", "list", "--name", "GetRPCMethods")
    assert (code, err) == (0, "")
    assert [line.split()[:4] for line in out.splitlines()] == [
        ["ID", "DEVICE", "NAME", "STATUS"],
        ["2", GW, "GetRPCMethods", "queued"],
    ]
    code, out, err = acs("tasks", "list", "--limit", "2", "--json")
    page = json.loads(out)
    assert (page["count"], [t["id"] for t in page["data"]]) == (3, [3, 2])
    assert err == ""  # --json: the count is in the page

    code, out, err = acs("tasks", "cancel", "2")
    assert (code, err) == (0, "")
    assert re.search(r"^status: +cancelled$", out, re.M)
    assert acs("tasks", "cancel", "2") == (1, "", f"task 2 is already cancelled{where}\n")
    assert acs("tasks", "retry", "1") == (
        1,
        "",
        f"task 1 is queued; only fault, expired or cancelled tasks can be retried{where}\n",
    )
    retried = json.loads(acs("tasks", "retry", "2", "--json")[1])
    assert (retried["id"], retried["status"], retried["attempts"]) == (2, "queued", 0)
    shown = json.loads(acs("tasks", "show", "2", "--json")[1])
    assert shown == retried
    assert acs("tasks", "show", "9") == (1, "", f"no task 9{where}\n")
    assert acs("tasks", "list", "--status", "cancelled") == (0, "", "")


def test_an_interrupted_wait_leaves_the_tasks_queued_and_audited(
    gateway, seed, cli_settings, tmp_path
):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ACS_")},
        "ACS_DATABASE_URL": cli_settings.resolved_database_url,
        "ACS_DATA_DIR": str(tmp_path / "data"),
        "ACS_SECRET_KEY": SECRET_KEY,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "acs.cli", "tasks", "queue", GW, "Reboot", "--wait", "600"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )

    async def audit(runtime):
        return (await operators.list_audit(runtime.db))[0]

    deadline = time.monotonic() + 60
    while not seed(audit):  # queued, and audited before the wait
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out, err) == (130, b"", b"")
    [entry] = seed(audit)
    assert (entry["path"], entry["status"], entry["detail"]) == (
        "acs tasks queue",
        200,
        {"device": GW, "tasks": ["Reboot"], "connection_request": False},
    )
    assert [(name, status) for name, _, status, _ in _stored(seed)] == [("Reboot", "queued")]


def test_log_level_shows_what_the_command_did(gateway, cli_settings, tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ACS_")},
        "ACS_DATABASE_URL": cli_settings.resolved_database_url,
        "ACS_DATA_DIR": str(tmp_path / "data"),
        "ACS_SECRET_KEY": SECRET_KEY,
    }
    argv = [sys.executable, "-m", "acs.cli", "tasks", "queue", GW, "Reboot"]
    quiet = subprocess.run(
        [*argv, "--connection-request"], cwd=tmp_path, env=env, capture_output=True, check=False
    )
    assert (quiet.returncode, quiet.stderr) == (0, b"")
    logged = subprocess.run(
        [*argv, "--connection-request", "--log-level", "info"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert logged.returncode == 0
    [line] = logged.stderr.splitlines()
    assert line.endswith(
        f" INFO acs.connreq: connection request device={GW} via=none outcome=failed "
        'error="no way to reach the device (http: the device reported no ConnectionRequestURL; '
        "udp: no STUN binding and no UDPConnectionRequestAddress; xmpp: XMPP is off "
        '(ACS_XMPP_JID))"'
    ), line
