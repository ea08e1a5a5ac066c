"""Engine factory and transaction helpers for SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from acs.db import hot as hot_statements
from acs.db import inline_sqlite

log = logging.getLogger("acs.db")


class Database:
    """An async engine plus ``read()`` / ``write()`` transactions.

    On SQLite, ``write()`` opens ``BEGIN IMMEDIATE`` so a transaction that reads and then
    writes takes the write lock up front instead of failing with "database is locked"
    halfway. SQLite has one writer at a time anyway; inside a process, writers queue on an
    asyncio lock rather than in SQLite's busy handler, which sleeps in steps of up to 100 ms
    and turned contention into seconds of latency. Across processes (several workers) the
    busy handler still arbitrates. Readers never block writers (WAL).

    ``write(hot=True)`` is for the CWMP request path. Inside it, ``acs.db.hot`` statements run
    on the driver connection itself (``conn.info[hot.DRIVER_KEY]``); SQLAlchemy statements
    join the same transaction. On a SQLite file it runs on one connection kept open on a
    second engine whose driver executes inline on the event loop (``acs.db.inline_sqlite``),
    since those transactions are a handful of indexed statements and the thread hand-offs of
    aiosqlite cost more than the statements. It shares the write lock; a ``BEGIN
    IMMEDIATE`` refused because another process writes is retried without blocking. Its WAL
    is checkpointed by a task on the threaded engine, not inside its commits. On PostgreSQL
    the asyncpg transaction is started up front so the driver's statements run in it.
    """

    def __init__(self, url: str, *, pool_size: int = 20, max_overflow: int = 0, echo: bool = False):
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            database = parsed.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        else:
            # Connections are kept, not made per burst: SQLAlchemy closes an overflow
            # connection when it is returned to a full pool, and under a steady load past the
            # pool that meant a new PostgreSQL backend (a fork, authentication, every
            # statement prepared again) every few dozen sessions (measured: 92 in 8 s).
            kwargs.update(pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=False)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self._write_lock: asyncio.Lock | None = None
        self._hot: AsyncConnection | None = None
        self._hot_commits = 0
        self._checkpoint_due = asyncio.Event()
        self._checkpointer: asyncio.Task[None] | None = None
        self.checkpoints = 0  # done by ``_checkpoints``
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
                if not hot:
                    yield conn
                    return
                driver = await _asyncpg_driver(conn)
                if driver is None:
                    yield conn
                    return
                conn.info[hot_statements.DRIVER_KEY] = driver
                try:
                    yield conn
                finally:
                    conn.info.pop(hot_statements.DRIVER_KEY, None)
            return
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        if not hot or self.hot_engine is None:
            async with self._write_lock, self.engine.connect() as conn:
                conn = await conn.execution_options(acs_immediate=True)
                async with conn.begin():
                    yield conn
            return
        async with self._write_lock:
            conn = await self._hot_connection()
            raw = conn.info[_RAW_SQLITE]
            await _begin_immediate(raw)
            conn.info[hot_statements.DRIVER_KEY] = hot_statements.SqliteDriver(conn.dialect, raw)
            try:
                yield conn
            except BaseException:
                await self._end_hot(conn, raw, commit=False)
                raise
            await self._end_hot(conn, raw, commit=True)
            self._hot_commits += 1
            if self._hot_commits % CHECKPOINT_EVERY_COMMITS == 0:
                self._checkpoint_due.set()

    async def _checkpoints(self) -> None:
        """Checkpoint the WAL of hot commits off the event loop: on aiosqlite's thread (SQLite
        releases the GIL meanwhile), every ``CHECKPOINT_EVERY_COMMITS`` commits or second.
        PASSIVE: it copies what no reader still needs and never blocks a writer."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._checkpoint_due.wait(), CHECKPOINT_INTERVAL)
            self._checkpoint_due.clear()
            try:
                async with self.engine.connect() as conn:
                    await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
                self.checkpoints += 1
            except Exception as exc:  # a busy or failing checkpoint is retried next time
                log.warning("WAL checkpoint failed: %s", exc)

    async def _hot_connection(self) -> AsyncConnection:
        """The connection every hot SQLite transaction of this process runs on: they take
        turns under the write lock anyway, so one kept open spares a pool checkout, a
        reset and a return (measured: more than the statements) per request."""
        conn = self._hot
        if conn is not None and not conn.closed and not conn.invalidated:
            return conn
        assert self.hot_engine is not None
        conn = await self.hot_engine.connect()
        inline = (await conn.get_raw_connection()).driver_connection
        assert isinstance(inline, inline_sqlite.Connection)
        conn.info[_RAW_SQLITE] = inline.raw
        # Checkpoints copy the WAL back into the database file; SQLite runs them inside the
        # commit that crosses its threshold, which here is on the event loop. The hot
        # connection leaves them to ``_checkpoints`` on the threaded engine instead
        # (measured: a fifth of the CPU of a periodic Inform session).
        inline.raw.execute("PRAGMA wal_autocheckpoint=0")
        # Read the database file through a memory map rather than read() into SQLite's small
        # page cache: at 1,000,000 devices the indexes an Inform touches outgrow that cache,
        # and each statement paid system calls and copies for pages it had just had
        # (measured: 15-22% more CPU per session than at 1,000 devices; with the map, 4-7%).
        # Address space only: memory is what the sessions touch (5-12 MB at 1M devices).
        inline.raw.execute(f"PRAGMA mmap_size={HOT_MMAP_BYTES}")
        if self._checkpointer is None or self._checkpointer.done():
            self._checkpointer = asyncio.get_running_loop().create_task(self._checkpoints())
        self._hot = conn
        return conn

    async def _end_hot(
        self, conn: AsyncConnection, raw: sqlite3.Connection, *, commit: bool
    ) -> None:
        """Commit or roll back a hot transaction: through SQLAlchemy if something used the
        connection through it (it joined the transaction), else on the driver. A connection
        left in doubt is closed, and the next transaction opens a new one."""
        conn.info.pop(hot_statements.DRIVER_KEY, None)
        try:
            if conn.in_transaction():
                await (conn.commit() if commit else conn.rollback())
            elif commit:
                try:
                    raw.commit()
                except sqlite3.Error as exc:
                    raise OperationalError("COMMIT", (), exc) from exc
            else:
                raw.rollback()
        except BaseException:
            self._hot = None
            with contextlib.suppress(Exception):
                raw.rollback()
            with contextlib.suppress(Exception):
                await conn.close()
            raise

    async def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(BaseException):
                await self._checkpointer
            self._checkpointer = None
        if self._hot is not None:
            with contextlib.suppress(Exception):
                await self._hot.close()
            self._hot = None
        await self.engine.dispose()
        if self.hot_engine is not None:
            await self.hot_engine.dispose()


_RAW_SQLITE = "acs.raw_sqlite"
# SQLite's own automatic checkpoint comes every 1,000 WAL pages; a hot commit writes about ten.
CHECKPOINT_EVERY_COMMITS = 100
CHECKPOINT_INTERVAL = 1.0
HOT_MMAP_BYTES = 256 * 1024 * 1024


async def _begin_immediate(raw: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE on the hot connection; while another process holds the write lock,
    wait for it on the event loop (bounded), not inside SQLite's busy handler."""
    delay = 0.001
    deadline = asyncio.get_running_loop().time() + 15.0
    while True:
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if ("locked" not in text and "busy" not in text) or (
                asyncio.get_running_loop().time() > deadline
            ):
                raise OperationalError("BEGIN IMMEDIATE", (), exc) from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)


async def _asyncpg_driver(conn: AsyncConnection) -> hot_statements.AsyncpgDriver | None:
    """Start the asyncpg transaction now (SQLAlchemy's adapter starts it lazily, at the first
    statement it runs itself) and hand out the driver connection running inside it. ``None``
    where the driver is not asyncpg or its adapter is not the one this was written against;
    hot statements then run through SQLAlchemy."""
    fairy = await conn.get_raw_connection()
    adapter: Any = fairy.dbapi_connection
    start = getattr(adapter, "_start_transaction", None)
    if start is None or not hasattr(adapter, "_transaction") or conn.dialect.driver != "asyncpg":
        return None
    if adapter._transaction is None:
        await start()
    return hot_statements.AsyncpgDriver(conn.dialect, fairy.driver_connection)


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
        if hot_statements.DRIVER_KEY in conn.info:
            return  # a hot transaction is open on this connection already: SQLAlchemy joins it
        immediate = conn.get_execution_options().get("acs_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
