"""Shared fixtures. Every storage test runs on SQLite and on PostgreSQL.

PostgreSQL is ``ACS_TEST_POSTGRES_URL`` (default: the server on 127.0.0.1:5432, user
postgres). Each test run creates its own database there and drops it at the end. When the
server is absent the PostgreSQL cases skip with the reason, unless
``ACS_TEST_REQUIRE_POSTGRES=1`` (set by CI), which turns the absence into a failure.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from acs.config import Settings
from acs.db import migrate
from acs.db.engine import Database
from acs.services import presets
from acs.services.runtime import Runtime

PG_ADMIN_URL = os.environ.get(
    "ACS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_PG = os.environ.get("ACS_TEST_REQUIRE_POSTGRES", "") not in ("", "0", "false")

BACKENDS = ["sqlite", "postgresql"]


async def _pg_reachable() -> str | None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # any failure to connect means "absent"
        return f"{type(exc).__name__}: {exc}"
    finally:
        await engine.dispose()


async def _create_pg_database(name: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()


async def _drop_pg_database(name: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await engine.dispose()


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await migrate.upgrade(db)
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A migrated PostgreSQL database for this test run."""
    problem = asyncio.run(_pg_reachable())
    if problem is not None:
        message = f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({problem})"
        if REQUIRE_PG:
            pytest.fail(message + " and ACS_TEST_REQUIRE_POSTGRES is set", pytrace=False)
        pytest.skip(message)
    name = f"acs_test_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(_create_pg_database(name))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        asyncio.run(_migrate(url))
        yield url
    finally:
        asyncio.run(_drop_pg_database(name))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating each time is slow)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


async def _truncate_pg(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            # A connection an earlier test left open (a runtime not closed, a loop that died
            # mid-transaction) may hold locks TRUNCATE waits on for ever: end them, and fail
            # within seconds rather than hang if something still holds a lock.
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            await conn.execute(text("SET LOCAL lock_timeout = '20s'"))
            tables = (
                await conn.execute(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                        "AND tablename <> 'alembic_version'"
                    )
                )
            ).scalars()
            names = ", ".join(f'"{t}"' for t in tables)
            if names:
                await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            # what migrations seed, as they leave it
            await presets.seed_default(conn, datetime.now(UTC))
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database of the test's backend."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "acs.db"
        shutil.copyfile(template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("pg_database_url")
    asyncio.run(_truncate_pg(url))
    return url


def make_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": tmp_path / "data",
        "cwmp_password": "cpe-secret",
        "secret_key": "test-secret-key",
        # sessions as scripted before devices got their own CWMP credentials (on by default
        # for new installs: tests/services/test_device_credentials.py and the e2e servers)
        "cwmp_device_credentials": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = await Runtime.start(settings, migrate_sqlite=False)
    try:
        yield rt
    finally:
        await rt.close()


@pytest.fixture
async def db(runtime: Runtime) -> Database:
    return runtime.db


@pytest.fixture
async def make_runtime(
    database_url: str, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[Runtime]]]:
    """Start a runtime with settings overrides (on the test's backend)."""
    started: list[Runtime] = []

    async def make(**overrides: Any) -> Runtime:
        rt = await Runtime.start(
            make_settings(database_url, tmp_path, **overrides), migrate_sqlite=False
        )
        started.append(rt)
        return rt

    yield make
    for rt in started:
        await rt.close()


@pytest.fixture
def own_postgres() -> Iterator[Any]:
    """A PostgreSQL server of this test's own (see tests/own_postgres.py), started."""
    from tests.own_postgres import OwnPostgres, server_binaries

    binaries = server_binaries()
    if binaries is None:
        message = "PostgreSQL's server binaries (initdb, postgres) are not installed"
        if REQUIRE_PG:
            pytest.fail(message + " and ACS_TEST_REQUIRE_POSTGRES is set", pytrace=False)
        pytest.skip(message)
    server = OwnPostgres(binaries)
    try:
        server.start()
        yield server
    finally:
        server.stop()
