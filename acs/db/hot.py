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
# A statement that takes a lock until the transaction ends: on PostgreSQL its transaction
# must have begun before it runs (``AsyncpgDriver``).
_LOCKS = re.compile(
    r"\bFOR\s+(?:NO\s+KEY\s+UPDATE|UPDATE|KEY\s+SHARE|SHARE)\b|pg_advisory_xact_lock", re.I
)

Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # positional order (asyncpg); empty: named parameters (sqlite3)
    binds: dict[str, Processor]
    results: tuple[Processor | None, ...]
    locks: bool  # takes a lock held to the end of the transaction


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
        fusable: bool = False,
    ):
        self.sql = dict(sql) if isinstance(sql, Mapping) else {"sqlite": sql, "postgresql": sql}
        # It may run for long (a whole parameter tree merged): SQLite's driver, which runs
        # statements inline on the event loop, runs this one in a thread.
        self.slow = slow
        # It may go with other such writes as one statement on PostgreSQL (``fuse``): it
        # writes one table and reads no other row a statement of the request may write.
        self.fusable = fusable
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
        locks = _LOCKS.search(sql) is not None
        if dialect.name == "sqlite":
            compiled = _Compiled(sql, (), binds, results, locks)
        else:
            names: list[str] = []

            def number(match: re.Match[str]) -> str:
                if match.group(1) not in names:
                    names.append(match.group(1))
                return f"${names.index(match.group(1)) + 1}"

            compiled = _Compiled(_PARAM.sub(number, sql), tuple(names), binds, results, locks)
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

    async def execute_last(self, statement: Statement, /, **params: Any) -> int:
        """``execute`` for the transaction's last statement: nothing runs in it afterwards.
        On PostgreSQL, if nothing before it wrote or locked, it runs alone, atomic by itself,
        without BEGIN and COMMIT (two round trips fewer)."""
        ...

    async def defer(self, statement: Statement, /, **params: Any) -> None:
        """A write whose count nobody needs, run before the next statement or the commit
        (statements run in the order given, whatever the driver). On PostgreSQL the deferred
        writes of different tables go with that statement as one (``fused``): one round trip
        for an Inform's device, its inform record and its session."""
        ...


class _Driver(Protocol):
    async def fetch(
        self, sql: str, params: Any, *, locks: bool = False
    ) -> list[tuple[Any, ...]]: ...

    async def execute(
        self, sql: str, params: Any, *, slow: bool = False, last: bool = False
    ) -> int: ...


class DriverTransaction:
    """A transaction on the driver connection itself (``Database.hot_write``, which calls
    ``flush`` before it commits)."""

    def __init__(self, dialect: Dialect, driver: _Driver):
        self._dialect = dialect
        self._driver = driver
        self._fuse = dialect.name == "postgresql"
        self._deferred: list[tuple[Statement, dict[str, Any]]] = []

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
        await self.flush()
        compiled = statement.compiled(self._dialect)
        raw = await self._driver.fetch(
            compiled.sql, self._params(compiled, params), locks=compiled.locks
        )
        return statement.rows(compiled, raw)

    async def first(self, statement: Statement, /, **params: Any) -> Any:
        rows = await self.fetch(statement, **params)
        return rows[0] if rows else None

    async def execute(self, statement: Statement, /, **params: Any) -> int:
        return await self._execute(statement, params, last=False)

    async def execute_last(self, statement: Statement, /, **params: Any) -> int:
        return await self._execute(statement, params, last=True)

    async def defer(self, statement: Statement, /, **params: Any) -> None:
        if self._fuse:
            self._deferred.append((statement, params))
        else:  # in process, a statement costs no round trip: run it now
            await self._execute(statement, params, last=False)

    async def flush(self) -> None:
        """Run the deferred writes (one statement on PostgreSQL)."""
        if self._deferred:
            *before, (statement, params) = self._deferred
            self._deferred = before
            await self._execute(statement, params, last=False)

    async def _execute(self, statement: Statement, params: dict[str, Any], *, last: bool) -> int:
        if self._deferred:
            together = [*self._deferred, (statement, params)]
            self._deferred = []
            fused = fuse(tuple(s for s, _ in together))
            if fused is None:  # two of them write one table: one after the other
                for s, p in together[:-1]:
                    await self._execute(s, p, last=False)
            else:
                statement = fused
                params = {f"f{i}_{k}": v for i, (_, p) in enumerate(together) for k, v in p.items()}
        compiled = statement.compiled(self._dialect)
        return await self._driver.execute(
            compiled.sql, self._params(compiled, params), slow=statement.slow, last=last
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

    async def execute_last(self, statement: Statement, /, **params: Any) -> int:
        return await self.execute(statement, **params)

    async def defer(self, statement: Statement, /, **params: Any) -> None:
        await self.execute(statement, **params)


_WRITES = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(\w+)", re.I)
_FUSED: dict[tuple[Statement, ...], Statement | None] = {}


def fuse(statements: tuple[Statement, ...]) -> Statement | None:
    """PostgreSQL: writes as one statement, all but the last as data-modifying CTEs, whose
    count is the last one's; ``None`` unless each is ``fusable`` and writes a table none of the
    others does (a row changed twice in one statement is an error, or undefined). Parameters
    are renamed
    ``f<i>_<name>``. The CTEs run on one snapshot and cannot see one another's rows, but
    foreign keys are checked at the end of the statement, so a device's inform record may
    come with its row."""
    if statements in _FUSED:
        return _FUSED[statements]
    texts, tables, binds = [], set(), {}
    fused: Statement | None = None
    for i, statement in enumerate(statements):
        sql = statement.text_for("postgresql")
        target = _WRITES.match(sql)
        if (
            not statement.fusable
            or target is None
            or target.group(1).lower() in tables
            or statement.columns
        ):
            break
        tables.add(target.group(1).lower())
        texts.append(_PARAM.sub(f":f{i}_\\1", sql))
        binds.update({f"f{i}_{name}": type_ for name, type_ in statement.binds.items()})
    else:
        ctes = ", ".join(f"f{i} AS ({sql})" for i, sql in enumerate(texts[:-1]))
        fused = Statement({"postgresql": f"WITH {ctes} {texts[-1]}"}, binds=binds)
    if len(_FUSED) < 1024:  # the hot path's combinations are few; anything else is not kept
        _FUSED[statements] = fused
    return fused


def over(conn: AsyncConnection) -> Transaction:
    """The transaction interface over a SQLAlchemy connection."""
    return SqlAlchemyTransaction(conn)


class SqliteDriver:
    """sqlite3, inline on the event loop: the hot path's statements take microseconds."""

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    async def fetch(self, sql: str, params: Any, *, locks: bool = False) -> list[tuple[Any, ...]]:
        try:
            rows: list[tuple[Any, ...]] = self.connection.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"{exc} (in {sql[:80]!r})") from exc
        return rows

    async def execute(
        self, sql: str, params: Any, *, slow: bool = False, last: bool = False
    ) -> int:
        try:
            if slow:  # SQLite releases the GIL while it works: the loop goes on meanwhile
                cursor = await asyncio.to_thread(self.connection.execute, sql, params)
            else:
                cursor = self.connection.execute(sql, params)
            return int(cursor.rowcount)
        except sqlite3.Error as exc:
            raise StorageError(f"{exc} (in {sql[:80]!r})") from exc


class AsyncpgDriver:
    """asyncpg's own connection; it prepares and caches each statement on first use.

    The transaction begins on demand: reads run alone until a statement writes or locks, and
    a last statement with nothing begun before it runs alone (``execute_last``). Under READ
    COMMITTED, PostgreSQL's default and ours, every statement of a transaction takes a
    snapshot of its own anyway, so a read before BEGIN sees what it would have seen after;
    only locks need the transaction, and those statements begin it.
    """

    _COUNT = re.compile(r"(\d+)$")

    def __init__(self, connection: Any):
        self.connection = connection  # asyncpg.Connection
        self.transaction: Any = None  # asyncpg's Transaction, once begun
        self.ended = False  # a last statement ran

    def _check_open(self) -> None:
        if self.ended:
            raise RuntimeError("a statement after the transaction's last one")

    async def _begin(self) -> None:
        self._check_open()
        if self.transaction is None:
            transaction = self.connection.transaction()
            await transaction.start()
            self.transaction = transaction

    async def fetch(self, sql: str, params: Any, *, locks: bool = False) -> list[tuple[Any, ...]]:
        try:
            if locks:
                await self._begin()
            self._check_open()
            return [tuple(r) for r in await self.connection.fetch(sql, *params)]
        except ASYNCPG_STATEMENT_ERRORS as exc:
            raise StorageError(f"{exc} (in {sql[:80]!r})") from exc

    async def execute(
        self, sql: str, params: Any, *, slow: bool = False, last: bool = False
    ) -> int:
        try:
            if last:
                self._check_open()
                self.ended = True
            else:
                await self._begin()
            status: str = await self.connection.execute(sql, *params)  # "UPDATE 1", "INSERT 0 1"
        except ASYNCPG_STATEMENT_ERRORS as exc:
            raise StorageError(f"{exc} (in {sql[:80]!r})") from exc
        match = self._COUNT.search(status)
        return int(match.group(1)) if match else 0
