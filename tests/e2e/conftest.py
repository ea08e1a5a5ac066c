"""End-to-end fixtures: ``acs serve`` as a real process on 127.0.0.1 sockets."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.serve import Process, add_operator, free_port, serve_acs
from tests.conftest import _truncate_pg


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Each phase's report on the test (``item.rep_call``...), for fixtures that keep
    evidence of a failure (the console's browser tests take a screenshot)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@dataclass
class Server:
    process: Process
    cwmp_url: str
    api_url: str
    cwmp_tls_url: str  # https://127.0.0.1:ACS_CWMP_TLS_PORT (served with a certificate)

    def output(self) -> str:
        return self.process.output()


def _start(env_overrides: dict[str, str], tmp_path: Path, name: str) -> Server:
    env = {
        **os.environ,
        "ACS_DATA_DIR": str(tmp_path / f"data-{name}"),
        "ACS_CWMP_PASSWORD": "cpe-secret",
        "ACS_SECRET_KEY": "e2e-secret",
        "ACS_LOG_LEVEL": "info",
        "ACS_CWMP_TLS_PORT": str(free_port()),
        **env_overrides,
    }
    log = tmp_path / f"server-{name}.log"
    # polled: a quick start waits no longer; a loaded machine starts two workers slowly
    process, cwmp_url, api_url = serve_acs(env, log, seconds=120)
    return Server(process, cwmp_url, api_url, f"https://127.0.0.1:{env['ACS_CWMP_TLS_PORT']}")


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(name: str = "a", **env: str) -> Server:
        server = _start({"ACS_" + k.upper(): v for k, v in env.items()}, tmp_path, name)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.process.stop(timeout=15)


@pytest.fixture
def pg_url(pg_database_url: str) -> str:
    """The test run's PostgreSQL database, emptied."""
    asyncio.run(_truncate_pg(pg_database_url))
    return pg_database_url


@pytest.fixture(params=["sqlite", "postgresql"])
def acs(request, start_server, tmp_path):
    """A running `acs serve` on either database, with an operator and a viewer."""
    env: dict[str, str] = {}
    if request.param == "postgresql":
        env["database_url"] = request.getfixturevalue("pg_url")
    server = start_server("a", **env)
    # the server's secret: on PostgreSQL the commands need it as the server does
    cli_env = {
        **os.environ,
        "ACS_DATA_DIR": str(tmp_path / "data-a"),
        "ACS_SECRET_KEY": "e2e-secret",
    }
    if "database_url" in env:
        cli_env["ACS_DATABASE_URL"] = env["database_url"]
    add_operator(cli_env, "ops", "operator", "ops-password")
    add_operator(cli_env, "eve", "viewer", "eve-password")
    server.cli_env = cli_env  # type: ignore[attr-defined]
    return server
