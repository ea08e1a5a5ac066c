"""``acs serve``: the CWMP and management listeners."""

from __future__ import annotations

import argparse
from typing import Any

from acs.cli.common import add_storage_flags, settings_of


def cmd_serve(args: argparse.Namespace) -> int:
    from acs.server import serve

    return serve(settings_of(args))


def register(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the CWMP and management listeners")
    add_storage_flags(serve)
    serve.add_argument("--bind", help="address to listen on (ACS_BIND)")
    serve.add_argument("--cwmp-port", type=int, help="CWMP port (ACS_CWMP_PORT, 7547)")
    serve.add_argument("--api-port", type=int, help="management port (ACS_API_PORT, 7557)")
    serve.add_argument("--tftp-port", type=int, help="TFTP port (ACS_TFTP_PORT, unset: none)")
    serve.add_argument("--ftp-port", type=int, help="FTP port (ACS_FTP_PORT, unset: none)")
    serve.add_argument(
        "--sip-pnp-port", type=int, help="SIP PnP UDP port (ACS_SIP_PNP_PORT, unset: none)"
    )
    serve.add_argument("--workers", type=int, help="worker processes (ACS_WORKERS, 1)")
    serve.set_defaults(func=cmd_serve)
