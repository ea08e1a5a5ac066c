"""Engine factory and transaction helpers for SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from acs.db import inline_sqlite


class Database:
    """An async engine plus ``read()`` / ``write()`` transactions.

    On SQLite, ``write()`` opens ``BEGIN IMMEDIATE`` so a transaction that reads and then
    writes takes the write lock up front instead of failing with "database is locked"
    halfway. SQLite has one writer at a time anyway; inside a process, writers queue on an
    asyncio lock rather than in SQLite's busy handler, which sleeps in steps of up to 100 ms
    and turned contention into seconds of latency. Across processes (several workers) the
    busy handler still arbitrates. Readers never block writers (WAL).

    ``write(hot=True)`` is for the CWMP request path: on a SQLite file it runs on a second
    engine whose driver executes inline on the event loop (``acs.db.inline_sqlite``), since
    those transactions are a handful of indexed statements and the thread hand-offs of
    aiosqlite cost more than the statements. It shares the write lock; a ``BEGIN
    IMMEDIATE`` refused because another process writes is retried without blocking.
    """

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False):
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            database = parsed.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self._write_lock: asyncio.Lock | None = None
        self.hot_engine: AsyncEngine | None = None
        if self.is_sqlite:
            _configure_sqlite(self.engine, busy_timeout_ms=15000)
            if database and database != ":memory:" and not database.startswith("file:"):
                self.hot_engine = create_async_engine(
                    url, echo=echo, async_creator=partial(inline_sqlite.connect, database)
                )
                _configure_sqlite(self.hot_engine, busy_timeout_ms=inline_sqlite.BUSY_TIMEOUT_MS)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def write(self, *, hot: bool = False) -> AsyncIterator[AsyncConnection]:
        if not self.is_sqlite:
            async with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        engine = self.hot_engine if hot and self.hot_engine is not None else self.engine
        async with self._write_lock, engine.connect() as conn:
            conn = await conn.execution_options(acs_immediate=True)
            if engine is self.engine:
                async with conn.begin():
                    yield conn
                return
            await _begin_retrying(conn)
            try:
                yield conn
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.hot_engine is not None:
            await self.hot_engine.dispose()


async def _begin_retrying(conn: AsyncConnection) -> None:
    """BEGIN IMMEDIATE on the inline engine; while another process holds the write lock,
    wait for it on the event loop (bounded), not inside SQLite's busy handler."""
    delay = 0.001
    deadline = asyncio.get_running_loop().time() + 15.0
    while True:
        try:
            await conn.begin()
            return
        except OperationalError as exc:
            if "locked" not in str(exc.orig) and "busy" not in str(exc.orig):
                raise
            await conn.rollback()
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)


def _configure_sqlite(engine: AsyncEngine, *, busy_timeout_ms: int) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("acs_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
