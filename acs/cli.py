"""The ``acs`` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from acs import __version__
from acs.config import Settings

# PeriodicInformInterval of a device `acs simulate` starts, unless --interval or --state.
DEFAULT_SIM_INTERVAL = 60.0


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in (
        "data_dir",
        "database_url",
        "bind",
        "cwmp_port",
        "api_port",
        "workers",
        "log_level",
    ):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="data directory (ACS_DATA_DIR)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (ACS_DATABASE_URL)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])


def _read_password(args: argparse.Namespace) -> str:
    if not args.password_stdin:
        raise SystemExit("give the password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise SystemExit("empty password on standard input")
    return password


def cmd_serve(args: argparse.Namespace) -> int:
    # acs decides where workers keep their metrics (acs.server); prometheus_client reads
    # this when it is imported, so an inherited value must go first.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    from acs.server import serve

    return serve(_settings(args))


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from acs.db import migrate
    from acs.db.engine import Database

    settings = _settings(args)

    async def run() -> None:
        from acs.db import param_index

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


def cmd_device_credentials(args: argparse.Namespace) -> int:
    from acs.services import devices

    settings = _settings(args)
    password = None if args.clear else _read_password(args)
    try:
        _with_db(
            settings,
            lambda db: devices.set_cwmp_credentials(
                db, args.device_id, args.username, password, settings.cwmp_realm
            ),
        )
    except devices.DeviceNotFound:
        return _refused(settings, f"no device {args.device_id!r}")
    print("credentials cleared" if args.clear else "credentials set")
    return 0


def _with_db(settings: Settings, work: Any) -> Any:
    """Run ``work(db)`` against a schema-checked database."""
    from acs.db.engine import Database
    from acs.services.runtime import check_schema

    async def run() -> Any:
        db = Database(settings.resolved_database_url)
        try:
            await db.probe()  # only `acs serve` and `acs db upgrade` create a database
            await check_schema(db)
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


def _refused(settings: Settings, message: str, code: int = 1) -> int:
    """A command's error, one line, naming the database and data dir it used."""
    print(f"{message} ({settings.storage})", file=sys.stderr)
    return code


def cmd_operator_add(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from acs.services import operators

    settings = _settings(args)
    password = _read_password(args) if args.password_stdin else None
    try:
        _with_db(
            settings,
            lambda db: operators.create_operator(
                db, args.name, args.role, password, datetime.now(UTC)
            ),
        )
    except operators.OperatorError as exc:
        return _refused(settings, str(exc))
    print(f"operator {args.name} ({args.role}) created")
    return 0


def cmd_operator_list(args: argparse.Namespace) -> int:
    from acs.services import operators

    for op in _with_db(_settings(args), operators.list_operators):
        flag = " (disabled)" if op["disabled"] else ""
        print(f"{op['name']}\t{op['role']}{flag}")
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from acs.services import operators

    settings = _settings(args)
    try:
        token, _ = _with_db(
            settings,
            lambda db: operators.create_token(
                db, args.operator, args.name, datetime.now(UTC), args.ttl
            ),
        )
    except operators.OperatorNotFound:
        return _refused(settings, f"no operator {args.operator!r}")
    print(token)
    return 0


def cmd_config_crypt(args: argparse.Namespace) -> int:
    """Encrypt or decrypt a phone configuration file by hand, as the phone would."""
    from acs.provisioning import crypto
    from acs.provisioning.errors import ProvisioningError

    data = sys.stdin.buffer.read() if args.input == "-" else Path(args.input).read_bytes()
    try:
        if args.action == "encrypt":
            out = crypto.encrypt(data, args.key, args.mode)
        else:
            out = crypto.decrypt(data, args.key, args.mode)
    except ProvisioningError as exc:
        print(f"cannot {args.action}: {exc}", file=sys.stderr)
        return 1
    if args.output == "-":
        sys.stdout.buffer.write(out)
    else:
        Path(args.output).write_bytes(out)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    import json

    from acs.simulator import nat
    from acs.simulator.fleet import FleetConfig, simulate
    from acs.simulator.state import StateFileError

    if args.running and not args.state:
        print(
            "note: --running without --state: the devices know no connection-request "
            "credentials until they bootstrap again",
            file=sys.stderr,
        )
    config = FleetConfig(
        acs_url=args.acs_url,
        devices=args.devices,
        model=args.model,
        interval=DEFAULT_SIM_INTERVAL if args.interval is None else args.interval,
        interval_forced=args.interval is not None,
        duration=args.duration if args.sessions is None else None,
        sessions=args.sessions,
        username=args.username,
        password=args.password,
        auth=args.auth,
        serial_prefix=args.serial_prefix,
        first_index=args.first_index,
        concurrency=args.concurrency,
        ramp=args.ramp,
        bootstrap=not (args.no_bootstrap or args.running),
        boot=not args.running,
        cwmp_version=args.cwmp_version,
        udp=args.udp,
        state=args.state,
        **nat.config_of(args),
    )
    try:
        summary = asyncio.run(simulate(config))
    except StateFileError as exc:
        print(f"state file: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(summary, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    else:
        print(text)
    return 0 if summary["sessions_failed"] == 0 else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acs", description="TR-069 Auto-Configuration Server")
    parser.add_argument("--version", action="version", version=f"acs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the CWMP and management listeners")
    _add_common(serve)
    serve.add_argument("--bind", help="address to listen on (ACS_BIND)")
    serve.add_argument("--cwmp-port", type=int, help="CWMP port (ACS_CWMP_PORT, 7547)")
    serve.add_argument("--api-port", type=int, help="management port (ACS_API_PORT, 7557)")
    serve.add_argument("--workers", type=int, help="worker processes (ACS_WORKERS, 1)")
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    upgrade = db.add_parser("upgrade", help="apply migrations")
    _add_common(upgrade)
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(func=cmd_db_upgrade)

    device = sub.add_parser("device", help="device administration").add_subparsers(
        dest="device", required=True
    )
    creds = device.add_parser(
        "credentials", help="set the CWMP credentials of one device (override the shared pair)"
    )
    _add_common(creds)
    creds.add_argument("device_id")
    creds.add_argument("--username", default="")
    creds.add_argument("--password-stdin", action="store_true")
    creds.add_argument("--clear", action="store_true", help="go back to the shared pair")
    creds.set_defaults(func=cmd_device_credentials)

    operator = sub.add_parser("operator", help="operators of the management API").add_subparsers(
        dest="operator", required=True
    )
    add = operator.add_parser("add", help="create an operator")
    _add_common(add)
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["admin", "operator", "viewer"])
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (else: token access only)",
    )
    add.set_defaults(func=cmd_operator_add)
    listing = operator.add_parser("list", help="list operators")
    _add_common(listing)
    listing.set_defaults(func=cmd_operator_list)

    config = sub.add_parser("config", help="phone configuration files").add_subparsers(
        dest="config", required=True
    )
    for action in ("encrypt", "decrypt"):
        crypt = config.add_parser(
            action, help=f"{action} a file with a 64-hex-digit AES-256 key (as the phone does)"
        )
        crypt.add_argument("--key", required=True, help="64 hex digits")
        crypt.add_argument(
            "--mode",
            choices=["ecb", "cbc"],
            default="ecb",
            help="ecb: PKCS#7, no IV; cbc: 16-byte IV first (default ecb)",
        )
        crypt.add_argument("input", help="file to read, - for standard input")
        crypt.add_argument("output", help="file to write, - for standard output")
        crypt.set_defaults(func=cmd_config_crypt, action=action)

    sim = sub.add_parser(
        "simulate",
        help="a fleet of simulated CPEs against an ACS",
        description="A fleet of simulated CPEs against an ACS. Runs until --duration or "
        "--sessions, or until SIGINT/SIGTERM (sessions in flight finish; a second signal "
        "cancels them); then prints the summary. Exit status 0 if no session failed, else 1.",
    )
    sim.add_argument(
        "--acs-url", default="http://127.0.0.1:7547/acs", help="the ACS URL (default: %(default)s)"
    )
    sim.add_argument(
        "--devices", type=int, default=100, help="how many devices (default: %(default)s)"
    )
    sim.add_argument(
        "--model",
        default="gateway",
        help="gateway (TR-098), phone (TR-181/TR-104), or a JSON data model file "
        "(default: %(default)s)",
    )
    sim.add_argument(
        "--interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="every device informs every SECONDS, whatever PeriodicInformInterval and "
        "PeriodicInformEnable the ACS sets: --interval wins (default: not forced; each device "
        "follows its own PeriodicInformInterval and PeriodicInformEnable, which start at "
        f"{DEFAULT_SIM_INTERVAL:g} s and enabled, or as --state kept them, and change when "
        "the ACS sets them, from the device's next Inform on)",
    )
    sim.add_argument(
        "--duration", type=float, default=60.0, help="seconds to run (default: %(default)s)"
    )
    sim.add_argument(
        "--sessions",
        type=int,
        default=None,
        help="stop after this many sessions per device instead of after --duration "
        "(default: stop after --duration)",
    )
    sim.add_argument(
        "--username", default="acs", help="the ACS's CPE username (default: %(default)s)"
    )
    sim.add_argument("--password", default="", help="the ACS's CPE password (default: empty)")
    sim.add_argument(
        "--auth",
        choices=["digest", "basic", "none"],
        default="digest",
        help="how devices authenticate to the ACS (default: %(default)s)",
    )
    sim.add_argument(
        "--serial-prefix",
        default="SIM",
        help="serial numbers are this and the device's index in 8 digits: SIM00000000, ... "
        "(default: %(default)s)",
    )
    sim.add_argument(
        "--first-index",
        type=int,
        default=0,
        help="index of the first device (default: %(default)s)",
    )
    sim.add_argument(
        "--concurrency",
        type=int,
        default=500,
        help="sessions in flight at once (default: %(default)s)",
    )
    sim.add_argument(
        "--ramp",
        type=float,
        default=None,
        help="spread first sessions over this many seconds, 0: all at once "
        "(default: each device's first periodic interval)",
    )
    sim.add_argument(
        "--no-bootstrap",
        action="store_true",
        help="first session says 1 BOOT, not 0 BOOTSTRAP (default: 0 BOOTSTRAP and 1 BOOT, "
        "devices new to the ACS)",
    )
    sim.add_argument(
        "--running",
        action="store_true",
        help="devices are already up and known to the ACS: first session says 2 PERIODIC; "
        "give the --state of their earlier run so they still know the connection-request "
        "credentials the ACS set (default: off)",
    )
    sim.add_argument(
        "--state",
        metavar="FILE",
        default=None,
        help="keep what a CPE keeps in flash (ACS and connection-request credentials, "
        "periodic inform settings, every parameter the ACS set) in this JSON file: read at "
        "start, written at stop and every 10 s; devices of other runs in it are kept "
        "(default: none, devices start from their factory data model)",
    )
    sim.add_argument(
        "--cwmp-version",
        choices=["1.0", "1.1", "1.2", "1.3", "1.4"],
        default="1.2",
        help="CWMP version the devices speak (default: %(default)s)",
    )
    sim.add_argument(
        "--udp",
        action="store_true",
        help="also listen for UDP connection requests (default: off, HTTP only)",
    )
    sim.add_argument(
        "--json",
        metavar="FILE",
        help="write the summary here (default: standard output)",
    )
    from acs.simulator import nat as simulator_nat

    simulator_nat.add_arguments(sim)  # --stun, --xmpp, --xmpp-ca
    sim.set_defaults(func=cmd_simulate)

    token = sub.add_parser("token", help="API tokens").add_subparsers(dest="token", required=True)
    create = token.add_parser("create", help="create a token for an operator; printed once")
    _add_common(create)
    create.add_argument("operator", help="the operator the token acts as")
    create.add_argument("--name", default="cli", help="a label for the token")
    create.add_argument("--ttl", type=int, default=None, help="seconds until it expires")
    create.set_defaults(func=cmd_token_create)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ValidationError as exc:
        # One line each, without the offending values: they may be passwords.
        for e in exc.errors(include_input=False, include_url=False):
            name = "_".join(str(p) for p in e["loc"]).upper()
            message = e["msg"].removeprefix("Value error, ")
            print(f"invalid setting ACS_{name}: {message}", file=sys.stderr)
        return 2
    except Exception as exc:
        # A database that cannot be reached, opened or used (SchemaOutdated is one): one line
        # naming it. Its module is loaded if it was raised; `acs config` never loads it.
        errors = sys.modules.get("acs.db.errors")
        if errors is None or not isinstance(exc, errors.DatabaseUnavailable):
            raise
        return _refused(_settings(args), str(exc), 2)


if __name__ == "__main__":
    raise SystemExit(main())
