"""``acs config``: encrypt or decrypt a phone configuration file by hand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def cmd_crypt(args: argparse.Namespace) -> int:
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


def register(sub: Any) -> None:
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
        crypt.set_defaults(func=cmd_crypt, action=action)
