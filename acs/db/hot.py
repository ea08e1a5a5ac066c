"""Prepared statements, and the narrow transaction interface that runs them.

Why: every periodic Inform of every device runs the same handful of indexed statements,
and profiles showed SQLAlchemy's execution machinery (execution context, result proxy,
greenlet hops) costing 30-70 times the statement itself on SQLite and about three times on
PostgreSQL. A ``Statement`` is written once, as SQL with ``:name`` parameters (one text for
both databases, or one per dialect), plus the SQLAlchemy types of the parameters and columns
that need converting.

A ``Transaction`` is all that code running inside a CWMP request sees of the database: it
runs ``Statement``s and nothing else. ``Database.hot_write()`` gives one that runs them on the
driver connection itself (sqlite3 takes the SQL as it is, asyncpg gets ``$n`` placeholders);
``over(conn)`` gives one over a SQLAlchemy connection (``text()`` constructs), so the same
functions serve the management API's transactions. Values are converted on every path by
the same SQLAlchemy type processors of the dialect, so what is stored cannot differ.

Driver errors come out of a hot transaction as ``StorageError`` (``acs.db.errors``).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeEngine

from acs.db.errors import ASYNCPG_STATEMENT_ERRORS, StorageError

_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")

Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # positional order (asyncpg); empty: named parameters (sqlite3)
    binds: dict[str, Processor]
    results: tuple[Processor | None, ...]


class Statement:
    """One statement. ``sql`` is a text for both databases or ``{dialect: text}``; ``columns``
    name what it returns (rows are namedtuples of them); ``binds`` and ``types`` are the
    SQLAlchemy types of parameters and result columns that need converting."""

    def __init__(
        self,
        sql: str | Mapping[str, str],
        *,
        columns: tuple[str, ...] = (),
        binds: Mapping[str, TypeEngine[Any]] | None = None,
        types: Mapping[str, TypeEngine[Any]] | None = None,
        slow: bool = False,
    ):
        self.sql = dict(sql) if isinstance(sql, Mapping) else {"sqlite": sql, "postgresql": sql}
        # It may run for long (a whole parameter tree merged): SQLite's driver, which runs
        # statements inline on the event loop, runs this one in a thread.
        self.slow = slow
        self.columns = columns
        self.binds = dict(binds or {})
        self.types = dict(types or {})
        self.row = namedtuple("Row", columns) if columns else None
        self._clauses: dict[str, Any] = {}
        self._compiled: dict[str, _Compiled] = {}

    def text_for(self, dialect: str) -> str:
        try:
            return self.sql[dialect]
        except KeyError:
            raise NotImplementedError(f"no {dialect} text for {self.sql}") from None

    def clause(self, dialect: str) -> Any:
        """The statement as a SQLAlchemy ``text()`` construct with its types."""
        clause = self._clauses.get(dialect)
        if clause is None:
            sql = self.text_for(dialect)
            present = set(_PARAM.findall(sql))
            clause = text(sql).bindparams(
                *(bindparam(n, type_=t) for n, t in self.binds.items() if n in present)
            )
            if self.types:
                clause = clause.columns(**self.types)
            self._clauses[dialect] = clause
        return clause

    def compiled(self, dialect: Dialect) -> _Compiled:
        """The driver's SQL and the dialect's value processors (made once per dialect)."""
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
        sql = self.text_for(dialect.name)
        if dialect.name == "sqlite":
            compiled = _Compiled(sql, (), binds, results)
        else:
            names: list[str] = []

            def number(match: re.Match[str]) -> str:
                if match.group(1) not in names:
                    names.append(match.group(1))
                return f"${names.index(match.group(1)) + 1}"

            compiled = _Compiled(_PARAM.sub(number, sql), tuple(names), binds, results)
        self._compiled[dialect.name] = compiled
        return compiled

    def rows(self, compiled: _Compiled, raw: list[tuple[Any, ...]]) -> list[Any]:
        assert self.row is not None, "a statement without columns has nothing to fetch"
        if not any(compiled.results):
            return [self.row(*r) for r in raw]
        procs = compiled.results
        return [self.row(*(p(v) if p else v for p, v in zip(procs, r, strict=True))) for r in raw]


class Transaction(Protocol):
    """What code inside a write transaction may do: run prepared statements."""

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        ...

    async def fetch(self, statement: Statement, /, **params: Any) -> list[Any]:
        """The rows, as namedtuples of the statement's columns."""
        ...

    async def first(self, statement: Statement, /, **params: Any) -> Any:
        """The first row, or ``None``."""
        ...

    async def execute(self, statement: Statement, /, **params: Any) -> int:
        """The number of rows the statement changed."""
        ...


class _Driver(Protocol):
    async def fetch(self, sql: str, params: Any) -> list[tuple[Any, ...]]: ...

    async def execute(self, sql: str, params: Any, *, slow: bool = False) -> int: ...


class DriverTransaction:
    """A transaction on the driver connection itself (``Database.hot_write``)."""

    def __init__(self, dialect: Dialect, driver: _Driver):
        self._dialect = dialect
        self._driver = driver

    @property
    def dialect(self) -> str:
        return str(self._dialect.name)

    def _params(self, compiled: _Compiled, params: Mapping[str, Any]) -> Any:
        if compiled.binds:
            params = {
                k: (compiled.binds[k](v) if k in compiled.binds else v) for k, v in params.items()
            }
        if compiled.names:
            return [params[n] for n in compiled.names]
        return params

    async def fetch(self, statement: Statement, /, **params: Any) -> list[Any]:
        compiled = statement.compiled(self._dialect)
        raw = await self._driver.fetch(compiled.sql, self._params(compiled, params))
        return statement.rows(compiled, raw)

    async def first(self, statement: Statement, /, **params: Any) -> Any:
        rows = await self.fetch(statement, **params)
        return rows[0] if rows else None

    async def execute(self, statement: Statement, /, **params: Any) -> int:
        compiled = statement.compiled(self._dialect)
        return await self._driver.execute(
            compiled.sql, self._params(compiled, params), slow=statement.slow
        )


class SqlAlchemyTransaction:
    """Statements run through a SQLAlchemy connection (a transaction of ``Database.write``)."""

    def __init__(self, conn: AsyncConnection):
        self.conn = conn

    @property
    def dialect(self) -> str:
        return str(self.conn.dialect.name)

    async def fetch(self, statement: Statement, /, **params: Any) -> list[Any]:
        assert statement.row is not None, "a statement without columns has nothing to fetch"
        result = await self.conn.execute(statement.clause(self.dialect), params)
        return [statement.row(*r) for r in result.all()]

    async def first(self, statement: Statement, /, **params: Any) -> Any:
        rows = await self.fetch(statement, **params)
        return rows[0] if rows else None

    async def execute(self, statement: Statement, /, **params: Any) -> int:
        result = await self.conn.execute(statement.clause(self.dialect), params)
        return int(result.rowcount)


def over(conn: AsyncConnection) -> Transaction:
    """The transaction interface over a SQLAlchemy connection."""
    return SqlAlchemyTransaction(conn)


class SqliteDriver:
    """sqlite3, inline on the event loop: the hot path's statements take microseconds."""

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    async def fetch(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        try:
            rows: list[tuple[Any, ...]] = self.connection.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"{exc} (in {sql[:80]!r})") from exc
        return rows

    async def execute(self, sql: str, params: Any, *, slow: bool = False) -> int:
        try:
            if slow:  # SQLite releases the GIL while it works: the loop goes on meanwhile
                cursor = await asyncio.to_thread(self.connection.execute, sql, params)
            else:
                cursor = self.connection.execute(sql, params)
            return int(cursor.rowcount)
        except sqlite3.Error as exc:
            raise StorageError(f"{exc} (in {sql[:80]!r})") from exc


class AsyncpgDriver:
    """asyncpg's own connection; it prepares and caches each statement on first use."""

    _COUNT = re.compile(r"(\d+)$")

    def __init__(self, connection: Any):
        self.connection = connection  # asyncpg.Connection

    async def fetch(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        try:
            return [tuple(r) for r in await self.connection.fetch(sql, *params)]
        except ASYNCPG_STATEMENT_ERRORS as exc:
            raise StorageError(f"{exc} (in {sql[:80]!r})") from exc

    async def execute(self, sql: str, params: Any, *, slow: bool = False) -> int:
        try:
            status: str = await self.connection.execute(sql, *params)  # "UPDATE 1", "INSERT 0 1"
        except ASYNCPG_STATEMENT_ERRORS as exc:
            raise StorageError(f"{exc} (in {sql[:80]!r})") from exc
        match = self._COUNT.search(status)
        return int(match.group(1)) if match else 0
