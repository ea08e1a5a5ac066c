"""``acs simulate`` against a real ``acs serve``: a fleet bootstraps, then informs as devices
that are already running; the ACS ends up knowing every device and what it last said. A fleet
restarted from its state file still answers connection requests; the README's example of
queued tasks works on a simulated device as written."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import add_operator


def _simulate(cwmp_url: str, out: Path, *extra: str) -> dict:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "acs.cli",
            "simulate",
            "--acs-url",
            cwmp_url + "/acs",
            "--password",
            "cpe-secret",
            "--devices",
            "12",
            "--sessions",
            "1",
            "--ramp",
            "0",
            "--interval",
            "0",
            "--serial-prefix",
            "E2ESIM",
            "--json",
            str(out),
            *extra,
        ],
        capture_output=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr.decode()
    return json.loads(out.read_text())


def test_fleet_bootstraps_then_informs_as_running_devices(acs, tmp_path: Path):
    # what the devices keep in flash (their own CWMP credentials among it) across the restart
    state = str(tmp_path / "fleet.json")
    first = _simulate(acs.cwmp_url, tmp_path / "first.json", "--state", state)
    assert first["sessions_ok"] == 12 and first["sessions_failed"] == 0
    # bootstrap provisioning (connection-request credentials) and each device's own CWMP
    # credentials ran in those sessions
    assert first["acs_requests"].get("SetParameterValues", 0) == 24

    second = _simulate(acs.cwmp_url, tmp_path / "second.json", "--running", "--state", state)
    assert second["sessions_ok"] == 12 and second["sessions_failed"] == 0
    assert second["acs_requests"] == {}  # known, provisioned devices: empty sessions

    with httpx.Client(base_url=acs.api_url, auth=("ops", "ops-password"), timeout=30) as api:
        found = api.get("/api/v1/devices", params={"limit": 100}).json()
    devices = [d for d in found["data"] if d["serial_number"].startswith("E2ESIM")]
    assert len(devices) == 12
    assert all(d["last_events"] == ["2 PERIODIC"] for d in devices), devices[0]["last_events"]


def test_each_simulated_device_gets_its_own_pair_and_the_shared_one_is_refused_then(
    acs, tmp_path: Path
):
    from acs.simulator import datamodels
    from tests.fake_cpe import FakeCpe

    # two sessions each: the first gives the device its pair, the second uses it
    run = _simulate(acs.cwmp_url, tmp_path / "run.json", "--sessions", "2")
    assert run["sessions_ok"] == 24 and run["sessions_failed"] == 0
    with httpx.Client(base_url=acs.api_url, auth=("ops", "ops-password"), timeout=30) as api:
        found = api.get("/api/v1/devices", params={"limit": 100}).json()["data"]
    assert sorted((d["serial_number"], d["cwmp_credentials"]) for d in found) == [
        (f"E2ESIM{n:08d}", "own") for n in range(12)
    ]
    # the shared pair no longer admits those ids; a device new to the ACS still gets in
    with httpx.Client(base_url=acs.cwmp_url, timeout=30) as http:
        taken = FakeCpe(datamodels.gateway(found[0]["serial_number"])).inform("2 PERIODIC")
        shared = httpx.DigestAuth("acs", "cpe-secret")
        assert http.post("/acs", content=taken, auth=shared).status_code == 401
        new = FakeCpe(datamodels.gateway("E2ENEW01")).inform("0 BOOTSTRAP", "1 BOOT")
        assert http.post("/acs", content=new, auth=shared).status_code == 200


README = Path(__file__).resolve().parents[2] / "README.md"
CR_USERNAME = "InternetGatewayDevice.ManagementServer.ConnectionRequestUsername"


def _readme_command(prefix: str) -> list[str]:
    """The README's shell block that starts with ``prefix``, as argv (one command a block)."""
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(), re.S):
        if block.startswith(prefix):
            argv = shlex.split(block.replace("\\\n", " "))
            return argv[:-1] if argv[-1] == "&" else argv
    raise AssertionError(f"no block starting {prefix!r} in README.md")


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def _replaced(argv: list[str], **values: str) -> list[str]:
    out = list(argv)
    for name, value in values.items():
        out[out.index("--" + name.replace("_", "-")) + 1] = value
    return out


def _start_simulate(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "acs.cli", "simulate", *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _stop_simulate(proc: subprocess.Popen[bytes], summary: Path, log: Path) -> dict:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, log.read_text()
    return json.loads(summary.read_text())


def _wait_for(check, seconds: float = 30.0):
    """Poll ``check()`` until it returns something true (bounded)."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.1)


def test_readme_tasks_example_runs_against_acs_simulate(acs, tmp_path: Path):
    # both commands as the README writes them; only the addresses and passwords are this run's
    sim = _readme_command(".venv/bin/acs simulate")
    assert sim[:2] == [".venv/bin/acs", "simulate"]
    sim_args = _replaced(sim[2:], acs_url=acs.cwmp_url + "/acs", password="cpe-secret")
    curl = _readme_command("curl ")
    user, password = _option(curl, "-u").split(":", 1)
    header, value = _option(curl, "-H").split(": ", 1)
    url = next(a for a in curl if a.startswith("http://localhost:7557/"))
    body = _option(curl, "-d")
    device = url.split("/api/v1/devices/", 1)[1].split("/", 1)[0]
    assert device == "00D09E-IGD-SIM00000000"
    add_operator(acs.cli_env, user, "admin", password)

    summary, log = tmp_path / "summary.json", tmp_path / "simulate.log"
    proc = _start_simulate([*sim_args, "--json", str(summary)], log)
    try:
        with httpx.Client(auth=(user, password), timeout=60) as api:

            def provisioned() -> bool:
                r = api.get(f"{acs.api_url}/api/v1/devices/{device}")
                return r.status_code == 200 and r.json()["connection_request_credentials_set"]

            _wait_for(provisioned)  # its bootstrap session is over
            r = api.post(
                url.replace("http://localhost:7557", acs.api_url),
                content=body,
                headers={header: value},
            )
            assert r.status_code == 200, r.text
            reply = r.json()
            assert reply["connection_request"]["ok"] is True
            spv, gpv, _ = reply["data"]
            assert [(t["name"], t["status"], t["fault"]) for t in reply["data"]] == [
                ("SetParameterValues", "done", None),
                ("GetParameterValues", "done", None),
                ("Reboot", "done", None),
            ]
            assert spv["arguments"]["parameter_values"] == [
                {
                    "name": "InternetGatewayDevice.ManagementServer.PeriodicInformInterval",
                    "value": 600,
                    "type": "xsd:unsignedInt",
                }
            ]
            serial = {p["name"]: p["value"] for p in gpv["result"]["parameter_list"]}[
                "InternetGatewayDevice.DeviceInfo.SerialNumber"
            ]
            assert serial == "SIM00000000"
            found = api.get(f"{acs.api_url}/api/v1/devices/{device}").json()
            assert found["last_events"] == ["1 BOOT", "M Reboot"]
    finally:
        result = _stop_simulate(proc, summary, log)
    # bootstrap, the connection request's session, the boot after the Reboot
    assert (result["sessions_ok"], result["sessions_failed"]) == (3, 0)
    assert result["acs_requests"] == {
        # bootstrap provisioning, the device's own CWMP credentials, then the README's
        "SetParameterValues": 3,
        "GetParameterValues": 1,
        "Reboot": 1,
    }


def test_restarted_running_fleet_answers_connection_requests_without_a_new_bootstrap(
    acs, tmp_path: Path
):
    state = tmp_path / "fleet.json"
    first = _simulate(acs.cwmp_url, tmp_path / "first.json", "--state", str(state))
    assert (first["sessions_ok"], first["sessions_failed"]) == (12, 0)
    device = "00D09E-IGD-E2ESIM00000003"
    with httpx.Client(base_url=acs.api_url, auth=("ops", "ops-password"), timeout=60) as api:
        before = api.get(f"/api/v1/devices/{device}").json()
        kept = json.loads(state.read_text())["devices"][device]["parameters"]
        # what the ACS set at bootstrap is what the state file kept
        assert kept[CR_USERNAME]["value"] == before["parameters"][CR_USERNAME]["value"]

        summary, log = tmp_path / "second.json", tmp_path / "second.log"
        proc = _start_simulate(
            [
                "--acs-url",
                acs.cwmp_url + "/acs",
                "--password",
                "cpe-secret",
                "--devices",
                "12",
                "--serial-prefix",
                "E2ESIM",
                "--ramp",
                "0",
                "--duration",
                "300",
                "--running",
                "--state",
                str(state),
                "--json",
                str(summary),
            ],
            log,
        )
        try:
            # its first session (2 PERIODIC) reports this run's ConnectionRequestURL
            _wait_for(
                lambda: (
                    api.get(f"/api/v1/devices/{device}").json()["connection_request_url"]
                    != before["connection_request_url"]
                )
            )
            r = api.post(
                f"/api/v1/devices/{device}/tasks",
                params={"connection_request": "true", "wait": "10"},
                json={"name": "GetParameterValues", "parameter_names": [CR_USERNAME]},
            )
            assert r.status_code == 200, r.text
            reply = r.json()
            assert (
                reply["connection_request"]["ok"],
                reply["connection_request"]["status_code"],
            ) == (
                True,
                200,
            )
            [task] = reply["data"]
            assert (task["status"], task["fault"]) == ("done", None)
            assert task["result"]["parameter_list"] == [
                {"name": CR_USERNAME, "value": kept[CR_USERNAME]["value"], "type": "xsd:string"}
            ]
            after = api.get(f"/api/v1/devices/{device}").json()
            assert after["last_events"] == ["6 CONNECTION REQUEST"]
            assert after["last_bootstrap"] == before["last_bootstrap"]
        finally:
            second = _stop_simulate(proc, summary, log)
    # twelve periodic Informs and the connection request's session; no bootstrap provisioning
    assert (second["sessions_ok"], second["sessions_failed"]) == (13, 0)
    assert second["acs_requests"] == {"GetParameterValues": 1}
