"""The one error storage raises where callers must answer "try again later" (503), and the one
it raises at start-up for a database acs cannot use at all."""

from __future__ import annotations

import errno
import sqlite3

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout


class StorageError(Exception):
    """The database did not do what was asked: out of reach, connection lost, every pooled
    connection busy past the pool's timeout, disk full, a statement refused. The work of the
    transaction was rolled back; nothing of it is kept."""


class InsufficientStorage(StorageError):
    """The disk under the database or the file store is full: nothing of the request was
    kept. The management API answers a change refused so 507 (RFC 4918 11.5)."""


class DatabaseUnavailable(Exception):
    """``Database.probe``: the database cannot be reached or opened. The message says what is
    wrong and what to do, in one line, without the password."""


def causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from, outermost first (SQLAlchemy wraps the driver's)."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return chain


# asyncpg's own: the server's errors, misuse of a closed connection, and the protocol's state
# errors (a backend terminated mid-statement surfaced as "another operation is in progress").
ASYNCPG_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
# What asyncpg raises on a statement: its own errors, or the socket's.
ASYNCPG_STATEMENT_ERRORS: tuple[type[Exception], ...] = (*ASYNCPG_ERRORS, OSError)
# What drivers and the pool raise for those conditions. PoolTimeout is not a DBAPIError (it was
# answered 500 until seen in a storm); asyncpg's own errors are not SQLAlchemy's classes.
DRIVER_ERRORS: tuple[type[Exception], ...] = (
    DBAPIError,
    PoolTimeout,
    sqlite3.Error,
    *ASYNCPG_STATEMENT_ERRORS,
)
# What the CWMP service answers with 503: the hot transaction's StorageError, or a driver's or
# the pool's own error that got past it.
UNAVAILABLE: tuple[type[Exception], ...] = (StorageError, *DRIVER_ERRORS)


# errno values of a full disk (a quota counts as one).
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) says the disk is full: ENOSPC or EDQUOT
    from the OS, SQLite's SQLITE_FULL ("database or disk is full"), PostgreSQL's disk_full
    (53100). The one place that decides it."""
    for cause in causes(exc):
        seen = [cause, getattr(cause, "orig", None)]  # SQLAlchemy keeps the driver's here
        for error in seen:
            if isinstance(error, InsufficientStorage):
                return True
            if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
                return True
            if isinstance(error, sqlite3.Error) and (
                (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF == sqlite3.SQLITE_FULL
                or "database or disk is full" in str(error)
            ):
                return True
            if isinstance(error, asyncpg.exceptions.DiskFullError):
                return True
    return False
