"""``acs`` commands in process against the test's database (SQLite and PostgreSQL), with
the world they act on made through the services (devices by real CWMP sessions)."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from acs.cli import main
from acs.config import Settings
from acs.services import operators
from acs.services.runtime import Runtime
from acs.simulator import datamodels
from tests.conftest import make_settings
from tests.fake_cpe import FakeCpe, device_id
from tests.services.harness import Clock, ServiceCpe, session

Run = Callable[..., tuple[int, str, str]]
Seed = Callable[[Callable[[Runtime], Awaitable[Any]]], Any]

NOW = datetime(2020, 1, 1, tzinfo=UTC)
SECRET_KEY = "test-secret-key"
CPE_PASSWORD = "cpe-secret"


@pytest.fixture
def cli_settings(database_url: str, tmp_path: Path) -> Settings:
    """The settings the commands run with (the same the seeding runtime uses)."""
    return make_settings(database_url, tmp_path)


@pytest.fixture
def acs_anywhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Run:
    """``acs ARGS`` in process, in an empty working directory, with no ACS_* setting but the
    test's secrets: its exit code, standard output and standard error."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("ACS_") and not name.startswith("ACS_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ACS_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("ACS_CWMP_PASSWORD", CPE_PASSWORD)

    def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def acs(
    acs_anywhere: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str
) -> Run:
    """``acs ARGS`` in process on the test's database (ACS_DATABASE_URL, ACS_DATA_DIR)."""
    monkeypatch.setenv("ACS_DATABASE_URL", database_url)
    monkeypatch.setenv("ACS_DATA_DIR", str(tmp_path / "data"))
    return acs_anywhere


@pytest.fixture
def where(database_url: str, tmp_path: Path) -> str:
    """What every error line ends with: the database and data dir used."""
    masked = make_url(database_url).render_as_string(hide_password=True)
    return f" (database {masked}, data dir {tmp_path}/data)"


async def with_runtime(settings: Settings, work: Callable[[Runtime], Awaitable[Any]]) -> Any:
    runtime = await Runtime.start(settings, migrate_sqlite=False)
    try:
        return await work(runtime)
    finally:
        await runtime.close()


@pytest.fixture
def seed(cli_settings: Settings) -> Seed:
    """Run ``work(runtime)`` on the test's database, on an event loop of its own (the
    commands run theirs): what a test sets up before a command, or checks after it."""

    def run(work: Callable[[Runtime], Awaitable[Any]]) -> Any:
        return asyncio.run(with_runtime(cli_settings, work))

    return run


# When registered devices informed: far ahead, so that they are online whenever the tests
# run, and their times in tables are known.
INFORMED = 4_000_000_000.0
INFORMED_AT = "2096-10-02T07:06:40Z"


async def register(
    runtime: Runtime, serial: str, *, at: float = INFORMED, host: str = "192.0.2.10", **model: Any
) -> str:
    """A gateway's first session (bootstrap provisioning included) at ``at``; its id."""
    fake = FakeCpe(datamodels.gateway(serial, **model))
    runtime.cwmp.clock = Clock(at)
    await session(ServiceCpe(runtime, fake, host=host), "0 BOOTSTRAP", "1 BOOT")
    return device_id(fake)


async def api_get(runtime: Runtime, path: str) -> Any:
    """GET ``path`` of the management API as the admin ``api`` (created if needed)."""
    from acs.web.api_app import create_api_app

    if "api" not in [o["name"] for o in await operators.list_operators(runtime.db)]:
        await operators.create_operator(runtime.db, "api", "admin", "api-password", NOW)
    transport = httpx.ASGITransport(app=create_api_app(runtime))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api", auth=("api", "api-password")
    ) as client:
        answer = await client.get(path)
    assert answer.status_code == 200, answer.text
    return answer.json()
