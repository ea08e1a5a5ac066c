"""Phone models, general file names and what a request path asks for (document section 4.1)."""

from __future__ import annotations

import pytest

from acs.provisioning import ProvisioningError, models
from acs.provisioning.models import Family, GeneralFile, MacFile, Model, NamedFile

# Typed from the document's tables of section 4.1, in their order.
LOW, HIGH, ANDROID = Family.LOW_END, Family.HIGH_END, Family.ANDROID
EXPECTED_MODELS = [
    Model("X1", "f0X1hw1.100.cfg", LOW),
    Model("X2", "f0X2hw1.100.cfg", LOW),
    Model("X3S", "f0X3Shw1.100.cfg", LOW),
    Model("X4", "f0X4hw1.100.cfg", LOW),
    Model("H2S", "f0H2Shw1.100.cfg", LOW),
    Model("H3", "f0H3hw1.100.cfg", LOW),
    Model("H5", "f0H5hw1.100.cfg", LOW),
    Model("i16V", "f0i16Vhw1.100.cfg", LOW),
    Model("i20S", "f0i20SVhw1.100.cfg", LOW, access_control=True),
    Model("i30", "f0i30hw1.100.cfg", LOW, access_control=True),
    Model("i23S", "f0i23Shw1.100.cfg", LOW, access_control=True),
    Model("i31S", "f0i31Shw1.100.cfg", LOW, access_control=True),
    Model("i12", "f0i12hw1.100.cfg", LOW),
    Model("i18S", "f0i18Shw1.100.cfg", LOW),
    Model("PA2", "f0PA2hw1.100.cfg", LOW),
    Model("i13W", "f0i13Whw1.100.cfg", LOW),
    Model("I32V", "f0i32Vhw1.100.cfg", LOW, access_control=True),
    Model("I33V", "f0i33Vhw1.100.cfg", LOW, access_control=True),
    Model("IW30", "f0iW30hw1.100.cfg", LOW),
    Model("EIM-01", "f0EIM-01hw1.100.cfg", LOW),
    Model("X5S", "F0V0X5S00000.cfg", HIGH),
    Model("X6", "F0V00X600000.cfg", HIGH),
    Model("X7", "F0V00X700000.cfg", HIGH),
    Model("X7C", "F0V0X7C00000.cfg", HIGH),
    Model("X210", "F0VX21000000.cfg", HIGH),
    Model("F600", "f0F060000000.cfg", ANDROID),
    Model("C600", "f0C060000000.cfg", ANDROID),
    Model("C400", "f0C040000000.cfg", ANDROID),
]


def test_the_table_is_the_documents():
    assert list(models.MODELS.values()) == EXPECTED_MODELS
    assert list(models.MODELS) == [m.name for m in EXPECTED_MODELS]


def test_access_control_models_are_the_access_table_list():
    # Section 4.4 item 7: "i31s, i30, i23s, i20s, i32v and i33V".
    assert [m.name for m in models.MODELS.values() if m.access_control] == [
        "i20S",
        "i30",
        "i23S",
        "i31S",
        "I32V",
        "I33V",
    ]


def test_no_two_general_names_differ_only_in_case():
    # What makes case-insensitive matching unambiguous.
    folded = {m.general_file.casefold() for m in EXPECTED_MODELS}
    assert len(folded) == len(EXPECTED_MODELS) == 28


@pytest.mark.parametrize("row", EXPECTED_MODELS, ids=lambda m: m.name)
def test_general_file_name_and_back(row):
    assert models.general_file_name(row.name) == row.general_file
    assert models.model_for_general_file(row.general_file) == row.name
    assert models.model_for_general_file(row.general_file.upper()) == row.name
    assert models.model_for_general_file(row.general_file.lower()) == row.name


@pytest.mark.parametrize("row", EXPECTED_MODELS, ids=lambda m: m.name)
def test_resolve_general_file_of_every_model(row):
    assert models.resolve(f"/{row.general_file}") == GeneralFile(row.name)
    assert models.resolve(f"/X4/prov/{row.general_file.upper()}") == GeneralFile(row.name)
    assert models.resolve(row.general_file.lower()) == GeneralFile(row.name)
    assert GeneralFile(row.name).fmt == "text"


def test_model_lookup_is_case_insensitive():
    assert models.find_model("i32v") == Model("I32V", "f0i32Vhw1.100.cfg", LOW, True)
    assert models.general_file_name("x6") == "F0V00X600000.cfg"
    assert models.model_for_general_file("f0X4hw1.100.xml") is None
    assert models.model_for_general_file("f0i20Shw1.100.cfg") is None  # the table says SV
    with pytest.raises(ProvisioningError, match=r"^unknown phone model 'X9'$"):
        models.general_file_name("X9")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/001565113af8.cfg", MacFile("001565113af8", "text")),
        ("/001565113AF8.cfg", MacFile("001565113af8", "text")),
        ("/X4/001565113Af8.txt", MacFile("001565113af8", "text")),
        ("/001565113af8.xml", MacFile("001565113af8", "xml")),
        ("001565113af8.CFG", MacFile("001565113af8", "text")),
        ("/a//b/001565113af8.XML", MacFile("001565113af8", "xml")),
        # Section 4.3: http://ip/mac.cfg?mac=$mac.cfg.
        ("/mac.cfg?mac=001565113AF8.cfg", MacFile("001565113af8", "text")),
        ("/mac.cfg?mac=001565113af8.xml&x=1", MacFile("001565113af8", "xml")),
        # The query form is how a phone whose MAC spells an Android general name is told apart.
        ("/mac.cfg?mac=f0f060000000.cfg", MacFile("f0f060000000", "text")),
        ("/f0f060000000.cfg", GeneralFile("F600")),
        ("/F0C040000000.cfg", GeneralFile("C400")),
        ("/f0f060000000.xml", MacFile("f0f060000000", "xml")),
        # User-named files and $input IDs.
        ("/name1.cfg", NamedFile("name1", "text")),
        ("/prov/Name_2.txt", NamedFile("Name_2", "text")),
        ("/desk-42.xml", NamedFile("desk-42", "xml")),
        ("/conf.v2.cfg", NamedFile("conf.v2", "text")),
        ("/00-15-65-11-3a-f8.cfg", NamedFile("00-15-65-11-3a-f8", "text")),
        ("/001565113af.cfg", NamedFile("001565113af", "text")),  # 11 digits: not a MAC
        # Section 4.3: http://ip/input.cfg?input=$input.cfg.
        ("/input.cfg?input=room-101.cfg", NamedFile("room-101", "text")),
        ("/input.cfg?input=room-101.xml", NamedFile("room-101", "xml")),
        ("/input.cfg?input=001565113af8.cfg", MacFile("001565113af8", "text")),
        ("/input.cfg?input=f0X4hw1.100.cfg", GeneralFile("X4")),
        ("/provision/?input=room.cfg", NamedFile("room", "text")),
        ("/other.cfg?foo=bar", NamedFile("other", "text")),
    ],
)
def test_resolve(path, expected):
    assert models.resolve(path) == expected


def test_resolve_with_a_separate_query():
    assert models.resolve("/mac.cfg", "mac=001565113af8.cfg") == MacFile("001565113af8", "text")
    assert models.resolve("/input.cfg", "?input=a.cfg") == NamedFile("a", "text")
    with pytest.raises(ProvisioningError, match=r"^query given twice"):
        models.resolve("/mac.cfg?mac=001565113af8.cfg", "mac=001565113af8.cfg")


NO_EXT = "does not end in .cfg, .txt or .xml"
BOTH = "both name a file"
UNSAFE = "only letters, digits, '.', '_' and '-', not starting with '.', no '..'"


@pytest.mark.parametrize(
    ("path", "query", "message"),
    [
        ("../etc/passwd", "", f"unsafe path segment '..': {UNSAFE}"),
        ("/x/../001565113af8.cfg", "", f"unsafe path segment '..': {UNSAFE}"),
        ("/./a.cfg", "", f"unsafe path segment '.': {UNSAFE}"),
        ("/%2e%2e/a.cfg", "", f"unsafe path segment '%2e%2e': {UNSAFE}"),
        ("/%2e%2e%2fetc%2fpasswd", "", f"unsafe file name '%2e%2e%2fetc%2fpasswd': {UNSAFE}"),
        ("/a..cfg", "", f"unsafe file name 'a..cfg': {UNSAFE}"),
        ("/.hidden.cfg", "", f"unsafe file name '.hidden.cfg': {UNSAFE}"),
        ("/a\\b.cfg", "", f"unsafe file name 'a\\\\b.cfg': {UNSAFE}"),
        ("/a b.cfg", "", f"unsafe file name 'a b.cfg': {UNSAFE}"),
        ("/a\x00.cfg", "", f"unsafe file name 'a\\x00.cfg': {UNSAFE}"),
        ("/$mac.cfg", "", f"unsafe file name '$mac.cfg': {UNSAFE}"),
        ("/00:15:65:11:3a:f8.cfg", "", f"unsafe file name '00:15:65:11:3a:f8.cfg': {UNSAFE}"),
        ("/", "", "empty file name"),
        ("", "", "empty file name"),
        ("/prov/", "", "empty file name"),
        ("/" + "a" * 296 + ".cfg", "", "file name longer than 128 characters"),
        ("/" + "a" * 125 + ".cfg", "", "file name longer than 128 characters"),
        ("/" + "a/" * 600 + "x.cfg", "", "path longer than 1024 characters"),
        ("/passwd", "", "file name 'passwd' does not end in .cfg, .txt or .xml"),
        ("/a.exe", "", "file name 'a.exe' does not end in .cfg, .txt or .xml"),
        ("/a.cfg.bak", "", "file name 'a.cfg.bak' does not end in .cfg, .txt or .xml"),
        ("/f0X4hw1.100", "", "file name 'f0X4hw1.100' does not end in .cfg, .txt or .xml"),
        ("/mac.cfg", "mac=", "empty file name"),
        ("/mac.cfg", "mac=../x.cfg", f"unsafe file name '../x.cfg': {UNSAFE}"),
        ("/mac.cfg", "mac=%2e%2e.cfg", f"unsafe file name '%2e%2e.cfg': {UNSAFE}"),
        ("/mac.cfg", "mac=$mac.cfg", f"unsafe file name '$mac.cfg': {UNSAFE}"),
        ("/mac.cfg", "mac=name1.cfg", "mac parameter 'name1.cfg' is not a MAC file name"),
        ("/mac.cfg", "mac=001565113af8", f"file name '001565113af8' {NO_EXT}"),
        ("/input.cfg", "input=", "empty file name"),
        ("/input.cfg", "input=a.cfg&input=b.cfg", f"ambiguous query: input and input {BOTH}"),
        ("/x.cfg", "mac=001565113af8.cfg&input=a.cfg", f"ambiguous query: mac and input {BOTH}"),
        ("/../mac.cfg", "mac=001565113af8.cfg", f"unsafe path segment '..': {UNSAFE}"),
        ("/..", "mac=001565113af8.cfg", f"unsafe path segment '..': {UNSAFE}"),
    ],
)  # fmt: skip
def test_resolve_refuses(path, query, message):
    with pytest.raises(ProvisioningError) as caught:
        models.resolve(path, query)
    assert str(caught.value) == message


def test_128_characters_is_the_longest_name():
    name = "a" * 124 + ".cfg"
    assert models.resolve("/" + name) == NamedFile("a" * 124, "text")


@pytest.mark.parametrize(
    "mac", ["001565113AF8", "00:15:65:11:3a:f8", "00-15-65-11-3A-F8", "0015.6511.3af8"]
)
def test_mac_file_name(mac):
    assert models.normalize_mac(mac) == "001565113af8"
    assert models.mac_file_name(mac) == "001565113af8.cfg"
    assert models.mac_file_name(mac, "xml") == "001565113af8.xml"


@pytest.mark.parametrize(
    "mac", ["", "001565113af", "001565113af8a", "00:15:65:11:3a-f8", "00:15:65:11:3a:g8", "x"]
)
def test_normalize_mac_refuses(mac):
    with pytest.raises(ProvisioningError) as caught:
        models.normalize_mac(mac)
    assert str(caught.value) == f"not a MAC address: {mac!r}"


def test_mac_file_name_refuses_unknown_format():
    with pytest.raises(ProvisioningError, match=r"^unknown configuration format 'csv'$"):
        models.mac_file_name("001565113af8", "csv")  # type: ignore[arg-type]
