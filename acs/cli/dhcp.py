"""``acs dhcp-options``: the DHCP options that give phones a provisioning URL (66, 43, a
custom one), and the lines ISC dhcpd, Kea and dnsmasq need to send them."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from acs.provisioning.dhcp import DEFAULT_CUSTOM


def cmd_dhcp_options(args: argparse.Namespace) -> int:
    """Print the options for a URL; a URL or code a phone cannot take is refused (1)."""
    from acs.provisioning.dhcp import dhcp_options
    from acs.provisioning.errors import ProvisioningError

    try:
        options = dhcp_options(args.url, args.option)
    except ProvisioningError as exc:
        print(f"cannot make DHCP options: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(options.text())
    return 0


def register(sub: Any) -> None:
    dhcp = sub.add_parser(
        "dhcp-options",
        help="the DHCP options that give phones a provisioning URL, and the lines ISC dhcpd, "
        "Kea and dnsmasq need",
        description="Print option 66 (text), option 43 (the URL's bytes, hex) and a custom "
        "option (text) for URL, as phones set to 'DHCP Option' read them, and ready-to-paste "
        "lines for ISC dhcpd, Kea and dnsmasq. $mac and $input are left for the phone.",
    )
    dhcp.add_argument("url", help="e.g. http://acs.example:7547/prov/$mac.cfg")
    dhcp.add_argument(
        "--option",
        type=int,
        default=DEFAULT_CUSTOM,
        metavar="N",
        help=f"the custom option's code, 128-254, as set on the phone (default {DEFAULT_CUSTOM})",
    )
    dhcp.set_defaults(func=cmd_dhcp_options)
