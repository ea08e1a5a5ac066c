"""Statements of the CWMP hot path, run on the database driver itself when they can be.

Why: every periodic Inform of every device runs the same half-dozen indexed statements,
and profiles showed SQLAlchemy's execution machinery (execution context, result proxy,
greenlet hops) costing 30-70 times the statement itself on SQLite and about three times on
PostgreSQL. A ``Statement`` is written once, as SQL with ``:name`` parameters plus the
SQLAlchemy types of the parameters and columns that need converting. Inside a hot
transaction (``Database.write(hot=True)``) it goes straight to the driver connection of that
transaction: sqlite3 takes the SQL as it is, asyncpg gets ``$n`` placeholders. Anywhere else
it runs through SQLAlchemy as a ``text()`` construct. Values are converted on both paths by
the same SQLAlchemy type processors of the dialect, so what is stored cannot differ.

The driver runs inside the transaction the hot path opened on that very connection, so
hooks that use the SQLAlchemy connection meanwhile (tasks, provisioning) see the same
transaction and commit or roll back with it.
"""

from __future__ import annotations

import re
import sqlite3
from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeEngine

# Where a hot transaction leaves its driver, in ``AsyncConnection.info`` (removed at its end).
DRIVER_KEY = "acs.hot_driver"

_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")

Processor = Callable[[Any], Any]


class Driver(Protocol):
    """What a hot transaction offers: its dialect and a way to run driver-level SQL."""

    dialect: Dialect

    async def fetch(self, sql: str, params: Any) -> list[tuple[Any, ...]]: ...

    async def execute(self, sql: str, params: Any) -> int: ...


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # positional order (asyncpg); empty: named parameters (sqlite3)
    binds: dict[str, Processor]
    results: tuple[Processor | None, ...]


class Statement:
    """One hot-path statement: ``fetch`` returns rows as namedtuples, ``execute`` a rowcount."""

    def __init__(
        self,
        sql: str,
        *,
        columns: tuple[str, ...] = (),
        binds: Mapping[str, TypeEngine[Any]] | None = None,
        types: Mapping[str, TypeEngine[Any]] | None = None,
    ):
        self.sql = sql
        self.columns = columns
        self.binds = dict(binds or {})
        self.types = dict(types or {})
        self.row = namedtuple("Row", columns) if columns else None
        clause = text(sql).bindparams(*(bindparam(n, type_=t) for n, t in self.binds.items()))
        self.clause: Any = clause.columns(**self.types) if self.types else clause
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is not None:
            return compiled
        binds: dict[str, Processor] = {}
        for name, type_ in self.binds.items():
            # the dialect's implementation (a TypeDecorator's own is the generic type's)
            processor = type_.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                binds[name] = processor
        results = tuple(
            self.types[c].dialect_impl(dialect).result_processor(dialect, None)
            if c in self.types
            else None
            for c in self.columns
        )
        if dialect.name == "sqlite":
            compiled = _Compiled(self.sql, (), binds, results)
        else:
            names: list[str] = []

            def number(match: re.Match[str]) -> str:
                if match.group(1) not in names:
                    names.append(match.group(1))
                return f"${names.index(match.group(1)) + 1}"

            compiled = _Compiled(_PARAM.sub(number, self.sql), tuple(names), binds, results)
        self._compiled[dialect.name] = compiled
        return compiled

    def _params(self, compiled: _Compiled, params: Mapping[str, Any]) -> Any:
        if compiled.binds:
            params = {
                k: (compiled.binds[k](v) if k in compiled.binds else v) for k, v in params.items()
            }
        if compiled.names:
            return [params[n] for n in compiled.names]
        return params

    async def fetch(self, conn: AsyncConnection, params: Mapping[str, Any]) -> list[Any]:
        assert self.row is not None, "a statement without columns has nothing to fetch"
        driver: Driver | None = conn.info.get(DRIVER_KEY)
        if driver is None:
            return [self.row(*r) for r in (await conn.execute(self.clause, params)).all()]
        compiled = self._for(driver.dialect)
        rows = await driver.fetch(compiled.sql, self._params(compiled, params))
        if not any(compiled.results):
            return [self.row(*r) for r in rows]
        procs = compiled.results
        return [self.row(*(p(v) if p else v for p, v in zip(procs, r, strict=True))) for r in rows]

    async def first(self, conn: AsyncConnection, params: Mapping[str, Any]) -> Any:
        rows = await self.fetch(conn, params)
        return rows[0] if rows else None

    async def execute(self, conn: AsyncConnection, params: Mapping[str, Any]) -> int:
        driver: Driver | None = conn.info.get(DRIVER_KEY)
        if driver is None:
            return int((await conn.execute(self.clause, params)).rowcount)
        compiled = self._for(driver.dialect)
        return await driver.execute(compiled.sql, self._params(compiled, params))


def _wrapped(exc: Exception, sql: str, params: Any, integrity: bool) -> Exception:
    """The driver's error as SQLAlchemy's, which is what callers (and the endpoint's
    "storage unavailable" answer) expect from any statement."""
    cls = IntegrityError if integrity else OperationalError
    return cls(sql, params, exc)


class SqliteDriver:
    """sqlite3, inline on the event loop (the hot engine's connections are inline anyway)."""

    def __init__(self, dialect: Dialect, connection: Any):
        self.dialect = dialect
        self.connection = connection  # sqlite3.Connection

    async def fetch(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        try:
            rows: list[tuple[Any, ...]] = self.connection.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _wrapped(exc, sql, params, isinstance(exc, sqlite3.IntegrityError)) from exc
        return rows

    async def execute(self, sql: str, params: Any) -> int:
        try:
            return int(self.connection.execute(sql, params).rowcount)
        except sqlite3.Error as exc:
            raise _wrapped(exc, sql, params, isinstance(exc, sqlite3.IntegrityError)) from exc


class AsyncpgDriver:
    """asyncpg's own connection; it prepares and caches each statement on first use."""

    _COUNT = re.compile(r"(\d+)$")

    def __init__(self, dialect: Dialect, connection: Any):
        self.dialect = dialect
        self.connection = connection  # asyncpg.Connection

    async def fetch(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        try:
            return [tuple(r) for r in await self.connection.fetch(sql, *params)]
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _wrapped(exc, sql, params, _integrity(exc)) from exc

    async def execute(self, sql: str, params: Any) -> int:
        try:
            status: str = await self.connection.execute(sql, *params)  # "UPDATE 1", "INSERT 0 1"
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _wrapped(exc, sql, params, _integrity(exc)) from exc
        match = self._COUNT.search(status)
        return int(match.group(1)) if match else 0


def _integrity(exc: Exception) -> bool:
    return isinstance(exc, asyncpg.IntegrityConstraintViolationError)
