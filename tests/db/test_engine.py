"""Transactions of ``Database``: the CWMP hot path (``hot_write``, on the driver) and the
SQLAlchemy one (``write``) commit, roll back and serialise writers the same way, within and
across processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import text

from acs.db import hot as hot_statements
from acs.db.engine import Database
from acs.db.sqlite import SqliteDatabase

COUNTER = "test-counter"
# SQLite: the whole database is locked by the write transaction
READ = hot_statements.Statement(
    {
        "sqlite": "SELECT value FROM meta WHERE key = :k",
        "postgresql": "SELECT value FROM meta WHERE key = :k FOR UPDATE",
    },
    columns=("value",),
)
WRITE = hot_statements.Statement("UPDATE meta SET value = :v WHERE key = :k")


@asynccontextmanager
async def _transaction(db: Database, *, hot: bool) -> AsyncIterator[hot_statements.Transaction]:
    if hot:
        async with db.hot_write() as tx:
            yield tx
    else:
        async with db.write() as conn:
            yield hot_statements.over(conn)


async def _bump(db: Database, *, hot: bool) -> None:
    async with _transaction(db, hot=hot) as tx:
        value = (await tx.first(READ, k=COUNTER)).value
        await asyncio.sleep(0)  # let other writers run if the lock did not hold them off
        await tx.execute(WRITE, v=str(int(value) + 1), k=COUNTER)


async def _value(db: Database) -> int:
    async with db.read() as conn:
        return int(await conn.scalar(text("SELECT value FROM meta WHERE key = :k"), {"k": COUNTER}))


@pytest.fixture
async def counter(db: Database) -> Database:
    async with db.write() as conn:
        await conn.execute(text("INSERT INTO meta (key, value) VALUES (:k, '0')"), {"k": COUNTER})
    return db


async def test_hot_transactions_run_on_the_driver(counter: Database):
    async with counter.hot_write() as tx:
        assert isinstance(tx, hot_statements.DriverTransaction)
    if isinstance(counter, SqliteDatabase):  # a file of its own, not ":memory:"
        assert counter.path is not None


@pytest.mark.parametrize("hot", [True, False])
async def test_writes_commit_and_roll_back(counter: Database, hot: bool):
    await _bump(counter, hot=hot)
    with pytest.raises(RuntimeError):
        async with _transaction(counter, hot=hot) as tx:
            await tx.execute(WRITE, v="99", k=COUNTER)
            raise RuntimeError("abandon")
    assert await _value(counter) == 1


async def test_read_modify_write_is_serialised_across_engines_and_processes(counter: Database):
    """Two ``Database`` objects on one file stand for two worker processes: separate pools and
    separate in-process locks, so only the database's own write lock keeps them apart (on
    SQLite the hot path then waits for BEGIN IMMEDIATE on the event loop)."""
    other = Database(counter.url)
    try:
        jobs = [_bump(d, hot=h) for _ in range(25) for d in (counter, other) for h in (True, False)]
        await asyncio.wait_for(asyncio.gather(*jobs), 60)
    finally:
        await other.dispose()
    assert await _value(counter) == 100


async def test_hot_write_waits_out_a_writer_of_another_process(counter: Database):
    other = Database(counter.url)
    try:
        async with other.write() as held:  # threaded engine, holds the write lock
            await held.execute(text("UPDATE meta SET value = '10' WHERE key = :k"), {"k": COUNTER})
            waiting = asyncio.ensure_future(_bump(counter, hot=True))
            await asyncio.sleep(0.2)  # SQLite: far past the inline driver's 5 ms busy timeout
            assert not waiting.done()
        await asyncio.wait_for(waiting, 10)
    finally:
        await other.dispose()
    assert await _value(counter) == 11


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_postgresql_connections_are_kept_not_made_per_burst(database_url: str):
    """More transactions at once than the pool holds wait for a connection; none is opened
    beyond it and closed again (a new backend per transaction under a steady load)."""
    db = Database(database_url, pool_size=2)
    try:
        backend = hot_statements.Statement("SELECT pg_backend_pid()", columns=("pid",))

        async def backend_pid() -> int:
            async with db.hot_write() as tx:
                pid = int((await tx.first(backend)).pid)
                await asyncio.sleep(0.02)  # all eight are in a transaction at once
                return pid

        pids = set()
        for _ in range(3):
            pids |= set(await asyncio.gather(*(backend_pid() for _ in range(8))))
        assert len(pids) == 2
    finally:
        await db.dispose()


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_runtime_takes_its_pool_from_the_settings(make_runtime):
    rt = await make_runtime(db_pool_size=3, db_max_overflow=1)
    pool = rt.db.engine.pool
    assert (pool.size(), pool._max_overflow) == (3, 1)
