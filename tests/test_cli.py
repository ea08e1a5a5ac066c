"""The ``acs`` command's errors: one line, naming the database and data dir it used, the fix,
exit code 2 for a database it cannot reach, open or use; nothing created by commands that
only work on an existing database."""

from __future__ import annotations

import io
import os
import re
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from acs.cli import main
from acs.db import migrate
from bench.serve import free_port

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def acs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    """``acs ARGS`` in process, in an empty working directory, with only ``env`` set: its exit
    code, standard output and standard error."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("ACS_") and not name.startswith("ACS_TEST_"):
            monkeypatch.delenv(name)

    def run(*argv: str, env: dict[str, str] | None = None, stdin: str = "") -> tuple[int, str, str]:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _plain(url: str) -> str:
    """The URL as an operator writes it: no driver."""
    return url.replace("postgresql+asyncpg://", "postgresql://").replace(
        "sqlite+aiosqlite://", "sqlite://"
    )


def test_plain_postgresql_and_sqlite_urls_work(acs, database_url, tmp_path):
    env = {"ACS_DATABASE_URL": _plain(database_url)}
    add = ("operator", "add", "alice", "--role", "admin", "--password-stdin")
    assert acs(*add, env=env, stdin="a long password\n") == (
        0,
        "operator alice (admin) created\n",
        "",
    )
    code, out, err = acs("operator", "list", env=env)
    assert (code, err) == (0, "")
    header, row = out.splitlines()
    assert header == "NAME   ROLE   DISABLED  CREATED"
    assert re.fullmatch(r"alice  admin  no        \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row)


def test_a_command_error_names_the_database_and_data_dir(acs, database_url, tmp_path):
    env = {"ACS_DATABASE_URL": database_url}
    masked = make_url(database_url).render_as_string(hide_password=True)
    assert acs("token", "create", "nobody", env=env) == (
        1,
        "",
        f"no operator 'nobody' (database {masked}, data dir {tmp_path}/data)\n",
    )


def test_an_unparsable_url_is_one_line_without_the_url(acs):
    code, out, err = acs("operator", "list", env={"ACS_DATABASE_URL": "s3cret garbage"})
    assert (code, out, err) == (
        2,
        "",
        "invalid setting ACS_DATABASE_URL: not a database URL: write "
        "postgresql://user:password@host:5432/dbname or sqlite:////absolute/path/acs.db\n",
    )


def test_a_postgresql_that_is_down(acs, tmp_path):
    port = free_port()  # nothing listens there
    url = f"postgresql://acs:s3cret@127.0.0.1:{port}/acs"
    assert acs("operator", "list", env={"ACS_DATABASE_URL": url}) == (
        2,
        "",
        f"cannot reach PostgreSQL at 127.0.0.1:{port}: connection refused; start PostgreSQL, "
        "or fix the host and port in ACS_DATABASE_URL "
        f"(database postgresql+asyncpg://acs:***@127.0.0.1:{port}/acs, data dir {tmp_path}/data)\n",
    )
    assert acs("db", "upgrade", env={"ACS_DATABASE_URL": url})[0] == 2


def test_a_postgresql_database_that_does_not_exist(acs, pg_database_url, tmp_path):
    server = make_url(pg_database_url)
    url = server.set(database="acs_no_such_database").render_as_string(hide_password=False)
    masked = make_url(url).render_as_string(hide_password=True)
    host, port, user = server.host, server.port or 5432, server.username
    flags = f"-h {host}" + (f" -p {server.port}" if server.port else "") + f" -U {user}"
    assert acs("db", "upgrade", env={"ACS_DATABASE_URL": url}) == (
        2,
        "",
        f"PostgreSQL at {host}:{port} has no database 'acs_no_such_database': create it "
        f"(createdb {flags} acs_no_such_database), or fix the database name in "
        f"ACS_DATABASE_URL (database {masked}, data dir {tmp_path}/data)\n",
    )


@pytest.mark.parametrize(
    ("argv", "stdin"),
    [
        (("operator", "list"), ""),
        (("operator", "add", "bob", "--role", "viewer", "--password-stdin"), "a long password\n"),
        (("token", "create", "bob"), ""),
        (("device", "credentials", "X-Y-Z", "--clear"), ""),
    ],
    ids=lambda value: value[1] if isinstance(value, tuple) else None,
)
def test_commands_run_elsewhere_create_no_database_and_say_where_they_looked(
    acs, tmp_path, argv, stdin
):
    db = tmp_path / "data" / "acs.db"
    assert acs(*argv, stdin=stdin) == (
        2,
        "",
        f"no database at {db}: run acs in the directory `acs serve` runs in, or give it the "
        "same --data-dir (ACS_DATA_DIR) or ACS_DATABASE_URL; `acs db upgrade` creates a new "
        f"database (database sqlite+aiosqlite:///{db}, data dir {tmp_path}/data)\n",
    )
    assert list(tmp_path.iterdir()) == []


def test_db_upgrade_creates_the_database_and_its_directory(acs, tmp_path):
    assert acs("db", "upgrade", "--data-dir", "new/dir") == (0, "database at head\n", "")
    assert (tmp_path / "new" / "dir" / "acs.db").is_file()
    assert acs("operator", "list", "--data-dir", "new/dir") == (0, "", "")


def test_an_unmigrated_database_is_one_line(acs, tmp_path):
    (tmp_path / "data").mkdir()
    sqlite3.connect(tmp_path / "data" / "acs.db").close()
    head = ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).get_current_head()
    assert acs("operator", "list") == (
        2,
        "",
        f"database schema is at nothing, this acs needs {head}: run `acs db upgrade` "
        f"(database sqlite+aiosqlite:///{tmp_path}/data/acs.db, data dir {tmp_path}/data)\n",
    )


def test_a_file_that_is_no_database(acs, tmp_path):
    (tmp_path / "notes.txt").write_text("not a database, but long enough to be read as one " * 9)
    url = f"sqlite:///{tmp_path}/notes.txt"
    assert acs("operator", "list", env={"ACS_DATABASE_URL": url}) == (
        2,
        "",
        f"{tmp_path}/notes.txt is not an SQLite database: fix --data-dir (ACS_DATA_DIR) or "
        f"ACS_DATABASE_URL (database sqlite+aiosqlite:///{tmp_path}/notes.txt, "
        f"data dir {tmp_path}/data)\n",
    )
