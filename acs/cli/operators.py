"""``acs operator`` and ``acs token``: who may use the management API."""

from __future__ import annotations

import argparse
from typing import Any

from acs.cli.common import Cli, add_json_flag, database_command, now, read_password
from acs.cli.output import Column, key, listing
from acs.services import operators
from acs.web.api.schemas import OperatorPublic, TokenPublic

OPERATOR_COLUMNS: list[Column] = [
    ("NAME", key("name")),
    ("ROLE", key("role")),
    ("DISABLED", key("disabled")),
    ("CREATED", key("created")),
]
TOKEN_COLUMNS: list[Column] = [
    ("ID", key("id")),
    ("OPERATOR", key("operator")),
    ("NAME", key("name")),
    ("CREATED", key("created")),
    ("LAST USED", key("last_used")),
    ("EXPIRES", key("expires")),
]


async def cmd_add(cli: Cli, args: argparse.Namespace) -> int:
    password = read_password(args) if args.password_stdin else None
    cli.audit(operator=args.name, role=args.role)
    await operators.create_operator(cli.db, args.name, args.role, password, now())
    print(f"operator {args.name} ({args.role}) created")
    return 0


async def cmd_list(cli: Cli, args: argparse.Namespace) -> int:
    found = await operators.list_operators(cli.db)
    return listing(args.json, list[OperatorPublic], OPERATOR_COLUMNS, found)


async def cmd_disable(cli: Cli, args: argparse.Namespace) -> int:
    disabled = args.operator == "disable"
    cli.audit(operator=args.name, disabled=disabled)
    await operators.update_operator(cli.db, args.name, disabled=disabled)
    print(f"operator {args.name} {'disabled' if disabled else 'enabled'}")
    return 0


async def cmd_delete(cli: Cli, args: argparse.Namespace) -> int:
    cli.audit(operator=args.name)
    await operators.delete_operator(cli.db, args.name)
    print(f"operator {args.name} deleted")
    return 0


async def cmd_password(cli: Cli, args: argparse.Namespace) -> int:
    password = read_password(args)
    cli.audit(operator=args.name, password_changed=True)
    await operators.update_operator(cli.db, args.name, password=password)
    print(f"password of operator {args.name} changed")
    return 0


async def cmd_token_create(cli: Cli, args: argparse.Namespace) -> int:
    cli.audit(operator=args.operator, token=args.name)
    token, _ = await operators.create_token(cli.db, args.operator, args.name, now(), args.ttl)
    print(token)
    return 0


async def cmd_token_list(cli: Cli, args: argparse.Namespace) -> int:
    found = await operators.list_tokens(cli.db, args.operator)
    return listing(args.json, list[TokenPublic], TOKEN_COLUMNS, found)


async def cmd_token_revoke(cli: Cli, args: argparse.Namespace) -> int:
    cli.audit(token=args.token_id)
    await operators.revoke_token(cli.db, args.token_id)
    print(f"token {args.token_id} revoked")
    return 0


def register(sub: Any) -> None:
    group = sub.add_parser("operator", help="operators of the management API")
    commands = group.add_subparsers(dest="operator", required=True)
    add = commands.add_parser("add", help="create an operator")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=operators.ROLES)
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (else: token access only)",
    )
    database_command(add, cmd_add, audited=True)

    listing = commands.add_parser("list", help="list operators")
    add_json_flag(listing)
    database_command(listing, cmd_list)

    for name, text in (
        ("disable", "refuse an operator's password and tokens (kept; enable undoes it)"),
        ("enable", "let a disabled operator in again"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("name")
        database_command(command, cmd_disable, audited=True)
    delete = commands.add_parser("delete", help="delete an operator and its tokens")
    delete.add_argument("name")
    database_command(delete, cmd_delete, audited=True)
    password = commands.add_parser("password", help="set an operator's password")
    password.add_argument("name")
    password.add_argument(
        "--password-stdin", action="store_true", help="read it from standard input (required)"
    )
    database_command(password, cmd_password, audited=True)

    token = sub.add_parser("token", help="API tokens")
    commands = token.add_subparsers(dest="token", required=True)
    create = commands.add_parser("create", help="create a token for an operator; printed once")
    create.add_argument("operator", help="the operator the token acts as")
    create.add_argument("--name", default="cli", help="a label for the token")
    create.add_argument("--ttl", type=int, default=None, help="seconds until it expires")
    database_command(create, cmd_token_create, audited=True)

    listing = commands.add_parser("list", help="tokens (never the tokens themselves)")
    listing.add_argument("--operator", help="of this operator only")
    add_json_flag(listing)
    database_command(listing, cmd_token_list)

    revoke = commands.add_parser("revoke", help="delete a token: it stops working at once")
    revoke.add_argument("token_id", type=int, metavar="ID")
    database_command(revoke, cmd_token_revoke, audited=True)
