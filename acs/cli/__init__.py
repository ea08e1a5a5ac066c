"""The ``acs`` command: ``main`` parses, runs the command, and turns every error into one
line and an exit status, here and nowhere else.

A command that uses the database runs on the same machine as its data, through the same
``acs.services`` functions the REST API calls (never its own SQL): it works while the server
is down, needs no token, and cannot drift from the API. Each command group is a module of
this package with a ``register(subparsers)``.

Exit status: 0 done; 1 refused (not found, conflict, invalid input: ``acs.services.errors``);
2 a database acs cannot use, bad settings or usage; 3 ``--wait`` ran out of time; 130
interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from acs import __version__
from acs.cli import (
    config,
    cpe_password,
    db,
    devices,
    dhcp,
    files,
    operators,
    provisioning,
    rollouts,
    serve,
    simulate,
    tasks,
    tls,
)
from acs.cli.common import Cli, Usage, refused, settings_of
from acs.db.errors import DatabaseUnavailable

EXIT_STATUS = """\
exit status:
  0  done
  1  refused: not found, a conflict (e.g. cancelling a finished task), invalid input
  2  a database acs cannot reach, open or use; bad settings or usage
  3  tasks queue --wait: not every task finished in time
  (tasks queue --wait exits 1 when a task ended in fault, expired or cancelled)

Commands that use the database find it as `acs serve` does (ACS_DATABASE_URL, else
data/acs.db under --data-dir) and call the same services as the REST API; they work while
the server is down and need no token. Every listing and show takes --json (the API's shape).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acs",
        description="TR-069 Auto-Configuration Server",
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"acs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (
        serve,
        db,
        devices,
        tasks,
        files,
        provisioning,
        rollouts,
        operators,
        cpe_password,
        config,
        dhcp,
        tls,
        simulate,
    ):
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if hasattr(args, "work"):
            return asyncio.run(_database_command(args))
        return int(args.func(args))
    except ValidationError as exc:
        # Settings, read before any command runs: one line each, without the offending
        # values (they may be passwords).
        for e in exc.errors(include_input=False, include_url=False):
            name = "_".join(str(p) for p in e["loc"]).upper()
            message = e["msg"].removeprefix("Value error, ")
            # a rule between settings (no one field's) names them in its message
            where = f"setting ACS_{name}" if name else "settings"
            print(f"invalid {where}: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except DatabaseUnavailable as exc:
        # A database that cannot be reached, opened or used (SchemaOutdated is one): one line
        # naming it.
        return refused(settings_of(args), str(exc), 2)


async def _database_command(args: argparse.Namespace) -> int:
    """Open the existing database (and the runtime, if the command needs it), run the
    command, answer its refusal, audit it."""
    from acs.db.engine import Database
    from acs.services.runtime import Runtime, check_schema

    settings = settings_of(args)
    if args.log_level:  # ACS_LOG_LEVEL is the server's: a command's own log is asked for
        import logging

        from acs import logs

        logs.configure(args.log_level, settings.log_format)
        # the schema check's "Context impl SQLiteImpl." is no news about the command
        logging.getLogger("alembic").setLevel(logging.WARNING)
    if args.runtime:
        runtime = await Runtime.start(settings, migrate_sqlite=False)
        cli = Cli(settings, runtime.db, runtime, args.prog)
    else:
        database = Database(settings.resolved_database_url)
        try:
            await database.probe()  # only `acs serve` and `acs db upgrade` create a database
            if args.schema:
                await check_schema(database)
        except BaseException:
            await database.dispose()
            raise
        cli = Cli(settings, database, command=args.prog)
    try:
        return await _run(cli, args)
    finally:
        if cli.runtime_ is not None:
            await cli.runtime_.close()
        else:
            await cli.db.dispose()


STORAGE_FAILED = 503


async def _run(cli: Cli, args: argparse.Namespace) -> int:
    """The one place a command's refusal becomes a line and an exit status."""
    from acs.db.errors import UNAVAILABLE
    from acs.provisioning.errors import ProvisioningError
    from acs.services import errors
    from acs.services.files import FileTooLarge

    # The HTTP status the API would have answered, for the audit log (acs.web.api_app's
    # REFUSALS), most specific first; the exit status is 1 for each.
    refusals: tuple[tuple[type[Exception], int], ...] = (
        (FileTooLarge, 413),
        (errors.NotFound, 404),
        (errors.Conflict, 409),
        (errors.Invalid, 422),
        (ProvisioningError, 422),
    )
    status, code, message = 200, 0, ""
    try:
        code = await args.work(cli, args)
    except tuple(kind for kind, _ in refusals) as exc:
        status = next(answer for kind, answer in refusals if isinstance(exc, kind))
        code, message = 1, str(exc)
    except ValidationError as exc:
        from acs.cli.specs import explained

        status, code, message = 422, 1, explained(exc)
    except Usage as exc:
        status, code, message = 400, 2, str(exc)
    except UNAVAILABLE as exc:
        status, code = STORAGE_FAILED, 2
        message = f"storage unavailable: {_first_line(exc)}; retry later"
    # A storage failure is not audited: the entry would wait for the same failing database
    # (SQLite: its busy timeout again) to say what the command's line says.
    if args.audited and status != STORAGE_FAILED:
        try:
            await cli.record(status)
        except UNAVAILABLE as exc:
            if not message:  # the change is made; that it is not audited must be said
                message = f"done, but its audit entry was not written: {_first_line(exc)}"
    if message:
        refused(cli.settings, message, code)
    return code


def _first_line(exc: BaseException) -> str:
    """A driver's error without SQLAlchemy's statement and background link."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc) or type(exc).__name__
    return text.strip().splitlines()[0]
