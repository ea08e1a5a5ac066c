"""``Database``: the engine and the three kinds of transaction, one class per backend.

``Database(url)`` gives the backend's class (``acs.db.sqlite.SqliteDatabase`` or
``acs.db.postgres.PostgresDatabase``); each offers:

* ``read()``: a SQLAlchemy connection in a read transaction (searches, views);
* ``write()``: a SQLAlchemy connection in a write transaction (the management API, jobs);
* ``hot_write()``: a ``hot.Transaction`` for the CWMP request path, which runs prepared
  statements on the driver connection itself and nothing else. SQLAlchemy never joins it;
  its driver and pool errors come out as ``StorageError``.

Every entry point calls ``probe()`` first: a database that cannot be reached or opened is one
``DatabaseUnavailable`` saying what to do, not a driver's traceback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from acs.db import hot
from acs.db.errors import DatabaseUnavailable


class Database:
    """An async engine and its transactions (see the module docstring)."""

    url: str
    dialect: str
    engine: AsyncEngine

    def __new__(cls, url: str, **_kwargs: Any) -> Database:
        if cls is Database:
            from acs.db.postgres import PostgresDatabase
            from acs.db.sqlite import SqliteDatabase

            backend = make_url(url).get_backend_name()
            backends: dict[str, type[Database]] = {
                "sqlite": SqliteDatabase,
                "postgresql": PostgresDatabase,
            }
            if backend not in backends:
                raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")
            cls = backends[backend]
        return object.__new__(cls)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    def pool_connections(self) -> tuple[int, int] | None:
        """(in use, idle) connections of the pool, where the backend keeps one."""
        return None

    async def probe(self, *, create: bool = False) -> None:
        """Connect once. ``DatabaseUnavailable`` says what is wrong and what to do;
        ``create``: a database that does not exist yet may be created (SQLite: its file and
        directory), for the commands that migrate it."""
        self._before_probe(create)
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except Exception as exc:
            raise DatabaseUnavailable(self._unavailable(exc)) from exc

    def _before_probe(self, create: bool) -> None:
        pass

    def _unavailable(self, exc: Exception) -> str:
        """What ``exc``, raised connecting, means for an operator, and the fix."""
        raise NotImplementedError

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    def write(self) -> AbstractAsyncContextManager[AsyncConnection]:
        raise NotImplementedError

    def hot_write(self) -> AbstractAsyncContextManager[hot.Transaction]:
        raise NotImplementedError

    async def size(self) -> int | None:
        """Bytes the database takes (None where that is not known: in memory)."""
        raise NotImplementedError

    async def dispose(self) -> None:
        await self.engine.dispose()
