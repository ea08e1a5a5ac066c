"""``acs tasks queue --connection-request --wait``, as the README writes it, against a real
``acs serve`` and an ``acs simulate`` device: the command pokes the device, which opens a
session at once and runs the task; the command prints the value and exits 0. The API's
audit log shows it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.test_simulate import _readme_command

DEVICE = "00D09E-IGD-SIM00000000"
SERIAL = "InternetGatewayDevice.DeviceInfo.SerialNumber"


def _acs(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "acs.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_tasks_queue_pokes_and_waits(acs, tmp_path: Path):
    # The command opens the connection-request password the server sealed: it needs the
    # server's secret key, as every command that runs beside `acs serve` gets its settings.
    env = {**acs.cli_env, "ACS_SECRET_KEY": "e2e-secret"}
    summary, log = tmp_path / "summary.json", tmp_path / "simulate.log"
    with log.open("wb") as err:
        simulate = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "acs.cli",
                "simulate",
                "--acs-url",
                acs.cwmp_url + "/acs",
                "--password",
                "cpe-secret",
                "--devices",
                "1",
                "--ramp",
                "0",
                "--duration",
                "300",
                "--json",
                str(summary),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 60
        while True:  # until its bootstrap session set its connection-request credentials
            shown = _acs(env, "devices", "show", DEVICE, "--json")
            if (
                shown.returncode == 0
                and json.loads(shown.stdout)["connection_request_credentials_set"]
            ):
                break
            assert time.monotonic() < deadline, shown.stderr + log.read_text()
            time.sleep(0.2)

        argv = _readme_command(".venv/bin/acs tasks queue")
        assert argv[:4] == [".venv/bin/acs", "tasks", "queue", DEVICE]
        run = _acs(env, *argv[1:])
        assert (run.returncode, run.stderr) == (0, ""), run.stdout
        header, row, poke, value = run.stdout.splitlines()
        assert header.split() == ["ID", "DEVICE", "NAME", "STATUS", "ATTEMPTS", "CREATED", "FAULT"]
        assert row.split()[1:5] == [DEVICE, "GetParameterValues", "done", "1"]
        assert re.fullmatch(r"connection request: ok \(http 200, [0-9.]+ ms\)", poke), poke
        assert value == f"  {SERIAL} = SIM00000000"
    finally:
        simulate.send_signal(signal.SIGTERM)
        assert simulate.wait(timeout=60) == 0, log.read_text()
    assert json.loads(summary.read_text())["sessions_failed"] == 0

    # the command is in the audit log the API shows, as its own requests are
    added = _acs(
        env,
        "operator",
        "add",
        "auditor",
        "--role",
        "admin",
        "--password-stdin",
        stdin="auditor-password\n",
    )
    assert added.returncode == 0, added.stderr
    with httpx.Client(base_url=acs.api_url, auth=("auditor", "auditor-password")) as api:
        entries = api.get("/api/v1/audit", params={"limit": 10}, timeout=30).json()["data"]
    queued = [e for e in entries if e["path"] == "acs tasks queue"]
    assert [(e["method"], e["status"], e["detail"]) for e in queued] == [
        (
            "CLI",
            200,
            {"device": DEVICE, "tasks": ["GetParameterValues"], "connection_request": True},
        )
    ]
    assert re.fullmatch(r"cli:\w+", queued[0]["operator"])
