"""``acs dhcp-options``: what it prints, and a URL or code it refuses (exit 1, one line)."""

from __future__ import annotations

from acs.cli import main
from acs.provisioning.dhcp import dhcp_options


def test_it_prints_the_options_and_the_server_lines(capsys):
    assert main(["dhcp-options", "http://acs.example:7547/prov/$mac.cfg", "--option", "160"]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == (dhcp_options("http://acs.example:7547/prov/$mac.cfg", 160).text(), "")
    assert out.splitlines()[:4] == [
        "URL: http://acs.example:7547/prov/$mac.cfg (37 bytes)",
        "option 66 (TFTP server name, text): http://acs.example:7547/prov/$mac.cfg",
        "option 43 (vendor-specific information, hex): 687474703a2f2f6163732e6578616d706c653a"
        "373534372f70726f762f246d61632e636667",
        "option 160 (custom, text): http://acs.example:7547/prov/$mac.cfg",
    ]


def test_what_it_refuses(capsys):
    assert main(["dhcp-options", "acs.example/prov/$mac.cfg"]) == 1
    assert capsys.readouterr() == (
        "",
        "cannot make DHCP options: the URL must start with http://, https://, tftp://, ftp:// "
        "(the protocols phones fetch with): 'acs.example/prov/$mac.cfg'\n",
    )
    assert main(["dhcp-options", "http://acs/", "--option", "99"]) == 1
    assert capsys.readouterr().err == (
        "cannot make DHCP options: custom option 99: phones take 128-254 (Auto Provision "
        "Description 4.3)\n"
    )
