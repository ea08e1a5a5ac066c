"""``acs.db.hot``: hot-path statements run on the driver inside ``write(hot=True)`` and through
SQLAlchemy elsewhere, with the same stored values and the same results either way, and in
one transaction with whatever the caller runs through SQLAlchemy meanwhile."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from acs.db import engine as engine_module
from acs.db import hot, queries, tables
from acs.db.engine import Database
from acs.db.types import JSONDoc, UTCDateTime

NOW = datetime(2026, 11, 26, 7, 30, 15, 123456, tzinfo=UTC)


def _json(dialect: str, name: str) -> str:
    return f"CAST(:{name} AS jsonb)" if dialect == "postgresql" else f":{name}"


def _insert(db: Database) -> hot.Statement:
    return hot.Statement(
        "INSERT INTO cwmp_sessions (id, device_id, state, peer_host, peer_port, started, "
        f"updated, expires) VALUES (:id, :device, {_json(db.dialect, 'state')}, :host, :port, "
        ":now, :now, :expires) ON CONFLICT DO NOTHING",
        binds={"now": UTCDateTime(), "expires": UTCDateTime()},
    )


SELECT = hot.Statement(
    "SELECT id, state, peer_port, expires FROM cwmp_sessions WHERE peer_host = :host "
    "AND expires > :now ORDER BY id",
    columns=("id", "state", "peer_port", "expires"),
    binds={"now": UTCDateTime()},
    types={"state": JSONDoc, "expires": UTCDateTime()},
)


async def _device(db: Database, device_id: str) -> None:
    async with db.write() as conn:
        await conn.execute(
            insert(tables.devices).values(
                id=device_id,
                manufacturer="Acme",
                oui="OUI",
                product_class="PC",
                serial_number=device_id,
                first_seen=NOW,
                last_inform=NOW,
            )
        )


def _session(n: int, device: str) -> dict[str, object]:
    return {
        "id": f"s{n}",
        "device": device,
        "state": json.dumps({"n": n, "nested": {"ok": True}}),
        "host": "192.0.2.1",
        "port": 40000 + n,
        "now": NOW,
        "expires": NOW + timedelta(seconds=30 + n),
    }


async def test_driver_and_sqlalchemy_paths_store_and_read_the_same(db: Database):
    """One row written on each path; each path reads both back identically, and the stored
    text of the datetimes is the same (SQLite compares them as text)."""
    await _device(db, "dev-a")
    insert = _insert(db)
    async with db.write(hot=True) as conn:
        assert (hot.DRIVER_KEY in conn.info) == (db.hot_engine is not None or db.is_postgresql)
        assert await insert.execute(conn, _session(1, "dev-a")) == 1
        assert await insert.execute(conn, _session(1, "dev-a")) == 0  # ON CONFLICT DO NOTHING
    async with db.write() as conn:  # plain SQLAlchemy
        assert hot.DRIVER_KEY not in conn.info
        await conn.execute(text("DELETE FROM cwmp_sessions"))
        assert await insert.execute(conn, _session(2, "dev-a")) == 1
    # Read back on both paths.
    async with db.write(hot=True) as conn:
        by_driver = await SELECT.fetch(conn, {"host": "192.0.2.1", "now": NOW})
    async with db.read() as conn:
        by_sqlalchemy = await SELECT.fetch(conn, {"host": "192.0.2.1", "now": NOW})
        stored = (await conn.execute(text("SELECT CAST(expires AS TEXT) FROM cwmp_sessions"))).all()
    assert by_driver == by_sqlalchemy
    assert [r.id for r in by_driver] == ["s2"]
    row = by_driver[0]
    assert row.state == {"n": 2, "nested": {"ok": True}}
    assert row.peer_port == 40002
    assert row.expires == NOW + timedelta(seconds=32)
    assert row.expires.tzinfo is not None
    assert len(stored) == 1


async def test_datetimes_written_by_either_path_compare_alike(db: Database):
    """A row written by the driver is found by a SQLAlchemy range query and vice versa."""
    await _device(db, "dev-c")
    await _device(db, "dev-c2")  # one session per device
    insert = _insert(db)
    async with db.write(hot=True) as conn:
        assert await insert.execute(conn, _session(3, "dev-c"))
    async with db.write() as conn:
        assert await insert.execute(conn, _session(4, "dev-c2"))
    for moment, expected in [
        (NOW + timedelta(seconds=32), ["s3", "s4"]),
        (NOW + timedelta(seconds=33), ["s4"]),
        (NOW + timedelta(seconds=34), []),
    ]:
        async with db.write(hot=True) as conn:
            hot_ids = [r.id for r in await SELECT.fetch(conn, {"host": "192.0.2.1", "now": moment})]
        async with db.read() as conn:
            sa_ids = [r.id for r in await SELECT.fetch(conn, {"host": "192.0.2.1", "now": moment})]
        assert hot_ids == expected, moment
        assert sa_ids == expected, moment


async def test_sqlalchemy_statements_join_the_hot_transaction(db: Database):
    """What hooks run through SQLAlchemy inside a hot transaction commits and rolls back with
    the driver's statements."""
    await _device(db, "dev-d")
    insert = _insert(db)
    with pytest.raises(RuntimeError):
        async with db.write(hot=True) as conn:
            await insert.execute(conn, _session(5, "dev-d"))
            await conn.execute(text("UPDATE devices SET mode = 'ctc' WHERE id = 'dev-d'"))
            raise RuntimeError("abandon")
    async with db.read() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM cwmp_sessions")) == 0
        assert await conn.scalar(text("SELECT mode FROM devices WHERE id = 'dev-d'")) is None
    async with db.write(hot=True) as conn:
        await conn.execute(text("UPDATE devices SET mode = 'ctc' WHERE id = 'dev-d'"))
        await insert.execute(conn, _session(6, "dev-d"))
    assert not conn.in_transaction()  # SQLAlchemy's bookkeeping ended with the transaction
    async with db.read() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM cwmp_sessions")) == 1
        assert await conn.scalar(text("SELECT mode FROM devices WHERE id = 'dev-d'")) == "ctc"
    # and the connection is fine for the next hot transaction, on either path
    async with db.write(hot=True) as conn:
        assert await queries.delete_session(conn, "s6")


async def test_driver_errors_surface_as_sqlalchemy_errors(db: Database):
    insert = hot.Statement(
        "INSERT INTO informs (device_id, received, events, retry_count) "
        "VALUES (:device, :now, '[]', 0)",
        binds={"now": UTCDateTime()},
    )
    with pytest.raises(IntegrityError):  # no such device: the foreign key
        async with db.write(hot=True) as conn:
            await insert.execute(conn, {"device": "nobody", "now": NOW})
    bad = hot.Statement("SELECT no_such_column FROM devices", columns=("x",))
    with pytest.raises(DBAPIError):
        async with db.write(hot=True) as conn:
            await bad.fetch(conn, {})
    async with db.write(hot=True) as conn:  # nothing left half-open
        assert await SELECT.fetch(conn, {"host": "198.51.100.1", "now": NOW}) == []


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_lost_postgresql_connection_fails_one_transaction_only(db: Database):
    with pytest.raises(DBAPIError):
        async with db.write(hot=True) as conn:
            pid = await conn.scalar(text("SELECT pg_backend_pid()"))
            other = Database(db.url)
            try:
                async with other.write() as killer:
                    await killer.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            finally:
                await other.dispose()
            await SELECT.fetch(conn, {"host": "198.51.100.1", "now": NOW})
    async with db.write(hot=True) as conn:
        assert await SELECT.fetch(conn, {"host": "198.51.100.1", "now": NOW}) == []


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_hot_sqlite_commits_are_checkpointed_off_the_event_loop(db: Database, monkeypatch):
    """The hot connection does not checkpoint inside its commits; the checkpointer copies the
    WAL back after every CHECKPOINT_EVERY_COMMITS commits."""
    assert db.hot_engine is not None
    monkeypatch.setattr(engine_module, "CHECKPOINT_EVERY_COMMITS", 5)
    await _device(db, "dev-e")
    before = db.checkpoints
    for n in range(5):
        async with db.write(hot=True) as conn:
            await _insert(db).execute(conn, _session(100 + n, "dev-e"))
    async with db.write(hot=True) as conn:
        raw = conn.info["acs.raw_sqlite"]
        assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        # and it reads the database file through a memory map (its page cache is small)
        assert raw.execute("PRAGMA mmap_size").fetchone()[0] == engine_module.HOT_MMAP_BYTES
    for _ in range(200):
        if db.checkpoints > before:
            break
        await asyncio.sleep(0.01)
    assert db.checkpoints > before


@pytest.mark.parametrize("microsecond", [123456, 0])
async def test_both_paths_store_the_same_text(db: Database, microsecond: int):
    """SQLite compares datetimes as text: both paths must write the same text for the same
    instant, also for a whole second (Python's default adapter would drop the fraction)."""
    moment = NOW.replace(microsecond=microsecond)
    await _device(db, "dev-f1")
    await _device(db, "dev-f2")
    insert = _insert(db)
    values = {**_session(7, "dev-f1"), "now": moment, "expires": moment}
    async with db.write(hot=True) as conn:
        await insert.execute(conn, values)
    async with db.write() as conn:
        await insert.execute(conn, {**values, "id": "s8", "device": "dev-f2"})
    async with db.read() as conn:
        texts = (
            await conn.execute(
                text("SELECT CAST(expires AS TEXT), CAST(started AS TEXT) FROM cwmp_sessions")
            )
        ).all()
    assert len(texts) == 2
    assert texts[0] == texts[1]
