"""``acs simulate`` against a real ``acs serve``: a fleet bootstraps, then informs as devices
that are already running; the ACS ends up knowing every device and what it last said."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx


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
    first = _simulate(acs.cwmp_url, tmp_path / "first.json")
    assert first["sessions_ok"] == 12 and first["sessions_failed"] == 0
    # bootstrap provisioning ran in those sessions (connection-request credentials)
    assert first["acs_requests"].get("SetParameterValues", 0) >= 12

    second = _simulate(acs.cwmp_url, tmp_path / "second.json", "--running")
    assert second["sessions_ok"] == 12 and second["sessions_failed"] == 0
    assert second["acs_requests"] == {}  # known, provisioned devices: empty sessions

    with httpx.Client(base_url=acs.api_url, auth=("ops", "ops-password"), timeout=30) as api:
        found = api.get("/api/v1/devices", params={"limit": 100}).json()
    devices = [d for d in found["data"] if d["serial_number"].startswith("E2ESIM")]
    assert len(devices) == 12
    assert all(d["last_events"] == ["2 PERIODIC"] for d in devices), devices[0]["last_events"]
