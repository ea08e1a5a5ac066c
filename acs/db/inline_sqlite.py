"""An aiosqlite-shaped SQLite connection that runs every call inline, on the event loop.

Why: SQLAlchemy's aiosqlite adapter hands each statement to aiosqlite's thread three or
four times (cursor, execute, fetch, close), and SQLite allows one writer at a time, so a
write transaction held its lock across a dozen thread hops, each waiting its turn in a busy
event loop. The CWMP hot path's statements take microseconds on SQLite; running them in the
loop thread costs far less than the hops. Used only for that path (``Database.write(hot=True)``):
searches and bulk work keep the threaded driver, so a long scan never stalls CPE traffic.

The lock: ``busy_timeout`` is a few milliseconds, so a writer of another process can at
worst hold up the loop that long; ``Database.write`` retries a ``BEGIN IMMEDIATE`` refused
as busy, asynchronously. Inside a transaction that holds the write lock (WAL mode), nothing
else waits for a lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

# What SQLAlchemy's aiosqlite dialect reads off the module (errors, version, ...).
DatabaseError = sqlite3.DatabaseError
Error = sqlite3.Error
IntegrityError = sqlite3.IntegrityError
NotSupportedError = sqlite3.NotSupportedError
OperationalError = sqlite3.OperationalError
ProgrammingError = sqlite3.ProgrammingError
sqlite_version = sqlite3.sqlite_version
sqlite_version_info = sqlite3.sqlite_version_info

BUSY_TIMEOUT_MS = 5


class Cursor:
    def __init__(self, cursor: sqlite3.Cursor):
        self._cursor = cursor

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Cursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> Cursor:
        self._cursor.executemany(sql, seq)
        return self

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size) if size else self._cursor.fetchmany()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _Inline:
    """Stands in for aiosqlite's request queue (SQLAlchemy sets isolation_level through it)."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:  # handed to the awaiting caller, as aiosqlite does
            future.set_exception(exc)


class Connection:
    def __init__(self, database: str, **kwargs: Any):
        kwargs.setdefault("check_same_thread", False)
        self._conn = sqlite3.connect(database, **kwargs)
        self._connection = self._conn
        self._tx = _Inline()

    @property
    def raw(self) -> sqlite3.Connection:
        conn: sqlite3.Connection = self._conn
        return conn

    def cursor(self) -> Cursor:
        return Cursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Cursor:
        return Cursor(self._conn.execute(sql, parameters))

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    def stop(self) -> None:
        self._conn.close()

    @property
    def isolation_level(self) -> str | None:
        level: str | None = self._conn.isolation_level
        return level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._conn.isolation_level = value


async def connect(database: str, **kwargs: Any) -> Connection:
    return Connection(database, **kwargs)
