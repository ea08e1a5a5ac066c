"""The DHCP options that give phones their provisioning URL (Auto Provision Description
section 4.3 item 1), and the lines that make ISC dhcpd, Kea and dnsmasq send them.

A phone set to "DHCP Option 66", "43" or "Custom DHCP Option" (128-254) asks its DHCP
server for that option and reads the URL in it:

- option 66 (TFTP server name, RFC 2132 section 9.4): the URL as text, as the document's
  capture shows: ``Option: (t=66,l=30) TFTP Server Name = "tftp://192.168.2.45/$input.xml"``;
- option 43 (vendor-specific information, RFC 2132 section 8.4): the URL's bytes as they are,
  with no sub-option around them: ``Option: (t=43,l=29) ... Value:
  746674703a2f2f3139322e3136382e312e3131382f246d61...``, the 29 bytes of
  ``tftp://192.168.1.118/$mac.cfg``;
- a custom option, 128-254: the URL as text, like option 66.

A DHCP option holds at most 255 bytes (its length is one byte). ``$mac`` and ``$input`` are
left for the phone to fill in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from acs.provisioning.errors import ProvisioningError
from acs.provisioning.url import check_url

CUSTOM_OPTIONS: Final = range(128, 255)
MAX_OPTION_BYTES: Final = 255
DEFAULT_CUSTOM: Final = 128
#: The name the server configurations give the custom option.
CUSTOM_NAME: Final = "provisioning-url"
#: Codes of 128-254 that Kea or dnsmasq define themselves (standard options: their type is
#: not text there, and Kea refuses to define them again).
DEFINED: Final = {
    136: "PANA agent (RFC 5192)",
    137: "LoST server (RFC 5223)",
    138: "CAPWAP access controller (RFC 5417)",
    141: "SIP UA configuration domains (RFC 6011)",
    146: "RDNSS selection (RFC 6731)",
    150: "TFTP server address (RFC 5859)",
    159: "port parameters (RFC 7618)",
    212: "6rd (RFC 5969)",
    213: "access network domain (RFC 5986)",
}


@dataclass(frozen=True, slots=True)
class DhcpOptions:
    """The options for ``url``; ``custom`` the custom option's code."""

    url: str
    custom: int = DEFAULT_CUSTOM

    @property
    def option66(self) -> str:
        return self.url

    @property
    def option43(self) -> str:
        """The URL's bytes in hex, as the document's capture shows them."""
        return self.url.encode().hex()

    def _colons(self) -> str:
        return ":".join(f"{byte:02x}" for byte in self.url.encode())

    def isc_dhcpd(self) -> str:
        """Lines for dhcpd.conf: the custom option's definition at the top level, the
        values at the top level or in the phones' subnet."""
        return "\n".join(
            [
                f"option {CUSTOM_NAME} code {self.custom} = text;",
                f'option tftp-server-name "{self.url}";',
                f"option vendor-encapsulated-options {self._colons()};",
                f'option {CUSTOM_NAME} "{self.url}";',
            ]
        )

    def kea(self) -> str:
        """Entries for kea-dhcp4.conf, inside ``"Dhcp4"`` (``option-data`` may go in the
        phones' subnet). Option 43 is defined as binary: Kea's own definition is an empty
        container of sub-options."""
        return "\n".join(
            [
                '"option-def": [',
                '    { "name": "vendor-encapsulated-options", "code": 43, "type": "binary" },',
                f'    {{ "name": "{CUSTOM_NAME}", "code": {self.custom}, "type": "string" }}',
                "],",
                '"option-data": [',
                f"    {{ {self._kea_text('tftp-server-name')} }},",
                '    { "name": "vendor-encapsulated-options", "csv-format": false, '
                f'"data": "{self.option43}" }},',
                f"    {{ {self._kea_text(CUSTOM_NAME)} }}",
                "]",
            ]
        )

    def _kea_text(self, name: str) -> str:
        # Kea reads a comma in text data as a separator of values: such a URL goes as hex.
        if "," in self.url:
            return f'"name": "{name}", "csv-format": false, "data": "{self.option43}"'
        return f'"name": "{name}", "data": "{self.url}"'

    def dnsmasq(self) -> str:
        """Lines for dnsmasq.conf (or a file of its conf-dir)."""
        return "\n".join(
            [
                f'dhcp-option=66,"{self.url}"',
                f"dhcp-option=43,{self._colons()}",
                f'dhcp-option={self.custom},"{self.url}"',
            ]
        )

    def text(self) -> str:
        """All of it, as ``acs dhcp-options`` prints it."""
        size = len(self.url.encode())
        return "\n".join(
            [
                f"URL: {self.url} ({size} bytes)",
                f"option 66 (TFTP server name, text): {self.option66}",
                f"option 43 (vendor-specific information, hex): {self.option43}",
                f"option {self.custom} (custom, text): {self.url}",
                "",
                "# ISC dhcpd (dhcpd.conf)",
                self.isc_dhcpd(),
                "",
                '// Kea (kea-dhcp4.conf, inside "Dhcp4")',
                self.kea(),
                "",
                "# dnsmasq (dnsmasq.conf)",
                self.dnsmasq(),
                "",
            ]
        )


def dhcp_options(url: str, custom: int = DEFAULT_CUSTOM) -> DhcpOptions:
    """The options that carry ``url``, a custom one with code ``custom``.

    Raises:
        ProvisioningError: a URL a phone cannot be given (``url.check_url``), longer than an
            option holds, or a custom code outside 128-254 or in ``DEFINED``.
    """
    check_url(url)
    if len(url.encode()) > MAX_OPTION_BYTES:
        raise ProvisioningError(
            f"the URL is {len(url.encode())} bytes; a DHCP option holds {MAX_OPTION_BYTES}"
        )
    if custom not in CUSTOM_OPTIONS:
        raise ProvisioningError(
            f"custom option {custom}: phones take 128-254 (Auto Provision Description 4.3)"
        )
    if custom in DEFINED:
        raise ProvisioningError(
            f"option {custom} is a standard option, {DEFINED[custom]}, that DHCP servers "
            "define themselves: choose another of 128-254"
        )
    return DhcpOptions(url, custom)
