"""`acs simulate` as a command: its help, its signals, its state file; no ACS needed."""

from __future__ import annotations

import argparse
import json
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from acs.cli import build_parser
from acs.simulator.fleet import FleetConfig


def _simulate_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices["simulate"]


def test_help_gives_every_option_its_default():
    parser = _simulate_parser()
    options = [a for a in parser._actions if a.dest != "help"]
    assert len(options) == 23  # with --boot-seconds, --stun, --xmpp, --xmpp-ca
    for action in options:
        assert action.help and "(default: " in action.help, action.option_strings
        if "%(default)s" in action.help:
            assert action.default is not None, action.option_strings
    text = parser.format_help()
    assert "--interval wins" in text
    assert "(default: 500)" in text  # --concurrency, rendered
    assert f"every {FleetConfig.state_every:g} s" in " ".join(text.split())


def test_interval_forces_only_when_given():
    parser = build_parser()
    assert parser.parse_args(["simulate"]).interval is None
    assert parser.parse_args(["simulate", "--interval", "5"]).interval == 5.0


def _start(tmp_path: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "acs.cli",
            "simulate",
            "--acs-url",
            "http://127.0.0.1:9/acs",  # never reached: the ramp outlasts the test
            "--devices",
            "3",
            "--ramp",
            "3600",
            "--duration",
            "600",
            "--json",
            str(tmp_path / "summary.json"),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for_progress(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Until the first live line (the fleet runs, its signal handlers are in place)."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], deadline - time.monotonic())
        if ready:
            line = proc.stderr.readline()
            assert line, f"exited with {proc.wait()}"
            if b" ok " in line:
                return
    proc.kill()
    raise AssertionError("no progress line in time")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_run_with_its_summary_and_state(tmp_path: Path, sig: signal.Signals):
    state = tmp_path / "fleet.json"
    proc = _start(tmp_path, "--state", str(state))
    _wait_for_progress(proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert b"stopping: sessions in flight finish (signal again: cancel)" in err
    assert b"Traceback" not in err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["sessions_ok"], summary["sessions_failed"]) == (0, 0)
    assert summary["config"]["state"] == str(state)
    kept = json.loads(state.read_text())["devices"]
    assert sorted(kept) == [f"00D09E-IGD-SIM0000000{i}" for i in range(3)]
    # the one change from the factory model: the fleet's starting interval
    interval = "InternetGatewayDevice.ManagementServer.PeriodicInformInterval"
    assert {
        name: p["value"] for name, p in kept["00D09E-IGD-SIM00000000"]["parameters"].items()
    } == {interval: 60}


def test_an_unusable_state_file_is_refused(tmp_path: Path):
    state = tmp_path / "fleet.json"
    state.write_text("[]")
    proc = _start(tmp_path, "--state", str(state))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert err.decode() == f"state file: {state} is not an acs simulate state file (format 1)\n"
    assert state.read_text() == "[]"  # left as it was
