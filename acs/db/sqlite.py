"""SQLite, the embedded default: one file in WAL mode, one writer at a time.

``write()`` opens ``BEGIN IMMEDIATE``, so a transaction that reads and then writes takes the
write lock up front instead of failing with "database is locked" halfway. Inside a process,
writers queue on an asyncio lock rather than in SQLite's busy handler, which sleeps in steps
of up to 100 ms and turned contention into seconds of latency; across processes (several
workers) the busy handler still arbitrates. Readers never block writers (WAL).

``hot_write()`` runs on one sqlite3 connection kept open, inline on the event loop: the CWMP
path's transactions are a handful of indexed statements, and aiosqlite's thread hand-offs
(three or four per statement, while the write lock is held) cost more than the statements.
It shares the write lock; a ``BEGIN IMMEDIATE`` refused because another process writes is
retried without blocking the loop. That connection leaves WAL checkpoints to a task on the
threaded engine instead of running them inside its commits. Searches and bulk work keep the
threaded driver, so a long scan never stalls CPE traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from acs.db import hot
from acs.db.engine import Database
from acs.db.errors import DRIVER_ERRORS, DatabaseUnavailable, StorageError, causes
from acs.db.types import json_dumps, json_loads

log = logging.getLogger("acs.db")

# SQLite's own automatic checkpoint comes every 1,000 WAL pages; a hot commit writes about ten.
CHECKPOINT_EVERY_COMMITS = 100
CHECKPOINT_INTERVAL = 1.0
HOT_MMAP_BYTES = 256 * 1024 * 1024
# The hot connection's busy handler: at worst a writer of another process holds up the event
# loop this long; a longer wait for BEGIN IMMEDIATE happens asynchronously.
HOT_BUSY_TIMEOUT_MS = 5
HOT_BEGIN_DEADLINE = 15.0


class SqliteDatabase(Database):
    """See the module docstring."""

    def __init__(self, url: str, *, pool_size: int = 20, max_overflow: int = 0, echo: bool = False):
        del pool_size, max_overflow  # one file: SQLAlchemy's default pool for SQLite
        self.url = url
        self.dialect = "sqlite"
        database = make_url(url).database or ""
        # A file of our own gets the hot connection; ":memory:" and URI forms use write().
        self.path: Path | None = None
        if database and database != ":memory:" and not database.startswith("file:"):
            self.path = Path(database)  # created by probe(create=True) and migrations only
        self.engine = create_async_engine(
            url, echo=echo, json_serializer=json_dumps, json_deserializer=json_loads
        )
        _configure(self.engine.sync_engine)
        self._write_lock = asyncio.Lock()
        self._hot: sqlite3.Connection | None = None
        self._hot_commits = 0
        self._checkpoint_due = asyncio.Event()
        self._checkpointer: asyncio.Task[None] | None = None
        self.checkpoints = 0  # done by ``_checkpoints``

    def _before_probe(self, create: bool) -> None:
        if self.path is None or self.path.exists():
            return
        if not create:
            # Connecting would create an empty file here: the CLI run from another directory
            # than `acs serve` did, and was then told to migrate it.
            raise DatabaseUnavailable(
                f"no database at {self.path}: run acs in the directory `acs serve` runs in, "
                "or give it the same --data-dir (ACS_DATA_DIR) or ACS_DATABASE_URL; "
                "`acs db upgrade` creates a new database"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseUnavailable(
                f"cannot create the directory {self.path.parent} for the database: "
                f"{exc.strerror or exc}; choose a writable --data-dir (ACS_DATA_DIR)"
            ) from exc

    def _unavailable(self, exc: Exception) -> str:
        where = self.path or make_url(self.url).database or "the SQLite database"
        for cause in causes(exc):
            if isinstance(cause, sqlite3.DatabaseError):
                text = str(cause)
                if "file is not a database" in text:
                    return (
                        f"{where} is not an SQLite database: fix --data-dir (ACS_DATA_DIR) "
                        "or ACS_DATABASE_URL"
                    )
                if "unable to open" in text or "readonly" in text:
                    return (
                        f"cannot open {where} ({text}): it and its directory must be a "
                        "file and a directory this user may read and write"
                    )
                return f"cannot open {where}: {text}"
        return f"cannot open {where}: {exc}"

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        async with self._write_lock, self.engine.connect() as conn:
            conn = await conn.execution_options(acs_immediate=True)
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def hot_write(self) -> AsyncIterator[hot.Transaction]:
        if self.path is None:
            try:
                async with self.write() as conn:
                    yield hot.over(conn)
            except DRIVER_ERRORS as exc:
                raise StorageError(str(exc)) from exc
            return
        async with self._write_lock:
            raw = self._hot_connection()
            await _begin_immediate(raw)
            try:
                yield hot.DriverTransaction(self.engine.dialect, hot.SqliteDriver(raw))
            except BaseException:
                self._end(raw, "ROLLBACK")
                raise
            self._end(raw, "COMMIT")
            self._hot_commits += 1
            if self._hot_commits % CHECKPOINT_EVERY_COMMITS == 0:
                self._checkpoint_due.set()

    def _end(self, raw: sqlite3.Connection, verb: str) -> None:
        """COMMIT or ROLLBACK; a connection left in doubt is closed (the next transaction
        opens a new one)."""
        try:
            raw.execute(verb)
        except sqlite3.Error as exc:
            self._hot = None
            with contextlib.suppress(sqlite3.Error):
                raw.close()
            if verb == "COMMIT":
                raise StorageError(f"COMMIT failed: {exc}") from exc
            log.warning("ROLLBACK failed, connection closed: %s", exc)

    def _hot_connection(self) -> sqlite3.Connection:
        """The connection every hot transaction of this process runs on: they take turns under
        the write lock anyway, so one kept open spares a pool checkout, a reset and a return
        (measured: more than the statements) per request."""
        if self._hot is not None:
            return self._hot
        assert self.path is not None
        try:
            raw = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            _pragmas(raw, busy_timeout_ms=HOT_BUSY_TIMEOUT_MS)
            # Checkpoints copy the WAL back into the database file; SQLite runs them inside the
            # commit that crosses its threshold, which here is on the event loop. This
            # connection leaves them to ``_checkpoints`` on the threaded engine instead
            # (measured: a fifth of the CPU of a periodic Inform session).
            raw.execute("PRAGMA wal_autocheckpoint=0")
            # Read the database file through a memory map rather than read() into SQLite's small
            # page cache: at 1,000,000 devices the indexes an Inform touches outgrow that cache,
            # and each statement paid system calls and copies for pages it had just had
            # (measured: 15-22% more CPU per session than at 1,000 devices; with the map, 4-7%).
            # Address space only: memory is what the sessions touch (5-12 MB at 1M devices).
            raw.execute(f"PRAGMA mmap_size={HOT_MMAP_BYTES}")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {self.path}: {exc}") from exc
        if self._checkpointer is None or self._checkpointer.done():
            self._checkpointer = asyncio.get_running_loop().create_task(self._checkpoints())
        self._hot = raw
        return raw

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

    async def size(self) -> int | None:
        """The file and its write-ahead log, in bytes."""
        if self.path is None:
            return None
        total = 0
        for part in (self.path, self.path.with_name(self.path.name + "-wal")):
            with contextlib.suppress(FileNotFoundError):
                total += part.stat().st_size
        return total

    async def backup(self, target: Path) -> int:
        """Copy the database into the new file ``target`` with SQLite's online backup, as
        of one moment: what was committed when it started, while other connections and
        processes go on writing. Written beside it first and renamed, so ``target`` is
        whole or absent; its size in bytes."""
        if self.path is None:
            raise ValueError("an in-memory or URI database has no file to back up")
        return await asyncio.to_thread(_backup, self.path, target)

    async def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(BaseException):
                await self._checkpointer
            self._checkpointer = None
        if self._hot is not None:
            with contextlib.suppress(sqlite3.Error):
                self._hot.close()
            self._hot = None
        await self.engine.dispose()


def _backup(source: Path, target: Path) -> int:
    part = target.with_name(target.name + ".part")
    part.unlink(missing_ok=True)
    try:
        # Read-only: a backup never creates or changes the source.
        src = sqlite3.connect(source.as_uri() + "?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(part)
            try:
                # All pages in one step: one read transaction, so one snapshot, however
                # much the server writes meanwhile (WAL: it is not held up either).
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return target.stat().st_size


async def _begin_immediate(raw: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE on the hot connection; while another process holds the write lock,
    wait for it on the event loop (bounded), not inside SQLite's busy handler."""
    loop = asyncio.get_running_loop()
    delay = 0.001
    deadline = loop.time() + HOT_BEGIN_DEADLINE
    while True:
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if ("locked" not in text and "busy" not in text) or loop.time() > deadline:
                raise StorageError(f"BEGIN IMMEDIATE: {exc}") from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)


def _pragmas(dbapi_conn: Any, *, busy_timeout_ms: int) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _configure(sync_engine: Any) -> None:
    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred).
        dbapi_conn.isolation_level = None
        _pragmas(dbapi_conn, busy_timeout_ms=15000)

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("acs_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
