"""What every command group shares: settings from flags, the storage flags, the context a
database command runs in (``Cli``), and how a command is registered."""

from __future__ import annotations

import argparse
import os
import pwd
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from acs.config import Settings

if TYPE_CHECKING:
    from acs.db.engine import Database
    from acs.services.runtime import Runtime

# No command counts into a metrics directory it inherited: `acs serve` makes its own for its
# workers, and prometheus_client reads this when it is imported, which a service may do.
# Every command module imports this one before any service.
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


class Usage(Exception):
    """The command cannot run as given (a flag missing, two that exclude each other, an
    empty password): exit code 2, like argparse's own usage errors."""


def settings_of(args: argparse.Namespace) -> Settings:
    """Settings from the environment and ``.env``, overridden by the flags given."""
    overrides: dict[str, Any] = {}
    for name in (
        "data_dir",
        "database_url",
        "bind",
        "cwmp_port",
        "api_port",
        "tftp_port",
        "ftp_port",
        "sip_pnp_port",
        "workers",
        "log_level",
    ):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)


def add_storage_flags(parser: argparse.ArgumentParser) -> None:
    """Where the database is: the flags of every command that uses it."""
    parser.add_argument("--data-dir", help="data directory (ACS_DATA_DIR)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (ACS_DATABASE_URL)")
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="acs serve: ACS_LOG_LEVEL; other commands log on standard error at this level "
        "only when it is given (default: warnings)",
    )


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="print JSON, in the shape the REST API answers for this resource",
    )


def refused(settings: Settings, message: str, code: int = 1) -> int:
    """A command's error, one line, naming the database and data dir it used."""
    print(f"{message} ({settings.storage})", file=sys.stderr)
    return code


def read_password(args: argparse.Namespace) -> str:
    """The password on the first line of standard input (never a flag: flags show in ps)."""
    if not args.password_stdin:
        raise Usage("give the password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise Usage("empty password on standard input")
    return password


def actor() -> str:
    """Who runs the command, as the audit log and ``created_by`` name it: ``cli:<user>``.

    The effective user's name from the password database (not $USER, which anyone sets);
    its number where it has none (a container's user)."""
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = f"uid{uid}"
    return f"cli:{name}"


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Cli:
    """A database command's context: settings, the database (and, for the commands that
    need the server's secrets or services, the runtime), and what to audit."""

    settings: Settings
    db: Database
    runtime_: Runtime | None = None
    command: str = "acs"  # the audit log's path: "acs tasks queue"
    actor: str = field(default_factory=actor)
    detail: dict[str, Any] | None = None
    audited: bool = False

    @property
    def runtime(self) -> Runtime:
        assert self.runtime_ is not None, "registered without runtime=True"
        return self.runtime_

    def audit(self, **detail: Any) -> None:
        """What a state-changing command does, for its audit log entry (as the API's
        ``audit()`` attaches it to a request)."""
        self.detail = detail

    async def record(self, status: int) -> None:
        """Write the audit log entry, once: the runner does when the command ends; a command
        that goes on waiting after its change (``--wait``) does it first, so that an
        interrupted wait leaves the change audited. ``status``: what the API would have
        answered."""
        from acs.services import operators

        if self.audited:
            return
        self.audited = True
        await operators.record_audit(
            self.db,
            now=now(),
            operator=self.actor,
            method="CLI",
            path=self.command,
            status=status,
            client=socket.gethostname()[:64],
            detail=self.detail,
        )


Work = Callable[[Cli, argparse.Namespace], Awaitable[int]]


def database_command(
    parser: argparse.ArgumentParser,
    work: Work,
    *,
    runtime: bool = False,
    audited: bool = False,
    schema: bool = True,
) -> None:
    """Register ``work`` as the command of ``parser``: it runs against the existing,
    schema-checked database (never a new one); ``runtime``: with the server's secrets and
    services (connection requests, the file store, phone provisioning); ``audited``: it
    changes state, so each run is written to the audit log, refused ones too; ``schema``:
    refuse a database whose schema is not this acs's (all but ``acs db status``)."""
    add_storage_flags(parser)
    parser.set_defaults(
        work=work, runtime=runtime, audited=audited, schema=schema, prog=parser.prog
    )


# Rows a listing may skip: as the API bounds it (acs.web.api.deps.MAX_OFFSET; no backend
# takes an OFFSET past 64 bits).
MAX_OFFSET = 2**62


def bounded(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"not between {low} and {high}: {value}")
        return value

    return parse


def positive_seconds(text: str) -> float:
    """An argparse type: seconds, more than 0 and at most a day."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"not more than 0 and at most 86400: {text}")
    return value


def add_page_flags(parser: argparse.ArgumentParser) -> None:
    """--limit and --offset of a listing, bounded as the API bounds them."""
    parser.add_argument(
        "--limit", type=bounded(1, 1000), default=100, help="rows at most, 1-1000 (default: 100)"
    )
    parser.add_argument(
        "--offset", type=bounded(0, MAX_OFFSET), default=0, help="rows to skip (default: 0)"
    )
