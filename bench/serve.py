"""`acs serve` and the `acs` command as child processes on free ports of 127.0.0.1.

Shared by the benchmark and the end-to-end tests (``tests/e2e/conftest.py`` imports it;
bench never imports tests), so both start a server, wait for it and stop it the same way.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_PICK = random.Random()


def _asked_ports() -> range | None:
    """``ACS_BENCH_PORTS=LOW-HIGH``: the ports this host lets the benchmark use (when others
    share it), or ``None``."""
    asked = os.environ.get("ACS_BENCH_PORTS", "")
    low, _, high = asked.partition("-")
    if not (low.isdigit() and high.isdigit()):
        return None
    return range(int(low), int(high) + 1)


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    """A port of ``host`` free now, TCP (or UDP: ``kind=socket.SOCK_DGRAM``), below the
    kernel's ephemeral range: a port the kernel hands out could be taken by some outgoing
    connection (a database's, a client's) before the server binds it (seen: a dual-stack
    server refused a port a connection on 127.0.0.1 had taken meanwhile). Within
    ``ACS_BENCH_PORTS`` (LOW-HIGH) when set."""
    asked = _asked_ports()
    if asked is not None:
        for port in _PICK.sample(asked, len(asked)):
            with socket.socket(socket.AF_INET, kind) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
                return port
        raise OSError(f"no free port in ACS_BENCH_PORTS={os.environ['ACS_BENCH_PORTS']}")
    low = min(_ephemeral_low(), 65536)
    for _ in range(100):
        port = _PICK.randrange(10_000, low) if low > 10_000 else 0
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    """A server process whose output goes to ``log``."""

    popen: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, argv: list[str], env: dict[str, str], log: Path) -> Process:
        with log.open("ab") as out:
            popen = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        return cls(popen, log)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_serving(self, url: str, seconds: float = 60) -> None:
        """Return once a GET of ``url`` answers 2xx; if the process exits first, or does
        not answer in time (it is killed then), raise with the end of its log."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.popen.args!r} exited with {self.popen.returncode}; "
                    f"{self.log}:\n{self.output()[-4000:]}"
                )
            try:
                if httpx.get(url, timeout=1).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.popen.kill()
        self.popen.wait()
        raise RuntimeError(f"no answer at {url}; {self.log}:\n{self.output()[-4000:]}")

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (a graceful shutdown), then SIGKILL after ``timeout`` seconds."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def serve_acs(
    env: dict[str, str], log: Path, *, seconds: float = 60, host: str = "127.0.0.1"
) -> tuple[Process, str, str]:
    """`acs serve` with ``env`` on free ports of ``host``, once its /healthz answers: the
    process and the base URLs of its CWMP (HTTP) and API listeners. The HTTPS port, used
    only with a certificate in ``env``, is free too unless ``env`` names it."""
    cwmp, api = free_port(host), free_port(host)
    env = {"ACS_CWMP_TLS_PORT": str(free_port(host)), **env}
    env = {**env, "ACS_BIND": host, "ACS_CWMP_PORT": str(cwmp), "ACS_API_PORT": str(api)}
    process = Process.start([sys.executable, "-m", "acs.cli", "serve"], env, log)
    api_url = f"http://{host}:{api}"
    process.wait_serving(api_url + "/healthz", seconds)
    return process, f"http://{host}:{cwmp}", api_url


def acs_cli(env: dict[str, str], *args: str, stdin: bytes | None = None) -> bytes:
    """Run ``acs ARGS``; its output, or RuntimeError with its stderr if it failed."""
    run = subprocess.run(
        [sys.executable, "-m", "acs.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )
    if run.returncode:
        raise RuntimeError(f"acs {' '.join(args)}: {run.stderr.decode(errors='replace')}")
    return run.stdout


def add_operator(env: dict[str, str], name: str, role: str, password: str) -> None:
    acs_cli(
        env,
        "operator",
        "add",
        name,
        "--role",
        role,
        "--password-stdin",
        stdin=f"{password}\n".encode(),
    )
