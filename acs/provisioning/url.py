"""The URL a phone is given to find its configuration, by DHCP or SIP PnP (Auto Provision
Description section 4.2): ``protocol://[user:password@]host[:port]/path/name``, the protocol
FTP, TFTP, HTTP or HTTPS. ``$mac`` and ``$input`` in it are the phone's to fill in."""

from __future__ import annotations

import urllib.parse
from typing import Final

from acs.provisioning.errors import ProvisioningError

SCHEMES: Final = ("http", "https", "tftp", "ftp")
MAX_LENGTH: Final = 1024


def check_url(url: str) -> str:
    """``url``, if a phone can be given it.

    Raises:
        ProvisioningError: not printable ASCII without spaces, quotes or backslashes (it is
            pasted into DHCP server configurations and SIP bodies as it is), longer than
            ``MAX_LENGTH``, not one of ``SCHEMES``, without a host, or with a bad port.
    """
    if not url:
        raise ProvisioningError("an empty URL")
    if len(url) > MAX_LENGTH:
        raise ProvisioningError(f"a URL of {len(url)} characters, more than {MAX_LENGTH}")
    bad = next((c for c in url if not "!" <= c <= "~" or c in '"\\'), None)
    if bad is not None:
        raise ProvisioningError(
            f"{bad!r} in the URL: write it with printable ASCII, no spaces, quotes or "
            "backslashes (percent-encode them)"
        )
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise ProvisioningError(
            f"the URL must start with {', '.join(s + '://' for s in SCHEMES)} (the protocols "
            f"phones fetch with): {url!r}"
        )
    try:
        host, _port = parts.hostname, parts.port
    except ValueError as exc:
        raise ProvisioningError(f"{exc}: {url!r}") from None
    if not host:
        raise ProvisioningError(f"no server in the URL: {url!r}")
    return url
