"""``acs db``: the database itself: migrate it, what state it is in, back it up."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from acs.cli.common import Cli, Usage, add_storage_flags, database_command, now, settings_of
from acs.cli.output import fields, human_size
from acs.db.errors import DatabaseUnavailable
from acs.services.errors import Conflict, Invalid


def cmd_upgrade(args: argparse.Namespace) -> int:
    from acs.db import migrate, param_index
    from acs.db.engine import Database

    settings = settings_of(args)

    async def run() -> None:
        db = Database(settings.resolved_database_url)
        try:
            await db.probe(create=True)
            await migrate.upgrade(db, args.revision)
            await param_index.ensure_indexes(db, settings.indexed_parameter_list)
        finally:
            await db.dispose()

    asyncio.run(run())
    print(f"database at {args.revision}")
    return 0


def _counted(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    shown = ", ".join(f"{name} {n}" for name, n in counts.items() if n)
    return f"{total} ({shown})" if shown else "0"


async def cmd_status(cli: Cli, args: argparse.Namespace) -> int:
    from acs.db import migrate
    from acs.services import devices, tasks

    current, head = await migrate.revisions(cli.db)
    status: dict[str, Any] = {
        "schema": {"current": current, "head": head, "up_to_date": current == head},
        "database": cli.settings.redacted_database_url,
        "backend": cli.db.dialect,
        "size_bytes": await cli.db.size(),
        "devices": None,
        "tasks": None,
    }
    if current == head:  # an older schema may lack the tables counted
        status["devices"] = await devices.count_by_status(cli.db, now())
        status["tasks"] = await tasks.count_by_status(cli.db)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        size = status["size_bytes"]
        sys.stdout.write(
            fields(
                [
                    (
                        "schema",
                        f"{current or 'none'} (head {head}"
                        + (": up to date)" if current == head else ": run `acs db upgrade`)"),
                    ),
                    ("database", status["database"]),
                    ("size", None if size is None else f"{human_size(size)} ({size} bytes)"),
                    ("devices", status["devices"] and _counted(status["devices"])),
                    ("tasks", status["tasks"] and _counted(status["tasks"])),
                ]
            )
        )
    if current != head:
        raise DatabaseUnavailable(
            f"database schema is at {current or 'nothing'}, this acs needs {head}: "
            "run `acs db upgrade`"
        )
    return 0


async def cmd_backup(cli: Cli, args: argparse.Namespace) -> int:
    from acs.db.postgres import PostgresDatabase
    from acs.db.sqlite import SqliteDatabase

    target = Path(args.file)
    if isinstance(cli.db, PostgresDatabase):
        raise Usage(
            "acs db backup copies SQLite databases; back PostgreSQL up with "
            f"`{cli.db.dump_command(str(target))}` (the password from PGPASSWORD or ~/.pgpass)"
        )
    assert isinstance(cli.db, SqliteDatabase)
    if cli.db.path is None:
        raise Usage("acs db backup copies SQLite database files, not in-memory databases")
    if target.exists():
        raise Conflict(f"{target} exists; acs db backup writes a new file")
    if not target.parent.is_dir():
        raise Invalid(f"no directory {target.parent} for the backup")
    size = await cli.db.backup(target)
    print(f"{cli.db.path} backed up to {target} ({size} bytes)")
    return 0


def register(sub: Any) -> None:
    group = sub.add_parser("db", help="the database: schema, status, backup")
    commands = group.add_subparsers(dest="db", required=True)
    upgrade = commands.add_parser("upgrade", help="apply migrations (creates the database)")
    add_storage_flags(upgrade)
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(func=cmd_upgrade)

    status = commands.add_parser(
        "status",
        help="schema revision, database, size, devices and tasks by status",
        description="The schema revision (the database's and this acs's newest), the database "
        "(its URL without password), its size (SQLite: the file and its write-ahead log; "
        "PostgreSQL: pg_database_size) and how many devices and tasks there are by status. "
        "Exit status 2 when the schema is not this acs's.",
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    database_command(status, cmd_status, schema=False)

    backup = commands.add_parser(
        "backup",
        help="copy the SQLite database into a new file, consistent while acs serve runs",
        description="Copy the SQLite database into FILE with SQLite's online backup: the "
        "database as of one moment, taken while `acs serve` goes on writing. FILE must not "
        "exist. For PostgreSQL it prints the pg_dump command for the database and exits 2.",
    )
    backup.add_argument("file", metavar="FILE")
    database_command(backup, cmd_backup)
