"""Transactions of ``Database``: the CWMP hot path (``hot_write``, on the driver) and the
SQLAlchemy one (``write``) commit, roll back and serialise writers the same way, within and
across processes."""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import text

from acs.db import hot as hot_statements
from acs.db.engine import Database
from acs.db.sqlite import ProcessTurns, SqliteDatabase

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


async def _waits(task: asyncio.Task[None]) -> bool:
    """True if ``task`` is still waiting a moment later (it would be done by then otherwise)."""
    done, _ = await asyncio.wait({task}, timeout=0.1)
    return not done


async def _enter(turns: ProcessTurns, entered: asyncio.Event, leave: asyncio.Event) -> None:
    async with turns:
        entered.set()
        await leave.wait()


async def test_workers_take_turns_and_a_waiting_one_is_woken_when_the_other_lets_go(tmp_path):
    """Two ``ProcessTurns`` on one file stand for two workers (each its own descriptor, so
    ``flock`` keeps them apart as it does processes)."""
    first, second = ProcessTurns(tmp_path / "db-lock"), ProcessTurns(tmp_path / "db-lock")
    try:
        leave_first, leave_second = asyncio.Event(), asyncio.Event()
        entered_first, entered_second = asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(_enter(first, entered_first, leave_first))
        await asyncio.wait_for(entered_first.wait(), 5)
        waiter = asyncio.create_task(_enter(second, entered_second, leave_second))
        assert await _waits(waiter) and not entered_second.is_set()
        leave_first.set()
        await asyncio.wait_for(entered_second.wait(), 5)  # woken, not polled for
        await holder
        leave_second.set()
        await asyncio.wait_for(waiter, 5)
    finally:
        first.close()
        second.close()


async def test_a_wait_cancelled_lets_go_of_the_turn_once_granted(tmp_path):
    path = tmp_path / "db-lock"
    first, second = ProcessTurns(path), ProcessTurns(path)
    try:
        leave = asyncio.Event()
        entered = asyncio.Event()
        holder = asyncio.create_task(_enter(first, entered, leave))
        await asyncio.wait_for(entered.wait(), 5)
        abandoned = asyncio.create_task(_enter(second, asyncio.Event(), asyncio.Event()))
        assert await _waits(abandoned)
        abandoned.cancel()
        with pytest.raises(asyncio.CancelledError):
            await abandoned
        leave.set()
        await holder
        # the abandoned wait is granted in its thread (nobody else wants the lock now)...
        assert second._waiter is not None
        await asyncio.wait_for(asyncio.to_thread(second._waiter.shutdown, wait=True), 5)
        # ...and let go of: anyone gets it
        probe = os.open(path, os.O_RDWR)
        try:
            for _ in range(500):
                try:
                    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.01)
            else:
                raise AssertionError("the abandoned wait kept the turn")
        finally:
            os.close(probe)
    finally:
        first.close()
        second.close()


def test_turns_are_off_where_the_lock_file_cannot_be_made(tmp_path, caplog):
    turns = ProcessTurns(tmp_path / "no-such-dir" / "db-lock")

    async def enter() -> None:
        async with turns:
            pass

    asyncio.run(enter())  # SQLite's own lock still decides
    assert "workers take turns by SQLite's lock alone" in caplog.text


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
