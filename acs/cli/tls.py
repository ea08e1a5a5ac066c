"""``acs tls self-signed``: a certificate and key for the CWMP listener's HTTPS side, for a lab."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def cmd_self_signed(args: argparse.Namespace) -> int:
    """Write the pair and print the settings that use it; a bad host or count of days, or a
    directory that cannot be written, is refused (1)."""
    from acs.tls import write_self_signed

    try:
        made = write_self_signed(args.host, Path(args.out), days=args.days, key_type=args.key)
    except ValueError as exc:
        print(f"cannot make a certificate: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"cannot write into {args.out}: {exc.strerror or exc}; choose another --out",
            file=sys.stderr,
        )
        return 1
    print(f"ACS_CWMP_TLS_CERTFILE={made.certfile}")
    print(f"ACS_CWMP_TLS_KEYFILE={made.keyfile}")
    print(
        f"# self-signed for {', '.join(args.host)}, valid until {made.not_after:%Y-%m-%d}; "
        "devices must trust cert.pem (a lab's, not a CA's)",
        file=sys.stderr,
    )
    return 0


def register(sub: Any) -> None:
    tls = sub.add_parser("tls", help="certificates for the CWMP listener's HTTPS side")
    commands = tls.add_subparsers(dest="tls_command", required=True)
    self_signed = commands.add_parser(
        "self-signed",
        help="write a self-signed certificate and key for a lab",
        description="Write cert.pem and key.pem (0600) into DIR: a self-signed certificate "
        "naming each --host (addresses as IP entries) and its key, then print the "
        "ACS_CWMP_TLS_CERTFILE and ACS_CWMP_TLS_KEYFILE lines that use them. For a lab: "
        "devices trust it only if given cert.pem; in production use a CA's certificate.",
    )
    self_signed.add_argument(
        "--host",
        action="append",
        required=True,
        metavar="NAME",
        help="a name or address devices use to reach the ACS (repeat for each)",
    )
    self_signed.add_argument("--out", required=True, metavar="DIR", help="where to write")
    self_signed.add_argument(
        "--days", type=int, default=365, metavar="N", help="validity in days (default 365)"
    )
    self_signed.add_argument(
        "--key",
        choices=["rsa", "ec"],
        default="rsa",
        help="RSA 2048 (default: every phone's TLS knows it) or EC P-256",
    )
    self_signed.set_defaults(func=cmd_self_signed)
