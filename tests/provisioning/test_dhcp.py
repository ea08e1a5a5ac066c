"""acs.provisioning.dhcp: options 66, 43 and custom as the document's captures show them, and
server configurations that ISC dhcpd, Kea and dnsmasq themselves accept."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from acs.provisioning.dhcp import DEFINED, DhcpOptions, dhcp_options
from acs.provisioning.errors import ProvisioningError
from acs.provisioning.url import check_url

CAPTURE_43 = "tftp://192.168.1.118/$mac.cfg"  # section 4.3, "(t=43,l=29)"
CAPTURE_66 = "tftp://192.168.2.45/$input.xml"  # section 4.3 figure 7, "(t=66,l=30)"


def test_option_43_is_the_urls_bytes_as_the_capture_shows():
    options = dhcp_options(CAPTURE_43)
    assert len(CAPTURE_43.encode()) == 29
    assert options.option43.startswith("746674703a2f2f3139322e3136382e312e3131382f246d61")
    assert options.option43 == "746674703a2f2f3139322e3136382e312e3131382f246d61632e636667"
    assert bytes.fromhex(options.option43).decode() == CAPTURE_43
    assert dhcp_options(CAPTURE_66).option66 == CAPTURE_66
    assert len(CAPTURE_66.encode()) == 30


def test_everything_acs_dhcp_options_prints():
    assert dhcp_options(CAPTURE_43).text() == (
        "URL: tftp://192.168.1.118/$mac.cfg (29 bytes)\n"
        "option 66 (TFTP server name, text): tftp://192.168.1.118/$mac.cfg\n"
        "option 43 (vendor-specific information, hex): "
        "746674703a2f2f3139322e3136382e312e3131382f246d61632e636667\n"
        "option 128 (custom, text): tftp://192.168.1.118/$mac.cfg\n"
        "\n"
        "# ISC dhcpd (dhcpd.conf)\n"
        "option provisioning-url code 128 = text;\n"
        'option tftp-server-name "tftp://192.168.1.118/$mac.cfg";\n'
        "option vendor-encapsulated-options 74:66:74:70:3a:2f:2f:31:39:32:2e:31:36:38:2e:31:2e:"
        "31:31:38:2f:24:6d:61:63:2e:63:66:67;\n"
        'option provisioning-url "tftp://192.168.1.118/$mac.cfg";\n'
        "\n"
        '// Kea (kea-dhcp4.conf, inside "Dhcp4")\n'
        '"option-def": [\n'
        '    { "name": "vendor-encapsulated-options", "code": 43, "type": "binary" },\n'
        '    { "name": "provisioning-url", "code": 128, "type": "string" }\n'
        "],\n"
        '"option-data": [\n'
        '    { "name": "tftp-server-name", "data": "tftp://192.168.1.118/$mac.cfg" },\n'
        '    { "name": "vendor-encapsulated-options", "csv-format": false, "data": '
        '"746674703a2f2f3139322e3136382e312e3131382f246d61632e636667" },\n'
        '    { "name": "provisioning-url", "data": "tftp://192.168.1.118/$mac.cfg" }\n'
        "]\n"
        "\n"
        "# dnsmasq (dnsmasq.conf)\n"
        'dhcp-option=66,"tftp://192.168.1.118/$mac.cfg"\n'
        "dhcp-option=43,74:66:74:70:3a:2f:2f:31:39:32:2e:31:36:38:2e:31:2e:31:31:38:2f:24:6d:61:"
        "63:2e:63:66:67\n"
        'dhcp-option=128,"tftp://192.168.1.118/$mac.cfg"\n'
    )


def test_a_comma_goes_to_kea_as_hex():
    options = dhcp_options("http://acs/prov/a,b.cfg", 200)
    assert options.kea().splitlines()[5:8] == [
        '    { "name": "tftp-server-name", "csv-format": false, "data": '
        '"687474703a2f2f6163732f70726f762f612c622e636667" },',
        '    { "name": "vendor-encapsulated-options", "csv-format": false, "data": '
        '"687474703a2f2f6163732f70726f762f612c622e636667" },',
        '    { "name": "provisioning-url", "csv-format": false, "data": '
        '"687474703a2f2f6163732f70726f762f612c622e636667" }',
    ]


@pytest.mark.parametrize(
    ("url", "custom", "why"),
    [
        ("", 128, "an empty URL"),
        (
            "acs.example/prov/$mac.cfg",
            128,
            "the URL must start with http://, https://, "
            "tftp://, ftp:// (the protocols phones fetch with): 'acs.example/prov/$mac.cfg'",
        ),
        ("http:///x.cfg", 128, "no server in the URL: 'http:///x.cfg'"),
        (
            "http://acs:port/x.cfg",
            128,
            "Port could not be cast to integer value as 'port': 'http://acs:port/x.cfg'",
        ),
        (
            "http://acs/a b.cfg",
            128,
            "' ' in the URL: write it with printable ASCII, no spaces, "
            "quotes or backslashes (percent-encode them)",
        ),
        (
            'http://acs/"x',
            128,
            "'\"' in the URL: write it with printable ASCII, no spaces, "
            "quotes or backslashes (percent-encode them)",
        ),
        (
            "http://acs/é",
            128,
            "'é' in the URL: write it with printable ASCII, no spaces, "
            "quotes or backslashes (percent-encode them)",
        ),
        ("http://acs/" + "x" * 245, 128, "the URL is 256 bytes; a DHCP option holds 255"),
        (
            "http://acs/",
            127,
            "custom option 127: phones take 128-254 (Auto Provision Description 4.3)",
        ),
        (
            "http://acs/",
            255,
            "custom option 255: phones take 128-254 (Auto Provision Description 4.3)",
        ),
        (
            "http://acs/",
            150,
            "option 150 is a standard option, TFTP server address (RFC 5859), "
            "that DHCP servers define themselves: choose another of 128-254",
        ),
    ],
)
def test_what_cannot_be_given_to_a_phone(url, custom, why):
    with pytest.raises(ProvisioningError) as refused:
        dhcp_options(url, custom)
    assert str(refused.value) == why


def test_the_longest_url_an_option_holds():
    url = "http://acs/" + "x" * 244
    assert dhcp_options(url).url == url
    assert (
        check_url("FTP://u:p@[2001:db8::1]:21/$input.cfg")
        == "FTP://u:p@[2001:db8::1]:21/$input.cfg"
    )


# --- the servers themselves --------------------------------------------------------------------


def tool(name: str, package: str) -> str:
    """A Debian tool the test needs; skipped without it (failed under ACS_TEST_REQUIRE_TOOLS=1,
    as CI runs)."""
    found = shutil.which(name) or shutil.which(f"/usr/sbin/{name}")
    if found is None:
        message = f"no {name} here (Debian's {package} package)"
        if os.environ.get("ACS_TEST_REQUIRE_TOOLS", "") not in ("", "0", "false"):
            pytest.fail(message + " and ACS_TEST_REQUIRE_TOOLS is set", pytrace=False)
        pytest.skip(message)
    return found


def check(argv: list[str]) -> tuple[int, str]:
    run = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    return run.returncode, (run.stdout + run.stderr).decode(errors="replace")


URL = "http://acs.example:7547/prov/$mac.cfg"


def kea_config(options: DhcpOptions) -> str:
    return (
        '{ "Dhcp4": { ' + options.kea() + ', "subnet4": [ { "id": 1, "subnet": "10.75.0.0/24", '
        '"pools": [ { "pool": "10.75.0.10 - 10.75.0.20" } ] } ] } }\n'
    )


@pytest.mark.parametrize("custom", [128, 254])
def test_isc_dhcpd_takes_its_lines(tmp_path: Path, custom: int):
    dhcpd = tool("dhcpd", "isc-dhcp-server")
    conf = tmp_path / "dhcpd.conf"
    conf.write_text(
        dhcp_options(URL, custom).isc_dhcpd()
        + "\nsubnet 10.75.0.0 netmask 255.255.255.0 { range 10.75.0.10 10.75.0.20; }\n"
    )
    code, output = check([dhcpd, "-t", "-cf", str(conf), "-lf", str(tmp_path / "leases")])
    assert code == 0, output


def test_kea_and_dnsmasq_take_their_lines_for_every_custom_code_a_phone_takes(tmp_path: Path):
    kea, dnsmasq = tool("kea-dhcp4", "kea-dhcp4-server"), tool("dnsmasq", "dnsmasq-base")
    for custom in range(128, 255):
        if custom in DEFINED:
            continue
        options = dhcp_options(URL, custom)
        (tmp_path / "kea.json").write_text(kea_config(options))
        code, output = check([kea, "-t", str(tmp_path / "kea.json")])
        assert code == 0, (custom, output)
        (tmp_path / "dnsmasq.conf").write_text(options.dnsmasq() + "\n")
        code, output = check([dnsmasq, "--test", "-C", str(tmp_path / "dnsmasq.conf")])
        assert code == 0, (custom, output)


def test_the_codes_refused_are_the_ones_the_servers_define(tmp_path: Path):
    kea, dnsmasq = tool("kea-dhcp4", "kea-dhcp4-server"), tool("dnsmasq", "dnsmasq-base")
    refused = set()
    for custom in sorted(DEFINED):
        options = DhcpOptions(URL, custom)  # made without dhcp_options' check
        (tmp_path / "kea.json").write_text(kea_config(options))
        (tmp_path / "dnsmasq.conf").write_text(options.dnsmasq() + "\n")
        kea_code, _ = check([kea, "-t", str(tmp_path / "kea.json")])
        dnsmasq_code, _ = check([dnsmasq, "--test", "-C", str(tmp_path / "dnsmasq.conf")])
        if kea_code or dnsmasq_code:
            refused.add(custom)
    assert refused == set(DEFINED)
