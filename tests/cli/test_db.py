"""``acs db status`` (schema, database, size, counts) and ``acs db backup`` (SQLite's online
backup, consistent while another connection writes; the pg_dump command for PostgreSQL)."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from acs.db import migrate
from tests.cli.conftest import register

HEAD = ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).get_current_head()


def _world(seed) -> None:
    async def work(runtime):
        await register(runtime, "GW0001")
        await register(runtime, "OLD0001", at=1_600_000_000)

    seed(work)


def test_status(acs, seed, database_url, backend):
    _world(seed)
    assert acs("tasks", "queue", "00D09E-IGD-GW0001", "Reboot")[0] == 0
    assert acs("tasks", "cancel", "1")[0] == 0
    assert acs("tasks", "queue", "00D09E-IGD-GW0001", "GetRPCMethods")[0] == 0
    masked = make_url(database_url).render_as_string(hide_password=True)
    code, out, err = acs("db", "status")
    assert (code, err) == (0, "")
    assert re.fullmatch(
        f"schema:   {HEAD} \\(head {HEAD}: up to date\\)\n"
        f"database: {re.escape(masked)}\n"
        r"size:     \d+\.\d (KiB|MiB) \(\d+ bytes\)" + "\n"
        "devices:  2 \\(online 1, late 1\\)\n"
        "tasks:    2 \\(queued 1, cancelled 1\\)\n",
        out,
    ), out
    status = json.loads(acs("db", "status", "--json")[1])
    assert status["size_bytes"] > 0
    assert status == {
        "schema": {"current": HEAD, "head": HEAD, "up_to_date": True},
        "database": masked,
        "backend": backend,
        "size_bytes": status["size_bytes"],
        "devices": {"never_seen": 0, "online": 1, "late": 1, "offline": 0, "unknown": 0},
        "tasks": {
            "queued": 1,
            "sent": 0,
            "awaiting_transfer": 0,
            "awaiting_boot": 0,
            "done": 0,
            "fault": 0,
            "expired": 0,
            "cancelled": 1,
        },
    }


def test_status_of_an_outdated_schema(acs_anywhere, tmp_path):
    """It says what is there, and exits 2 as every other command would."""
    acs = acs_anywhere
    url = f"sqlite:///{tmp_path}/old.db"
    previous = (
        ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
        .get_revision(HEAD)
        .down_revision
    )
    assert acs("db", "upgrade", str(previous), "--database-url", url) == (
        0,
        f"database at {previous}\n",
        "",
    )
    code, out, err = acs("db", "status", "--database-url", url)
    assert code == 2
    assert out.splitlines()[0] == f"schema:   {previous} (head {HEAD}: run `acs db upgrade`)"
    assert out.splitlines()[3:] == ["devices:  -", "tasks:    -"]
    assert err == (
        f"database schema is at {previous}, this acs needs {HEAD}: run `acs db upgrade` "
        f"(database sqlite+aiosqlite:///{tmp_path}/old.db, data dir {tmp_path}/data)\n"
    )


def test_backup(acs, seed, backend, database_url, tmp_path, where):
    _world(seed)
    if backend == "postgresql":
        url = make_url(database_url)
        assert acs("db", "backup", "acs.dump") == (
            2,
            "",
            "acs db backup copies SQLite databases; back PostgreSQL up with `pg_dump "
            f"--format=custom --file=acs.dump -h {url.host} -p {url.port} -U {url.username} "
            f"{url.database}` (the password from PGPASSWORD or ~/.pgpass){where}\n",
        )
        assert not (tmp_path / "acs.dump").exists()
        return
    source = Path(make_url(database_url).database or "")
    # another connection in the middle of a write transaction, as `acs serve` may be
    writer = sqlite3.connect(source, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE devices SET serial_number = 'UNCOMMITTED'")
        code, out, err = acs("db", "backup", "copy.db")
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    size = (tmp_path / "copy.db").stat().st_size
    assert (code, out, err) == (0, f"{source} backed up to copy.db ({size} bytes)\n", "")
    assert not (tmp_path / "copy.db.part").exists()
    # the copy is a database acs uses: what was committed, nothing of the open transaction
    code, out, err = acs("devices", "list", "--database-url", f"sqlite:///{tmp_path}/copy.db")
    assert (code, err) == (0, "")
    assert [line.split()[1] for line in out.splitlines()] == ["SERIAL", "GW0001", "OLD0001"]

    assert acs("db", "backup", "copy.db") == (
        1,
        "",
        f"copy.db exists; acs db backup writes a new file{where}\n",
    )
    assert acs("db", "backup", "no/such/dir/copy.db") == (
        1,
        "",
        f"no directory no/such/dir for the backup{where}\n",
    )


def test_a_storage_failure_is_one_line(acs_anywhere, tmp_path):
    """SQLite locked by another process past its busy timeout (15 s): the command says so in
    one line, exit status 2, and nothing is changed."""
    acs = acs_anywhere
    url = f"sqlite:///{tmp_path}/acs.db"
    assert acs("db", "upgrade", "--database-url", url)[0] == 0
    holder = sqlite3.connect(tmp_path / "acs.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # a writer that does not let go
        code, out, err = acs("operator", "add", "alice", "--role", "viewer", "--database-url", url)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert (code, out, err) == (
        2,
        "",
        "storage unavailable: database is locked; retry later "
        f"(database sqlite+aiosqlite:///{tmp_path}/acs.db, data dir {tmp_path}/data)\n",
    )
    assert acs("operator", "list", "--database-url", url) == (0, "", "")
