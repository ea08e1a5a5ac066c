"""The task lifecycle table and the one helper that moves tasks, on SQLite and PostgreSQL: every
pair of (status, move) either is in the table and applies, or is not and changes nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select

from acs.db import hot, tables
from acs.services import task_lifecycle as lifecycle
from acs.services.task_lifecycle import FINISHED, TRANSITIONS, Move, TaskStatus
from tests.services.harness import rows

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DEVICE = "00D09E-IGD-LIFE"


def test_every_move_leads_to_one_status() -> None:
    for move in Move:
        targets = {to for (_, m), to in TRANSITIONS.items() if m is move}
        assert len(targets) == 1, move
        assert lifecycle.target(move) in targets


def test_the_table_as_the_docs_draw_it() -> None:
    S = TaskStatus
    assert lifecycle.allowed(Move.SEND) == {S.QUEUED}
    assert lifecycle.allowed(Move.REQUEUE) == {S.SENT}
    assert lifecycle.allowed(Move.RETRY) == FINISHED - {S.DONE}
    assert lifecycle.allowed(Move.CANCEL) == set(S) - FINISHED
    assert lifecycle.allowed(Move.TIME_OUT) == {S.AWAITING_TRANSFER, S.AWAITING_BOOT}
    assert lifecycle.allowed(Move.EXPIRE) == {S.QUEUED}
    # nothing leaves done, and every finished status is reached by some move
    assert not any(s is S.DONE for (s, _m) in TRANSITIONS)
    assert set(TRANSITIONS.values()) >= FINISHED


async def _task(db, status: TaskStatus) -> int:
    async with db.write() as conn:
        known = await conn.scalar(select(tables.devices.c.id).where(tables.devices.c.id == DEVICE))
        if known is None:
            await conn.execute(
                insert(tables.devices).values(
                    id=DEVICE,
                    manufacturer="Acme",
                    oui="00D09E",
                    product_class="IGD",
                    serial_number="LIFE",
                    first_seen=NOW,
                    last_inform=NOW,
                )
            )
        return int(
            await conn.scalar(
                insert(tables.tasks)
                .values(
                    device_id=DEVICE,
                    name="Reboot",
                    arguments={},
                    status=status.value,
                    priority=0,
                    created=NOW,
                    attempts=1,
                    session_id="sess",
                )
                .returning(tables.tasks.c.id)
            )
        )


@pytest.mark.parametrize("how", list(Move))
async def test_a_move_applies_exactly_where_the_table_allows(db, how: Move) -> None:
    for status in TaskStatus:
        task_id = await _task(db, status)
        async with db.write() as conn:
            moved = await lifecycle.move(hot.over(conn), task_id, how, NOW)
        [row] = await rows(
            db, "SELECT status, finished, session_id FROM tasks WHERE id = :i", i=task_id
        )
        expected = TRANSITIONS.get((status, how))
        assert moved is (expected is not None), (status, how)
        if expected is None:
            assert (row.status, row.session_id) == (status.value, "sess")
            continue
        assert row.status == expected.value
        assert (row.finished is not None) == (expected in FINISHED)
        assert row.session_id == ("sess" if expected is TaskStatus.SENT else None)


async def test_a_race_has_one_winner(db) -> None:
    """Cancelling a task while its answer arrives: whichever move comes first applies, and the
    other learns it lost."""
    task_id = await _task(db, TaskStatus.SENT)

    async def attempt(how: Move) -> bool:
        async with db.write() as conn:
            return await lifecycle.move(hot.over(conn), task_id, how, NOW)

    outcomes = await asyncio.gather(attempt(Move.CANCEL), attempt(Move.COMPLETE))
    assert sorted(outcomes) == [False, True]
    [(status,)] = await rows(db, "SELECT status FROM tasks WHERE id = :i", i=task_id)
    assert status == ("cancelled" if outcomes[0] else "done")


async def test_move_all_and_values(db) -> None:
    first = await _task(db, TaskStatus.AWAITING_BOOT)
    second = await _task(db, TaskStatus.AWAITING_BOOT)
    done = await _task(db, TaskStatus.DONE)
    async with db.write() as conn:
        moved = await lifecycle.move_all(
            hot.over(conn),
            Move.TIME_OUT,
            NOW,
            where="device_id = :d",
            params={"d": DEVICE},
            returning=True,
            fault={"code": 8893, "string": "late"},
            attempts=lifecycle.Sql("attempts + 1"),
        )
    assert isinstance(moved, list)
    assert sorted(r.id for r in moved) == [first, second]
    assert {(r.status, r.attempts, r.fault["code"]) for r in moved} == {("fault", 2, 8893)}
    [(status,)] = await rows(db, "SELECT status FROM tasks WHERE id = :i", i=done)
    assert status == "done"
