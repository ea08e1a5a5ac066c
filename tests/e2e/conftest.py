"""End-to-end fixtures: ``acs serve`` as a real process on 127.0.0.1 sockets."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import _truncate_pg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    cwmp_url: str
    api_url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _start(env_overrides: dict[str, str], tmp_path: Path, name: str) -> Server:
    cwmp_port, api_port = free_port(), free_port()
    env = {
        **os.environ,
        "ACS_BIND": "127.0.0.1",
        "ACS_CWMP_PORT": str(cwmp_port),
        "ACS_API_PORT": str(api_port),
        "ACS_DATA_DIR": str(tmp_path / f"data-{name}"),
        "ACS_CWMP_PASSWORD": "cpe-secret",
        "ACS_SECRET_KEY": "e2e-secret",
        "ACS_LOG_LEVEL": "info",
        **env_overrides,
    }
    log = tmp_path / f"server-{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "acs.cli", "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{cwmp_port}", f"http://127.0.0.1:{api_port}", log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"acs serve exited with {process.returncode}:\n{server.output()}")
        try:
            if httpx.get(server.api_url + "/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"acs serve did not become healthy:\n{server.output()}")


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(name: str = "a", **env: str) -> Server:
        server = _start({"ACS_" + k.upper(): v for k, v in env.items()}, tmp_path, name)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
            try:
                server.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()


@pytest.fixture
def pg_url(pg_database_url: str) -> str:
    """The test run's PostgreSQL database, emptied."""
    asyncio.run(_truncate_pg(pg_database_url))
    return pg_database_url


def add_operator(server_env: dict[str, str], name: str, role: str, password: str) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "acs.cli",
            "operator",
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
        ],
        input=password.encode() + b"\n",
        env=server_env,
        capture_output=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr


@pytest.fixture(params=["sqlite", "postgresql"])
def acs(request, start_server, tmp_path):
    """A running `acs serve` on either database, with an operator and a viewer."""
    env: dict[str, str] = {}
    if request.param == "postgresql":
        env["database_url"] = request.getfixturevalue("pg_url")
    server = start_server("a", **env)
    cli_env = {**os.environ, "ACS_DATA_DIR": str(tmp_path / "data-a")}
    if "database_url" in env:
        cli_env["ACS_DATABASE_URL"] = env["database_url"]
    add_operator(cli_env, "ops", "operator", "ops-password")
    add_operator(cli_env, "eve", "viewer", "eve-password")
    server.cli_env = cli_env  # type: ignore[attr-defined]
    return server
