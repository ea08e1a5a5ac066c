"""``acs.db.hot``: statements run on the driver inside ``hot_write()`` and through SQLAlchemy
elsewhere (``hot.over``), with the same stored values and the same results either way; a hot
transaction commits or rolls back as one, and its driver errors are ``StorageError``."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, text

from acs.db import hot, queries, tables
from acs.db import sqlite as sqlite_module
from acs.db.engine import Database
from acs.db.errors import StorageError
from acs.db.types import JSONDoc, UTCDateTime

NOW = datetime(2026, 11, 26, 7, 30, 15, 123456, tzinfo=UTC)


def _insert(db: Database) -> hot.Statement:
    return hot.Statement(
        "INSERT INTO cwmp_sessions (id, device_id, state, peer_host, peer_port, started, "
        "updated, expires) VALUES (:id, :device, :state, :host, :port, "
        ":now, :now, :expires) ON CONFLICT DO NOTHING",
        binds={"now": UTCDateTime(), "expires": UTCDateTime(), "state": JSONDoc},
        fusable=True,
    )


MODE = hot.Statement("UPDATE devices SET mode = :mode WHERE id = :id")


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
        "state": {"n": n, "nested": {"ok": True}},
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
    async with db.hot_write() as tx:
        assert isinstance(tx, hot.DriverTransaction)  # SQLite files and PostgreSQL alike
        assert await tx.execute(insert, **_session(1, "dev-a")) == 1
        assert await tx.execute(insert, **_session(1, "dev-a")) == 0  # ON CONFLICT DO NOTHING
    async with db.write() as conn:  # plain SQLAlchemy
        await conn.execute(text("DELETE FROM cwmp_sessions"))
        assert await hot.over(conn).execute(insert, **_session(2, "dev-a")) == 1
    # Read back on both paths.
    async with db.hot_write() as tx:
        by_driver = await tx.fetch(SELECT, host="192.0.2.1", now=NOW)
    async with db.read() as conn:
        by_sqlalchemy = await hot.over(conn).fetch(SELECT, host="192.0.2.1", now=NOW)
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
    async with db.hot_write() as tx:
        assert await tx.execute(insert, **_session(3, "dev-c"))
    async with db.write() as conn:
        assert await hot.over(conn).execute(insert, **_session(4, "dev-c2"))
    for moment, expected in [
        (NOW + timedelta(seconds=32), ["s3", "s4"]),
        (NOW + timedelta(seconds=33), ["s4"]),
        (NOW + timedelta(seconds=34), []),
    ]:
        async with db.hot_write() as tx:
            hot_ids = [r.id for r in await tx.fetch(SELECT, host="192.0.2.1", now=moment)]
        async with db.read() as conn:
            sa_ids = [
                r.id for r in await hot.over(conn).fetch(SELECT, host="192.0.2.1", now=moment)
            ]
        assert hot_ids == expected, moment
        assert sa_ids == expected, moment


async def test_a_hot_transaction_commits_and_rolls_back_as_one(db: Database):
    """What a hot transaction's statements write commits or rolls back together."""
    await _device(db, "dev-d")
    insert = _insert(db)
    with pytest.raises(RuntimeError):
        async with db.hot_write() as tx:
            await tx.execute(insert, **_session(5, "dev-d"))
            await tx.execute(MODE, mode="ctc", id="dev-d")
            raise RuntimeError("abandon")
    async with db.read() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM cwmp_sessions")) == 0
        assert await conn.scalar(text("SELECT mode FROM devices WHERE id = 'dev-d'")) is None
    async with db.hot_write() as tx:
        await tx.execute(MODE, mode="ctc", id="dev-d")
        await tx.execute(insert, **_session(6, "dev-d"))
    async with db.read() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM cwmp_sessions")) == 1
        assert await conn.scalar(text("SELECT mode FROM devices WHERE id = 'dev-d'")) == "ctc"
    # and the connection is fine for the next hot transaction
    async with db.hot_write() as tx:
        assert await queries.delete_session(tx, "s6") == {"n": 6, "nested": {"ok": True}}


async def test_driver_errors_surface_as_storage_errors(db: Database):
    insert = hot.Statement(
        "INSERT INTO informs (device_id, received, events, retry_count) "
        "VALUES (:device, :now, '[]', 0)",
        binds={"now": UTCDateTime()},
    )
    with pytest.raises(StorageError, match=r"(?i)foreign key"):  # no such device
        async with db.hot_write() as tx:
            await tx.execute(insert, device="nobody", now=NOW)
    bad = hot.Statement("SELECT no_such_column FROM devices", columns=("x",))
    with pytest.raises(StorageError, match="no_such_column"):
        async with db.hot_write() as tx:
            await tx.fetch(bad)
    async with db.hot_write() as tx:  # nothing left half-open
        assert await tx.fetch(SELECT, host="198.51.100.1", now=NOW) == []


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_lost_postgresql_connection_fails_one_transaction_only(db: Database):
    backend = hot.Statement("SELECT pg_backend_pid()", columns=("pid",))
    with pytest.raises(StorageError):
        async with db.hot_write() as tx:
            pid = (await tx.first(backend)).pid
            other = Database(db.url)
            try:
                async with other.write() as killer:
                    await killer.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            finally:
                await other.dispose()
            await tx.fetch(SELECT, host="198.51.100.1", now=NOW)
    async with db.hot_write() as tx:
        assert await tx.fetch(SELECT, host="198.51.100.1", now=NOW) == []


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_hot_sqlite_commits_are_checkpointed_off_the_event_loop(db: Database, monkeypatch):
    """The hot connection does not checkpoint inside its commits; the checkpointer copies the
    WAL back after every CHECKPOINT_EVERY_COMMITS commits."""
    assert isinstance(db, sqlite_module.SqliteDatabase) and db.path is not None
    monkeypatch.setattr(sqlite_module, "CHECKPOINT_EVERY_COMMITS", 5)
    await _device(db, "dev-e")
    before = db.checkpoints
    for n in range(5):
        async with db.hot_write() as tx:
            await tx.execute(_insert(db), **_session(100 + n, "dev-e"))
    pragma = {
        name: hot.Statement(f"PRAGMA {name}", columns=("value",))
        for name in ("wal_autocheckpoint", "mmap_size")
    }
    async with db.hot_write() as tx:
        assert (await tx.first(pragma["wal_autocheckpoint"])).value == 0
        # and it reads the database file through a memory map (its page cache is small)
        assert (await tx.first(pragma["mmap_size"])).value == sqlite_module.HOT_MMAP_BYTES
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
    async with db.hot_write() as tx:
        await tx.execute(insert, **values)
    async with db.write() as conn:
        await hot.over(conn).execute(insert, **{**values, "id": "s8", "device": "dev-f2"})
    async with db.read() as conn:
        texts = (
            await conn.execute(
                text("SELECT CAST(expires AS TEXT), CAST(started AS TEXT) FROM cwmp_sessions")
            )
        ).all()
    assert len(texts) == 2
    assert texts[0] == texts[1]


@pytest.mark.parametrize("size", [10, queries.LARGE_PATCH + 500])
async def test_a_patch_merges_key_by_key_whatever_its_size(db: Database, size: int):
    """Small patches merge in SQL; large ones (a whole tree) another way on SQLite, where
    json_patch is quadratic. Either way: entries of a path updated key by key, others kept."""
    await _device(db, "dev-m")
    known = {f"T.{i}.P": {"value": i, "type": "xsd:int", "writable": True} for i in range(size)}
    known["T.kept"] = {"value": "k", "type": "xsd:string"}
    async with db.hot_write() as tx:
        await queries.merge_parameters(tx, "dev-m", known)
    patch = {f"T.{i}.P": {"value": -i, "updated": "now"} for i in range(0, 2 * size, 2)}
    async with db.hot_write() as tx:
        await queries.merge_parameters(tx, "dev-m", patch)
    async with db.read() as conn:
        tree = await conn.scalar(text("SELECT parameters FROM devices WHERE id = 'dev-m'"))
    tree = tree if isinstance(tree, dict) else json.loads(tree)
    assert len(tree) == size + 1 + size // 2
    assert tree["T.kept"] == {"value": "k", "type": "xsd:string"}
    assert tree["T.2.P"] == {"value": -2, "type": "xsd:int", "writable": True, "updated": "now"}
    assert tree["T.1.P"] == {"value": 1, "type": "xsd:int", "writable": True}
    assert tree[f"T.{2 * size - 2}.P"] == {"value": -(2 * size - 2), "updated": "now"}


INFORM = hot.Statement(
    "INSERT INTO informs (device_id, received, events, retry_count) "
    "VALUES (:device, :now, '[]', 0)",
    binds={"now": UTCDateTime()},
    fusable=True,
)
NEW_DEVICE = hot.Statement(
    "INSERT INTO devices (id, manufacturer, oui, product_class, serial_number, last_events, "
    "tags, parameters) VALUES (:id, 'Acme', 'OUI', 'PC', :id, '[]', '[]', '{}')",
    fusable=True,
)
COUNTS = (
    "SELECT (SELECT count(*) FROM devices), (SELECT count(*) FROM informs), "
    "(SELECT count(*) FROM cwmp_sessions)"
)


async def _counts(db: Database) -> tuple[int, ...]:
    async with db.read() as conn:
        return tuple((await conn.execute(text(COUNTS))).one())


async def test_deferred_writes_run_before_what_follows_and_go_with_the_transaction(db: Database):
    """A deferred write is seen by the statements after it, runs in order with its parent row
    (foreign keys hold), and commits or rolls back with the rest; a write that never ran
    because the transaction failed first leaves nothing."""
    with pytest.raises(RuntimeError):
        async with db.hot_write() as tx:
            await tx.defer(NEW_DEVICE, id="dev-x")
            await tx.defer(INFORM, device="dev-x", now=NOW)
            raise RuntimeError("abandon before anything ran")
    with pytest.raises(RuntimeError):
        async with db.hot_write() as tx:
            await tx.defer(NEW_DEVICE, id="dev-x")
            assert await tx.first(hot.Statement("SELECT count(*) FROM devices", columns=("n",)))
            raise RuntimeError("abandon after they ran")
    assert await _counts(db) == (0, 0, 0)
    async with db.hot_write() as tx:
        await tx.defer(NEW_DEVICE, id="dev-x")
        await tx.defer(INFORM, device="dev-x", now=NOW)
        assert await tx.execute_last(_insert(db), **_session(1, "dev-x")) == 1
    assert await _counts(db) == (1, 1, 1)
    async with db.hot_write() as tx:  # the same table twice: one after the other
        await tx.defer(INFORM, device="dev-x", now=NOW)
        await tx.defer(INFORM, device="dev-x", now=NOW + timedelta(seconds=1))
        await tx.defer(MODE, mode="ctc", id="dev-x")
    assert await _counts(db) == (1, 3, 1)
    with pytest.raises(StorageError, match=r"(?i)foreign key"):  # one fails: none is kept
        async with db.hot_write() as tx:
            await tx.defer(NEW_DEVICE, id="dev-y")
            await tx.defer(INFORM, device="nobody", now=NOW)
            await tx.execute_last(_insert(db), **_session(2, "dev-y"))
    assert await _counts(db) == (1, 3, 1)


async def test_nothing_runs_after_the_last_statement(db: Database):
    await _device(db, "dev-z")
    with pytest.raises(RuntimeError, match="last"):
        async with db.hot_write() as tx:
            await tx.execute_last(MODE, mode="ctc", id="dev-z")
            if db.is_sqlite:  # in process: nothing to save, and no check
                raise RuntimeError("after the last")
            await tx.execute(MODE, mode="common", id="dev-z")


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_postgresql_begins_on_demand_and_fuses_deferred_writes(db: Database, monkeypatch):
    """Reads run alone until a statement writes or locks; a last statement with nothing begun
    runs alone; deferred writes of different tables go with the next statement as one."""
    sent: list[str] = []
    execute, fetch = hot.AsyncpgDriver.execute, hot.AsyncpgDriver.fetch

    async def counting_execute(self: hot.AsyncpgDriver, sql: str, params: object, **kw):  # type: ignore[no-untyped-def]
        sent.append(sql if self.transaction is not None or kw.get("last") else "BEGIN; " + sql)
        return await execute(self, sql, params, **kw)

    async def counting_fetch(self: hot.AsyncpgDriver, sql: str, params: object, **kw):  # type: ignore[no-untyped-def]
        sent.append(sql if self.transaction is not None or kw.get("locks") else "alone: " + sql)
        return await fetch(self, sql, params, **kw)

    monkeypatch.setattr(hot.AsyncpgDriver, "execute", counting_execute)
    monkeypatch.setattr(hot.AsyncpgDriver, "fetch", counting_fetch)
    began: list[bool] = []
    begin = hot.AsyncpgDriver._begin

    async def counting_begin(self: hot.AsyncpgDriver) -> None:
        began.append(self.transaction is None)
        await begin(self)

    monkeypatch.setattr(hot.AsyncpgDriver, "_begin", counting_begin)

    async with db.hot_write() as tx:  # reads only: no transaction
        await tx.fetch(SELECT, host="192.0.2.1", now=NOW)
    assert began == [] and sent[0].startswith("alone: SELECT")
    sent.clear()
    async with db.hot_write() as tx:  # deferred writes and a last one: one statement, alone
        await tx.fetch(SELECT, host="192.0.2.1", now=NOW)
        await tx.defer(NEW_DEVICE, id="dev-f")
        await tx.defer(INFORM, device="dev-f", now=NOW)
        await tx.execute_last(_insert(db), **_session(1, "dev-f"))
    assert began == []
    assert len(sent) == 2 and sent[1].startswith("WITH f0 AS (INSERT INTO devices")
    assert await _counts(db) == (1, 1, 1)
    sent.clear()
    plain = hot.Statement(INFORM.text_for("postgresql"), binds=INFORM.binds)  # not fusable
    async with db.hot_write() as tx:  # what is not fusable goes on its own, after them
        await tx.defer(NEW_DEVICE, id="dev-g")
        await tx.execute(plain, device="dev-g", now=NOW)
    assert [sql.split(" (")[0] for sql in sent] == [
        "BEGIN; INSERT INTO devices",
        "INSERT INTO informs",
    ]
    assert await _counts(db) == (2, 2, 1)
    sent.clear()
    began.clear()
    lock = hot.Statement("SELECT id FROM devices WHERE id = :id FOR NO KEY UPDATE", columns=("id",))
    async with db.hot_write() as tx:  # a lock begins the transaction, and a write does
        await tx.fetch(lock, id="dev-f")
        await tx.execute(MODE, mode="ctc", id="dev-f")
    assert began == [True, False]
    began.clear()
    async with db.hot_write() as tx:
        await tx.execute(MODE, mode="common", id="dev-f")
    assert began == [True]
