"""``acs rollouts``: create (the API's filter flags and a task as for ``tasks queue``),
list, show, stop."""

from __future__ import annotations

import json
import re

import pytest

from acs.services import tasks
from tests.cli.conftest import register

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


@pytest.fixture
def fleet(seed) -> None:
    async def work(runtime):
        await register(runtime, "GW0001")
        await register(runtime, "GW0002")
        await register(runtime, "GW0003", software_version="2.0.0")

    seed(work)


def test_create_show_stop(acs, seed, fleet, where):
    code, out, err = acs(
        "rollouts",
        "create",
        "reboot-1.0",
        "Reboot",
        "--software-version",
        "1.0.0",
        "--wave-size",
        "1",
        "--connection-request",
    )
    assert (code, err) == (0, "")
    assert re.fullmatch(
        "id:                 1\n"
        "name:               reboot-1.0\n"
        "status:             running\n"
        "reason:             -\n"
        'task:               {"name":"Reboot","command_key":null}\n'
        'filter:             {"software_version":"1.0.0"}\n'
        "wave size:          1\n"
        "failure threshold:  0.1\n"
        "connection request: yes\n"
        "wave:               1 of 2\n"
        "targets:            2\n"
        "done:               0\n"
        "failed:             0\n"
        "pending:            2\n"
        f"created:            {TIME}\n"
        r"created by:         cli:\w+" + "\n"
        "finished:           -\n"
        "\n"
        "WAVE  TARGETS  DONE  FAILED  PENDING\n"
        "1     1        0     0       1\n"
        "2     1        0     0       1\n"
        # the gateways report no ConnectionRequestURL
        "connection requests: 0 of 1 answered\n",
        out,
    ), out

    async def queued(runtime):
        return [(t["device_id"], t["name"]) for t in (await tasks.list_tasks(runtime.db))[0]]

    assert seed(queued) == [("00D09E-IGD-GW0001", "Reboot")]

    code, out, err = acs("rollouts", "list")
    assert out.splitlines()[0].split() == [
        "ID",
        "NAME",
        "TASK",
        "STATUS",
        "WAVE",
        "TARGETS",
        "DONE",
        "FAILED",
        "PENDING",
        "CREATED",
    ]
    assert out.splitlines()[1].split()[:9] == [
        "1",
        "reboot-1.0",
        "Reboot",
        "running",
        "1/2",
        "2",
        "0",
        "0",
        "2",
    ]
    stopped = json.loads(acs("rollouts", "stop", "1", "--json")[1])
    assert (stopped["status"], stopped["progress"]) == (
        "stopped",
        {"done": 0, "failed": 1, "pending": 1},  # the queued task cancelled; wave 2 waits
    )
    assert re.fullmatch(r"stopped by cli:\w+", stopped["reason"])
    assert json.loads(acs("rollouts", "show", "1", "--json")[1]) == stopped
    assert acs("rollouts", "stop", "1") == (1, "", f"rollout 1 is stopped{where}\n")
    assert acs("rollouts", "show", "7") == (1, "", f"no rollout 7{where}\n")


def test_a_rollout_with_no_target_is_done_at_once(acs, fleet):
    code, out, _ = acs(
        "rollouts",
        "create",
        "none",
        "GetParameterValues",
        "--param",
        "InternetGatewayDevice.DeviceInfo.",
        "--tag",
        "nowhere",
        "--wave-size",
        "10",
        "--json",
    )
    rollout = json.loads(out)
    assert (code, rollout["status"], rollout["reason"], rollout["targets"]) == (
        0,
        "done",
        "no device matched the filter",
        0,
    )
    assert rollout["task"] == {
        "name": "GetParameterValues",
        "parameter_names": ["InternetGatewayDevice.DeviceInfo."],
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("r", "Reboot", "--wave-size", "0"),
            "rollout: wave_size (--wave-size): Input should be greater than or equal to 1",
        ),
        (
            ("r", "Reboot", "--wave-size", "5", "--failure-threshold", "2", "--task-ttl", "5"),
            "rollout: failure_threshold (--failure-threshold): Input should be less than or "
            "equal to 1; task_ttl (--task-ttl): Input should be greater than or equal to 60",
        ),
        (
            ("r", "--json-spec", '[{"name": "Reboot"}]', "--wave-size", "5"),
            "task: should be an object",
        ),
        (
            ("r", "Rebooot", "--wave-size", "5"),
            "task: unknown task name 'Rebooot'; did you mean Reboot?",
        ),
    ],
)
def test_a_rollout_refused_queues_nothing(acs, seed, fleet, where, argv, message):
    assert acs("rollouts", "create", *argv) == (1, "", message + where + "\n")

    async def nothing(runtime):
        return (await tasks.list_tasks(runtime.db))[1]

    assert seed(nothing) == 0
    assert acs("rollouts", "list") == (0, "", "")
