"""Rendered files against golden files written by hand from the document's format.

``golden/<model>/`` holds, for one phone of each of four models, the general configuration
file the model asks for (text) and the phone's MAC file in both formats (general layer, then
the office profile, then the device's own settings, variables substituted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from acs.provisioning import configfile, crypto, models
from acs.provisioning.models import GeneralFile, MacFile

GOLDEN = Path(__file__).parent / "golden"
GLOBAL, SIP, AUTO = "GLOBAL CONFIG MODULE", "SIP CONFIG MODULE", "AUTOUPDATE CONFIG MODULE"

PBOOK = "tftp://123:123@172.16.6.70/500.csv"
ETC = "tftp://172.16.6.70/sips.pem"
LOGO = "tftp://172.16.6.70/background.bmp"
MMISET = "tftp://123:123@172.16.6.45/mmiset6_SpanishT20131206171925.z"
DPEER = "ftp://123:123@172.16.6.45:8080/dialPeer.csv"
ALIST = "ftp://123:123@172.16.6.45:8080/accessList.csv"

PROFILE = {
    GLOBAL: {"Host Name": "{{host_name}}"},
    SIP: {
        "SIP1 Phone Number": "{{sip1_number}}",
        "SIP1 Display Name": "{{ sip1_display_name }}",
        "SIP1 Register Addr": "172.16.1.10",
        "SIP1 Register User": "{{sip1_number}}",
        "SIP1 Register Pswd": "{{sip1_password}}",
        "SIP1 Enable Reg": "1",
    },
}


def _image(name: str) -> str:
    return f"http://123:123@172.16.6.70:8000/{name}"


@dataclass(frozen=True)
class Phone:
    mac: str
    version: str
    general: dict[str, dict[str, str]]
    variables: dict[str, str]
    device: dict[str, dict[str, str]] = field(default_factory=dict)


PHONES = {
    # Low-end X series: everything but the access table.
    "X4": Phone(
        mac="00:15:65:11:3A:F8",
        version="2.0001",
        general={
            GLOBAL: {"Time Zone": "32"},
            AUTO: {
                "Auto Image Url": _image("x4.z"),
                "Auto Pbook Url": PBOOK,
                "Auto Etc Url": ETC,
                "Auto Logo Url": LOGO,
                "Auto Mmiset Url": MMISET,
                "Auto DPeer Url": DPEER,
            },
        },
        variables={
            "host_name": "X4-Reception",
            "sip1_number": "1001",
            "sip1_display_name": "Reception",
            "sip1_password": "p@ss:1001",
        },
    ),
    # High-end X series; the device overrides the time zone; a display name to escape.
    "X6": Phone(
        mac="0c383e000006",
        version="2.0002",
        general={
            GLOBAL: {"Time Zone": "32"},
            AUTO: {
                "Auto Image Url": _image("x6.z"),
                "Auto Pbook Url": PBOOK,
                "Auto Etc Url": ETC,
                "Auto Logo Url": LOGO,
                "Auto Mmiset Url": MMISET,
            },
        },
        variables={
            "host_name": "X6-Boardroom",
            "sip1_number": "1002",
            "sip1_display_name": "Board & Co <main>",
            "sip1_password": "b0ard",
        },
        device={GLOBAL: {"Time Zone": "16"}},
    ),
    # Access control series: all seven URLs of section 4.4, the access table included.
    "i20S": Phone(
        mac="00-15-65-AA-BB-CC",
        version="2.0003",
        general={
            GLOBAL: {"Time Zone": "32"},
            AUTO: {
                "Auto Image Url": _image("i20s.z"),
                "Auto Pbook Url": PBOOK,
                "Auto Etc Url": ETC,
                "Auto Logo Url": LOGO,
                "Auto Mmiset Url": MMISET,
                "Auto DPeer Url": DPEER,
                "Auto AList Url": ALIST,
            },
        },
        variables={
            "host_name": "Gate-North",
            "sip1_number": "1003",
            "sip1_display_name": "North Gate",
            "sip1_password": "g4te",
        },
    ),
    # Android: no logo, no mmiset (section 2.5); quotes stay raw, '&' is escaped in XML.
    "C600": Phone(
        mac="7C2F80C60000",
        version="3.0001",
        general={
            GLOBAL: {"Time Zone": "32"},
            AUTO: {
                "Auto Image Url": _image("c600.z"),
                "Auto Pbook Url": PBOOK,
                "Auto Etc Url": ETC,
            },
        },
        variables={
            "host_name": "C600-Lab",
            "sip1_number": "1004",
            "sip1_display_name": "Lab \"A\" 'B'",
            "sip1_password": "l4b&x",
            "unused": "ignored",
        },
        device={GLOBAL: {"Time Zone": "40"}},
    ),
}


def _device_config(phone: Phone) -> configfile.Config:
    merged = configfile.merge(phone.general, PROFILE, phone.device)
    return configfile.substitute(merged, phone.variables)


def test_every_golden_file_is_tested():
    expected = {
        f"{model}/{name}"
        for model, phone in PHONES.items()
        for name in (
            models.general_file_name(model),
            models.mac_file_name(phone.mac, "text"),
            models.mac_file_name(phone.mac, "xml"),
        )
    }
    found = {p.relative_to(GOLDEN).as_posix() for p in GOLDEN.glob("*/*")}
    assert found == expected
    assert len(found) == 12


@pytest.mark.parametrize("model", PHONES)
def test_general_file(model):
    phone = PHONES[model]
    name = models.general_file_name(model)
    golden = (GOLDEN / model / name).read_bytes()
    assert configfile.render_text(phone.general, phone.version) == golden
    assert configfile.parse_text(golden) == (phone.version, phone.general)
    assert models.resolve(f"/{name}") == GeneralFile(model)


@pytest.mark.parametrize("fmt", ["text", "xml"])
@pytest.mark.parametrize("model", PHONES)
def test_mac_file(model, fmt):
    phone = PHONES[model]
    name = models.mac_file_name(phone.mac, fmt)
    golden = (GOLDEN / model / name).read_bytes()
    config = _device_config(phone)
    assert configfile.render(config, phone.version, fmt) == golden
    assert configfile.parse(golden, fmt) == (phone.version, config)
    assert models.resolve(f"/prov/{name}") == MacFile(models.normalize_mac(phone.mac), fmt)


@pytest.mark.parametrize("fmt", ["text", "xml"])
def test_both_formats_of_a_phone_carry_the_same_content(fmt):
    phone = PHONES["X6"]
    golden = (GOLDEN / "X6" / models.mac_file_name(phone.mac, fmt)).read_bytes()
    digest = configfile.content_digest(configfile.parse(golden, fmt).config)
    assert digest == configfile.content_digest(_device_config(phone))


def test_golden_file_encrypted_for_its_key():
    # The MAC file needs the common key, the general file the config key.
    phone = PHONES["X4"]
    golden = (GOLDEN / "X4" / "001565113af8.cfg").read_bytes()
    request = models.resolve("/001565113af8.cfg")
    key = crypto.key_for(request, config_key="11" * 32, common_key="22" * 32)
    assert key == "22" * 32
    assert configfile.parse_text(crypto.decrypt(crypto.encrypt(golden, key), key)) == (
        phone.version,
        _device_config(phone),
    )
