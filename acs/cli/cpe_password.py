"""``acs cpe-password``: the shared password CPEs authenticate with until they have their own."""

from __future__ import annotations

import argparse
from typing import Any

from acs.cli.common import Cli, Usage, database_command
from acs.services import server_secrets


async def cmd_reset(cli: Cli, args: argparse.Namespace) -> int:
    if cli.settings.cwmp_password:
        raise Usage(
            "ACS_CWMP_PASSWORD (or ACS_CWMP_PASSWORD_FILE) is set: the server uses that one; "
            "change it there"
        )
    cli.audit(cpe_password_reset=True)  # never the password
    password = await server_secrets.reset_shared_password(cli.db, cli.settings)
    print(password)
    print(
        f"the new shared CPE password of user {cli.settings.cwmp_username}, shown this once; "
        "restart acs serve on every node to use it (only its hash is kept)"
    )
    return 0


def register(sub: Any) -> None:
    group = sub.add_parser(
        "cpe-password", help="the shared password of CPEs that have none of their own"
    )
    commands = group.add_subparsers(dest="cpe_password", required=True)
    reset = commands.add_parser(
        "reset", help="make a new one and print it once (devices must then be given it)"
    )
    database_command(reset, cmd_reset, audited=True)
