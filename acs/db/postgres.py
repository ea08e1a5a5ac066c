"""PostgreSQL, to scale out: several workers and nodes on one database.

Connections are kept, not made per burst: each worker keeps a pool of ``pool_size``
connections and by default opens none beyond it. SQLAlchemy closes an overflow connection
when it is returned to a full pool, and under a steady load past the pool that meant a new
PostgreSQL backend (a fork, authentication, every statement prepared again) every few dozen
sessions (measured: 92 in 8 s).

``hot_write()`` takes a connection from that pool and runs the transaction on the asyncpg
connection itself (``driver_connection``, asyncpg's own ``transaction()``): public API of
both, and SQLAlchemy runs nothing on it meanwhile. A connection that breaks is invalidated,
so the pool replaces it.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import QueuePool

from acs.db import hot
from acs.db.engine import Database
from acs.db.errors import DRIVER_ERRORS, StorageError, causes
from acs.db.types import json_dumps, json_loads

log = logging.getLogger("acs.db")


class PostgresDatabase(Database):
    """See the module docstring."""

    def __init__(self, url: str, *, pool_size: int = 20, max_overflow: int = 0, echo: bool = False):
        self.url = url
        self.dialect = "postgresql"
        self.engine = create_async_engine(
            url,
            echo=echo,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=False,
            json_serializer=json_dumps,
            json_deserializer=json_loads,
        )

    def pool_connections(self) -> tuple[int, int] | None:
        pool = self.engine.sync_engine.pool
        if isinstance(pool, QueuePool):
            return pool.checkedout(), pool.checkedin()
        return None

    def _unavailable(self, exc: Exception) -> str:
        url = make_url(self.url)
        server = f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432}"
        for cause in causes(exc):
            if isinstance(cause, asyncpg.InvalidCatalogNameError):
                createdb = " ".join(
                    ["createdb"]
                    + ([f"-h {url.host}"] if url.host else [])
                    + ([f"-p {url.port}"] if url.port else [])
                    + ([f"-U {url.username}"] if url.username else [])
                    + [str(url.database)]
                )
                return (
                    f"{server} has no database {url.database!r}: create it ({createdb}), "
                    "or fix the database name in ACS_DATABASE_URL"
                )
            if isinstance(cause, asyncpg.InvalidAuthorizationSpecificationError):
                return f"{server} refused user {url.username!r} ({cause}): fix ACS_DATABASE_URL"
            if isinstance(cause, asyncpg.InvalidPasswordError):
                return (
                    f"{server} refused the password of {url.username!r}: fix the password in "
                    "ACS_DATABASE_URL"
                )
            if isinstance(cause, socket.gaierror):
                return f"cannot resolve the host {url.host!r} of ACS_DATABASE_URL: fix the host"
            if isinstance(cause, ConnectionRefusedError):
                return (
                    f"cannot reach {server}: connection refused; start PostgreSQL, or fix the "
                    "host and port in ACS_DATABASE_URL"
                )
            if isinstance(cause, TimeoutError):
                return (
                    f"cannot reach {server}: no answer in time; start PostgreSQL, or fix the "
                    "host and port in ACS_DATABASE_URL"
                )
            if isinstance(cause, OSError):
                return (
                    f"cannot reach {server}: {cause.strerror or cause}; start PostgreSQL, or "
                    "fix the host and port in ACS_DATABASE_URL"
                )
            if isinstance(cause, asyncpg.PostgresError):
                return f"{server} refused the connection: {cause}"
        return f"cannot connect to {server}: {exc}"

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    async def size(self) -> int | None:
        """``pg_database_size``: the database's files on the server, in bytes."""
        async with self.read() as conn:
            return int(await conn.scalar(text("SELECT pg_database_size(current_database())")))

    def dump_command(self, target: str) -> str:
        """The ``pg_dump`` command line that backs this database up into ``target`` (custom
        format, for ``pg_restore``), without its password."""
        url = make_url(self.url)
        argv = ["pg_dump", "--format=custom", f"--file={target}"]
        argv += ["-h", url.host] if url.host else []
        argv += ["-p", str(url.port)] if url.port else []
        argv += ["-U", url.username] if url.username else []
        return shlex.join([*argv, str(url.database)])

    @asynccontextmanager
    async def hot_write(self) -> AsyncIterator[hot.Transaction]:
        """The transaction begins with its first statement that writes or locks
        (``hot.AsyncpgDriver``): a request that only reads, or whose one write is its last
        statement, sends no BEGIN and no COMMIT."""
        try:
            async with self.engine.connect() as conn:
                connection: Any = (await conn.get_raw_connection()).driver_connection
                driver = hot.AsyncpgDriver(connection)
                tx = hot.DriverTransaction(conn.dialect, driver)
                try:
                    yield tx
                    await tx.flush()
                except BaseException:
                    await _rollback(conn, connection, driver.transaction)
                    raise
                if driver.transaction is not None:
                    try:
                        await driver.transaction.commit()
                    except BaseException:
                        await _rollback(conn, connection, driver.transaction)
                        raise
        except DRIVER_ERRORS as exc:
            raise StorageError(str(exc) or type(exc).__name__) from exc


async def _rollback(conn: AsyncConnection, connection: Any, transaction: Any) -> None:
    """Roll back (if it began); a connection that cannot (it broke) leaves the pool for good."""
    try:
        if not connection.is_closed():
            if transaction is not None:
                await transaction.rollback()
            return
    except Exception as exc:
        log.warning("rollback failed, connection dropped: %s", exc)
    with contextlib.suppress(Exception):
        await conn.invalidate()
