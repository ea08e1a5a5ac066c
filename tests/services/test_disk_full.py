"""A full disk, said in one place (``acs.db.errors.is_disk_full``), on real errors: the OS's
ENOSPC (/dev/full), SQLite's SQLITE_FULL (a database that may not grow: max_page_count), and
the file store's upload refused by a full database leaving no bytes behind."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import event, text

from acs.db import migrate
from acs.db.engine import Database
from acs.db.errors import InsufficientStorage, StorageError, is_disk_full
from acs.services.files import FileStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_enospc_sqlite_full_and_postgresql_disk_full_are_a_full_disk(tmp_path):
    with pytest.raises(OSError) as enospc, open("/dev/full", "wb", buffering=0) as full:
        full.write(b"x")
    assert enospc.value.errno == errno.ENOSPC and is_disk_full(enospc.value)

    conn = sqlite3.connect(tmp_path / "full.db")
    conn.execute("CREATE TABLE t (x BLOB)")
    conn.execute("PRAGMA max_page_count = 3")
    with pytest.raises(sqlite3.OperationalError) as sqlite_full:
        conn.execute("INSERT INTO t VALUES (zeroblob(100000))")
    assert "database or disk is full" in str(sqlite_full.value)
    assert is_disk_full(sqlite_full.value)
    try:  # what a caller sees: the driver's error wrapped
        raise StorageError("hot transaction failed") from sqlite_full.value
    except StorageError as wrapped:
        assert is_disk_full(wrapped)
    assert is_disk_full(asyncpg.exceptions.DiskFullError("could not extend file"))
    assert is_disk_full(InsufficientStorage("the file store's disk is full"))

    with pytest.raises(FileNotFoundError) as missing:
        (tmp_path / "no" / "such").read_bytes()
    assert not is_disk_full(missing.value)
    assert not is_disk_full(sqlite3.OperationalError("database is locked"))
    assert not is_disk_full(StorageError("connection lost"))
    conn.close()


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _store(store: FileStore, name: str, content: bytes) -> None:
    await store.store(
        name,
        _chunks(content),
        file_type="2 Web Content",
        oui=None,
        product_class=None,
        version=None,
        created_by=None,
        now=NOW,
    )


def _blobs(root: Path) -> set[str]:
    return {p.name for p in root.rglob("*") if p.is_file()}


async def test_an_upload_the_database_has_no_room_for_leaves_no_bytes(tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/acs.db")
    await db.probe(create=True)
    await migrate.upgrade(db)
    root = tmp_path / "files"
    store = FileStore(db, root, b"secret", max_bytes=1 << 20)
    try:
        await _store(store, "kept.bin", b"kept")
        # from now on the database may not grow by a page (every new connection)
        await db.engine.dispose()

        @event.listens_for(db.engine.sync_engine, "connect")
        def no_growth(dbapi_conn, _record):
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA page_count")
            pages = cursor.fetchone()[0]
            cursor.execute(f"PRAGMA max_page_count = {pages}")
            cursor.close()

        # fill the pages there are with rows of the size the upload's will be
        async with db.engine.connect() as conn:
            for n in range(10_000):
                try:
                    await conn.execute(
                        text(
                            "INSERT INTO files (name, file_type, sha256, size, content_type,"
                            " created) VALUES (:name, 'x', :sha, 1, 'x', :now)"
                        ),
                        {"name": f"filler-{n:05d}-" + "x" * 150, "sha": "0" * 64, "now": NOW},
                    )
                    await conn.commit()
                except Exception as exc:
                    assert is_disk_full(exc), exc
                    await conn.rollback()
                    break
            else:
                raise AssertionError("the database never filled")
        before = _blobs(root)

        with pytest.raises(InsufficientStorage, match="the database's disk is full"):
            await _store(store, "new-" + "y" * 150 + ".bin", b"bytes of a new file")
        assert _blobs(root) == before  # the new blob went with the refused row
        # identical bytes stored already stay: a refused row takes only what it brought
        with pytest.raises(InsufficientStorage):
            await _store(store, "same-" + "y" * 150 + ".bin", b"kept")
        assert _blobs(root) == before
        assert (await store.get("kept.bin")).size == 4
    finally:
        await db.dispose()
