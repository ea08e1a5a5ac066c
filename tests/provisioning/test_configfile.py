"""Configuration files as data: merge, substitute, both formats, digests and versions."""

from __future__ import annotations

import doctest

import pytest

from acs.provisioning import MissingVariablesError, ProvisioningError, configfile, crypto, models
from acs.provisioning.configfile import ParsedFile

GLOBAL, SIP, AUTO = "GLOBAL CONFIG MODULE", "SIP CONFIG MODULE", "AUTOUPDATE CONFIG MODULE"


def test_doctests():
    for module, count in ((configfile, 4), (models, 1), (crypto, 3)):
        assert doctest.testmod(module) == doctest.TestResults(failed=0, attempted=count)


# --- merge -------------------------------------------------------------------------------------


def test_merge_overrides_key_by_key_in_first_seen_order():
    general = {GLOBAL: {"Time Zone": "32", "Host Name": "VOIP"}, AUTO: {"Auto Image Url": "a"}}
    profile = {SIP: {"SIP1 Phone Number": "{{n}}"}, GLOBAL: {"Host Name": "Desk"}}
    device = {GLOBAL: {"Time Zone": "16", "Enable Something": "1"}, SIP: {}}
    merged = configfile.merge(general, profile, device)
    assert merged == {
        GLOBAL: {"Time Zone": "16", "Host Name": "Desk", "Enable Something": "1"},
        AUTO: {"Auto Image Url": "a"},
        SIP: {"SIP1 Phone Number": "{{n}}"},
    }
    assert [list(keys) for keys in merged.values()] == [
        ["Time Zone", "Host Name", "Enable Something"],
        ["Auto Image Url"],
        ["SIP1 Phone Number"],
    ]
    assert list(merged) == [GLOBAL, AUTO, SIP]
    # The layers are untouched.
    assert general == {
        GLOBAL: {"Time Zone": "32", "Host Name": "VOIP"},
        AUTO: {"Auto Image Url": "a"},
    }


def test_merge_of_nothing_is_empty():
    assert configfile.merge() == {}
    assert configfile.merge({GLOBAL: {}}) == {GLOBAL: {}}


# --- substitute --------------------------------------------------------------------------------


def test_substitute_fills_values_only():
    config = {
        SIP: {
            "SIP1 Phone Number": "{{sip1_number}}",
            "SIP1 Display Name": "{{ name }} ({{sip1_number}})",
            "{{key}}": "x",
        }
    }
    filled = configfile.substitute(config, {"sip1_number": "1001", "name": "Ana", "key": "no"})
    assert filled == {
        SIP: {"SIP1 Phone Number": "1001", "SIP1 Display Name": "Ana (1001)", "{{key}}": "x"}
    }
    assert config[SIP]["SIP1 Phone Number"] == "{{sip1_number}}"


def test_substitute_refuses_values_that_are_not_strings():
    with pytest.raises(ProvisioningError) as caught:
        configfile.substitute({GLOBAL: {"Time Zone": 32}}, {})
    assert str(caught.value) == "<GLOBAL CONFIG MODULE> 'Time Zone': value is not a string"
    with pytest.raises(ProvisioningError) as caught:
        configfile.substitute({GLOBAL: {"Time Zone": "{{tz}}"}}, {"tz": 32})
    assert str(caught.value) == "variable 'tz' is not a string"


def test_substitute_does_not_rescan_values():
    filled = configfile.substitute({GLOBAL: {"Host Name": "{{a}}"}}, {"a": "{{b}}", "b": "x"})
    assert filled == {GLOBAL: {"Host Name": "{{b}}"}}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{{{x}}", "{{x}}"),
        ("{{{{{{x}}", "{{1"),
        ("a}}b", "a}}b"),
        ("{x}", "{x}"),
        ("{{x}}}}", "1}}"),
        ("{{x.y-z_0}}", "2"),
        ("{{\tx }}", "1"),
    ],
)
def test_substitute_escapes(value, expected):
    filled = configfile.substitute({GLOBAL: {"K": value}}, {"x": "1", "x.y-z_0": "2"})
    assert filled == {GLOBAL: {"K": expected}}


def test_substitute_names_every_missing_variable():
    config = {
        GLOBAL: {"Host Name": "{{host}}"},
        SIP: {"A": "{{user}}", "B": "{{host}} {{pw}}", "C": "{{known}}"},
    }
    with pytest.raises(MissingVariablesError) as caught:
        configfile.substitute(config, {"known": "k"})
    assert caught.value.names == ("host", "user", "pw")
    assert str(caught.value) == "missing variables: host, user, pw"
    assert isinstance(caught.value, ProvisioningError)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("value", ["{{}}", "{{x", "{{{x}}", "a {{ b c }}", "{{x!}}"])
def test_substitute_refuses_malformed_placeholders(value):
    with pytest.raises(ProvisioningError) as caught:
        configfile.substitute({GLOBAL: {"K": value}}, {"x": "1"})
    assert str(caught.value) == (
        f"<GLOBAL CONFIG MODULE> 'K': malformed placeholder at {value[value.index('{{') :]!r} "
        "(write {{name}}, or {{{{ for a literal {{)"
    )


# --- rendering ---------------------------------------------------------------------------------

FIGURE_1 = {
    GLOBAL: {"Time Zone": "32"},
    AUTO: {
        "Auto Pbook Url": "tftp://123:123@172.16.6.70/500.csv",
        "Auto Image Url": "http://123:123@172.16.6.70:8000/x4.z",
        "Auto Etc Url": "tftp://172.16.6.70/sips.pem",
    },
}


def test_render_text_of_figure_1():
    assert configfile.render_text(FIGURE_1, "2.0002") == (
        b"<<VOIP CONFIG FILE>>Version:2.0002\r\n"
        b"\r\n"
        b"<GLOBAL CONFIG MODULE>\r\n"
        b"Time Zone :32\r\n"
        b"\r\n"
        b"<AUTOUPDATE CONFIG MODULE>\r\n"
        b"Auto Pbook Url :tftp://123:123@172.16.6.70/500.csv\r\n"
        b"Auto Image Url :http://123:123@172.16.6.70:8000/x4.z\r\n"
        b"Auto Etc Url :tftp://172.16.6.70/sips.pem\r\n"
        b"\r\n"
        b"<<END OF FILE>>\r\n"
    )


def test_render_xml_of_figure_1():
    assert configfile.render_xml(FIGURE_1, "2.0002") == (
        b"<VOIP CONFIG FILE>\r\n"
        b"<Digests>2.0002</Digests>\r\n"
        b"<GLOBAL CONFIG MODULE>\r\n"
        b"<Time_Zone>32</Time_Zone>\r\n"
        b"</GLOBAL CONFIG MODULE>\r\n"
        b"<AUTOUPDATE CONFIG MODULE>\r\n"
        b"<Auto_Pbook_Url>tftp://123:123@172.16.6.70/500.csv</Auto_Pbook_Url>\r\n"
        b"<Auto_Image_Url>http://123:123@172.16.6.70:8000/x4.z</Auto_Image_Url>\r\n"
        b"<Auto_Etc_Url>tftp://172.16.6.70/sips.pem</Auto_Etc_Url>\r\n"
        b"</AUTOUPDATE CONFIG MODULE>\r\n"
        b"</VOIP_CONFIG_FILE>\r\n"
    )


def test_render_empty_config_and_empty_module():
    assert configfile.render_text({}, "2.0001") == (
        b"<<VOIP CONFIG FILE>>Version:2.0001\r\n\r\n<<END OF FILE>>\r\n"
    )
    assert configfile.render_text({GLOBAL: {}}, "2.0001") == (
        b"<<VOIP CONFIG FILE>>Version:2.0001\r\n\r\n"
        b"<GLOBAL CONFIG MODULE>\r\n\r\n<<END OF FILE>>\r\n"
    )
    assert configfile.render_xml({}, "2.0001") == (
        b"<VOIP CONFIG FILE>\r\n<Digests>2.0001</Digests>\r\n</VOIP_CONFIG_FILE>\r\n"
    )


def test_render_keeps_values_verbatim_in_utf8():
    config = {GLOBAL: {"Host Name": " 豆豆\t:x: ", "Empty": ""}}
    assert configfile.render_text(config, "2.0001").split(b"\r\n")[3:5] == [
        " 豆豆\t:x: ".encode().join([b"Host Name :", b""]),
        b"Empty :",
    ]
    assert configfile.render_xml(config, "2.0001").split(b"\r\n")[3:5] == [
        "<Host_Name> 豆豆\t:x: </Host_Name>".encode(),
        b"<Empty></Empty>",
    ]


def test_render_dispatches_on_format():
    assert configfile.render(FIGURE_1, "2.0002", "text") == configfile.render_text(
        FIGURE_1, "2.0002"
    )
    assert configfile.render(FIGURE_1, "2.0002", "xml") == configfile.render_xml(FIGURE_1, "2.0002")
    with pytest.raises(ProvisioningError, match=r"^unknown configuration format 'ini'$"):
        configfile.render(FIGURE_1, "2.0002", "ini")  # type: ignore[arg-type]


G = "<GLOBAL CONFIG MODULE> "
SPACES = "surrounding spaces or leading '/'"
RESERVED = "is reserved by the file formats"
BREAK = "value contains a line break or control character"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"": {}}, "empty module name"),
        ({" GLOBAL": {}}, f"module name ' GLOBAL': {SPACES}"),
        ({"/GLOBAL": {}}, f"module name '/GLOBAL': {SPACES}"),
        ({"A<B": {}}, "module name 'A<B': '<' not allowed"),
        ({"A>": {}}, "module name 'A>': '>' not allowed"),
        ({"A&B": {}}, "module name 'A&B': '&' not allowed"),
        ({"A\nB": {}}, "module name 'A\\nB': '\\n' not allowed"),
        ({"VOIP CONFIG FILE": {}}, f"module name 'VOIP CONFIG FILE' {RESERVED}"),
        ({"voip_config_file": {}}, f"module name 'voip_config_file' {RESERVED}"),
        ({"Digests": {}}, f"module name 'Digests' {RESERVED}"),
        ({GLOBAL: {"": "x"}}, f"{G}empty key"),
        ({GLOBAL: {"Time Zone ": "x"}}, f"{G}key 'Time Zone ': {SPACES}"),
        ({GLOBAL: {"\tTime Zone": "x"}}, f"{G}key '\\tTime Zone': {SPACES}"),
        ({GLOBAL: {"Time:Zone": "x"}}, f"{G}key 'Time:Zone': ':' not allowed"),
        ({GLOBAL: {"Time_Zone": "x"}}, f"{G}key 'Time_Zone': '_' not allowed"),
        ({GLOBAL: {"Time\rZone": "x"}}, f"{G}key 'Time\\rZone': '\\r' not allowed"),
        ({GLOBAL: {"Time\tZone": "x"}}, f"{G}key 'Time\\tZone': '\\t' not allowed"),
        ({GLOBAL: {"<<END OF FILE>>": "x"}}, f"{G}key '<<END OF FILE>>': '<' not allowed"),
        ({GLOBAL: {"a&b": "x"}}, f"{G}key 'a&b': '&' not allowed"),
        ({GLOBAL: {"/x": "x"}}, f"{G}key '/x': {SPACES}"),
        ({GLOBAL: {"Host Name": "a\nTime Zone :1"}}, f"{G}'Host Name': {BREAK}"),
        ({GLOBAL: {"Host Name": "a\r"}}, f"{G}'Host Name': {BREAK}"),
        ({GLOBAL: {"Host Name": "a\x00"}}, f"{G}'Host Name': {BREAK}"),
        ({GLOBAL: {"Host Name": 32}}, f"{G}'Host Name': value is not a string"),
        ({GLOBAL: {1: "x"}}, f"{G}key 1 is not a string"),
        ({2: {}}, "module name 2 is not a string"),
        ({GLOBAL: ["Time Zone"]}, "<GLOBAL CONFIG MODULE>: not a mapping of keys to values"),
    ],
)
def test_render_refuses_what_would_break_the_format(config, message):
    for render in (configfile.render_text, configfile.render_xml):
        with pytest.raises(ProvisioningError) as caught:
            render(config, "2.0001")
        assert str(caught.value) == message
    with pytest.raises(ProvisioningError) as caught:
        configfile.validate_config(config)
    assert str(caught.value) == message


@pytest.mark.parametrize("version", ["", " 2.0001", "2.0001\r\n", "2<3", "2.0001 |", "1" * 35])
def test_render_refuses_bad_versions(version):
    for render in (configfile.render_text, configfile.render_xml):
        with pytest.raises(ProvisioningError) as caught:
            render({}, version)
        assert str(caught.value) == (
            f"version {version!r}: letters, digits, '.', '_', '-', at most 34 characters"
        )


def test_the_longest_version_fills_the_64_character_header():
    rendered = configfile.render_text({}, "1" * 34)
    assert len(rendered.split(b"\r\n")[0] + b"\r\n") == 64


# --- parsing the text format -------------------------------------------------------------------


def test_parse_text_tolerates_bom_lf_alignment_and_indentation():
    data = (
        b"\xef\xbb\xbf\n"
        b"  <<VOIP CONFIG FILE>>Version: 2.0002  \n"
        b"\t<AUTOUPDATE CONFIG MODULE>\n"
        b"  Auto Image Url      :ftp://123:123@172.16.6.70:8000/x4.z\n"
        b"Auto Pbook Url\t:tftp://h/500.csv\r\n"
        b"Trailing :spaces kept  \n"
        b"Empty:\n"
        b"Leading : space\n"
        b"\n"
        b"   \n"
        b"<<END OF FILE>>"
    )
    assert configfile.parse_text(data) == ParsedFile(
        "2.0002",
        {
            AUTO: {
                "Auto Image Url": "ftp://123:123@172.16.6.70:8000/x4.z",
                "Auto Pbook Url": "tftp://h/500.csv",
                "Trailing": "spaces kept  ",
                "Empty": "",
                "Leading": " space",
            }
        },
    )


@pytest.mark.parametrize(
    "header",
    [b"<<VOIP CONFIG FILE>>", b"<<VOIP CONFIG FILE>>Version:", b"<<VOIP CONFIG FILE>>Version:  "],
)
def test_parse_text_without_version(header):
    data = header + b"\r\n<GLOBAL CONFIG MODULE>\r\nTime Zone :32\r\n<<END OF FILE>>\r\n"
    assert configfile.parse_text(data) == (None, {GLOBAL: {"Time Zone": "32"}})


def test_parse_text_reopened_module_continues_it():
    data = (
        b"<<VOIP CONFIG FILE>>Version:2.0001\n<GLOBAL CONFIG MODULE>\nA :1\n<SIP CONFIG MODULE>\n"
        b"B :2\n<GLOBAL CONFIG MODULE>\nC :3\n<<END OF FILE>>\n"
    )
    assert configfile.parse_text(data) == (
        "2.0001",
        {GLOBAL: {"A": "1", "C": "3"}, SIP: {"B": "2"}},
    )


def _text(*lines: str) -> bytes:
    return "\r\n".join(lines).encode()


HEAD, MOD, EOF = "<<VOIP CONFIG FILE>>", "<GLOBAL CONFIG MODULE>", "<<END OF FILE>>"
KEY_VALUE = "expected 'Key :value' or '<MODULE NAME>'"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (b"\r\n \r\n", "empty file"),
        (b"\xff\xfe<\x00<\x00", "not UTF-8 text (byte 0)"),
        (b"<<VOIP CONFIG FILE>>\r\n\xc3(\r\n", "not UTF-8 text (byte 22)"),
        (_text("Time Zone :32", EOF), "line 1: expected the <<VOIP CONFIG FILE>> header"),
        (_text("", "<VOIP CONFIG FILE>"), "line 2: expected the <<VOIP CONFIG FILE>> header"),
        (_text(HEAD + "2.0002", EOF), "line 1: expected Version: after <<VOIP CONFIG FILE>>"),
        (_text(HEAD, "Time Zone :32", EOF), "line 2: setting before any <MODULE> header"),
        (_text(HEAD, MOD, "Time Zone 32", EOF), f"line 3: {KEY_VALUE}, got 'Time Zone 32'"),
        (_text(HEAD, MOD, " :32", EOF), f"line 3: {KEY_VALUE}, got ':32'"),
        (_text(HEAD, MOD, "A :1", "A :2", EOF), f"line 4: 'A' set twice in {MOD}"),
        (_text(HEAD, "<GLOBAL", EOF), "line 2: malformed module header '<GLOBAL'"),
        (_text(HEAD, "<>", EOF), "line 2: malformed module header '<>'"),
        (_text(HEAD, "<A<B>", EOF), "line 2: malformed module header '<A<B>'"),
        (_text(HEAD, HEAD, EOF), "line 2: unexpected '<<VOIP CONFIG FILE>>'"),
        (_text(HEAD, MOD, "A :1", ""), "no <<END OF FILE>> line: the file is truncated"),
        (_text(HEAD, EOF, "A :1"), "line 3: content after <<END OF FILE>>"),
        (_text(HEAD, MOD, "A :1\rB :2", EOF), "line 3: carriage return inside a line"),
        (b"<<VOIP CONFIG FILE>>\r<G>\r<<END OF FILE>>\r", "line 1: carriage return inside a line"),
    ],
)
def test_parse_text_refuses(data, message):
    with pytest.raises(ProvisioningError) as caught:
        configfile.parse_text(data)
    assert str(caught.value) == message


def test_parse_text_refuses_encrypted_data():
    encrypted = crypto.encrypt(configfile.render_text(FIGURE_1, "2.0002"), "ab" * 32)
    with pytest.raises(ProvisioningError, match=r"^not UTF-8 text|^line 1: "):
        configfile.parse_text(encrypted)


# --- parsing the XML format --------------------------------------------------------------------


def test_parse_xml_tolerates_indentation_lf_both_roots_and_spaced_tags():
    data = (
        b"\xef\xbb\xbf<VOIP_CONFIG_FILE>\n"
        b"  <Digests> 2.0003 </Digests>\n"
        b"  <SIP CONFIG MODULE>\n"
        b"    <SIP1 Display Name>A &amp; B &lt;1&gt; &quot;q&quot; &apos;s&apos; > "
        b"</SIP1 Display Name>\n"
        b"    <SIP1_Phone_Number></SIP1_Phone_Number>\n"
        b"  </SIP CONFIG MODULE>\n"
        b"\n"
        b"</VOIP CONFIG FILE>\n"
    )
    assert configfile.parse_xml(data) == (
        "2.0003",
        {SIP: {"SIP1 Display Name": "A & B <1> \"q\" 's' > ", "SIP1 Phone Number": ""}},
    )


@pytest.mark.parametrize("digests", [b"", b"<Digests></Digests>\r\n", b"<Digests> </Digests>\r\n"])
def test_parse_xml_without_version(digests):
    data = (
        b"<VOIP CONFIG FILE>\r\n" + digests + b"<G>\r\n<A>1</A>\r\n</G>\r\n</VOIP_CONFIG_FILE>\r\n"
    )
    assert configfile.parse_xml(data) == (None, {"G": {"A": "1"}})


def _xml(*lines: str) -> bytes:
    return "\r\n".join(lines).encode()


ROOT, END = "<VOIP CONFIG FILE>", "</VOIP_CONFIG_FILE>"
ELEMENT = "expected <Tag>value</Tag>, <MODULE NAME> or </MODULE NAME>"
AMP = "a literal '&' must be written &amp;"


def _module(*lines: str) -> bytes:
    return _xml(ROOT, "<G>", *lines, "</G>", END)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (_xml("<?xml version='1.0'?>", ROOT), "line 1: expected <VOIP CONFIG FILE>"),
        (_xml("<<VOIP CONFIG FILE>>", "<<END OF FILE>>"), "line 1: expected <VOIP CONFIG FILE>"),
        (
            _xml(ROOT, "<G>", "<A>1</A>", "</G>"),
            "no </VOIP_CONFIG_FILE> line: the file is truncated",
        ),
        (_xml(ROOT, "<G>", "<A>1</A>"), "no </VOIP_CONFIG_FILE> line: the file is truncated"),
        (_xml(ROOT, END, "<G>"), "line 3: content after </VOIP_CONFIG_FILE>"),
        (_module("<A>1</B>"), "line 3: <A> closed by </B>"),
        (_module("<A>1", "</A>"), f"line 3: {ELEMENT}, got '<A>1'"),
        (_xml(ROOT, "<A>1</A>", END), "line 2: <A> outside a module"),
        (
            _xml(ROOT, "<G>", "</G>", "<Digests>2</Digests>", END),
            "line 4: <Digests> outside a module",
        ),
        (
            _xml(ROOT, "<Digests>2</Digests>", "<Digests>3</Digests>", END),
            "line 3: <Digests> outside a module",
        ),
        (_module("<H>", "</H>"), "line 3: <G> is not closed"),
        (_xml(ROOT, "<G>", END), "line 3: </VOIP_CONFIG_FILE> where </G> belongs"),
        (_xml(ROOT, "</G>", END), "line 2: </G> where </VOIP_CONFIG_FILE> belongs"),
        (_xml(ROOT, "<Digests>", "</Digests>", END), "line 2: unexpected <Digests>"),
        (_xml(ROOT, ROOT, END), "line 2: unexpected <VOIP CONFIG FILE>"),
        (_module("<A>1</A>", "<A>2</A>"), "line 4: 'A' set twice in <G>"),
        (_module("<A B>1</A_B>"), "line 3: <A B> closed by </A_B>"),
        (_module("<A>a & b</A>"), f"line 3: {AMP}"),
        (_module("<A>&nbsp;</A>"), f"line 3: {AMP}"),
        (_module("<A>&#60;</A>"), f"line 3: {AMP}"),
        (_module("<A>a<b</A>"), f"line 3: {ELEMENT}, got '<A>a<b</A>'"),
        (_module("A :1"), f"line 3: {ELEMENT}, got 'A :1'"),
    ],
)
def test_parse_xml_refuses(data, message):
    with pytest.raises(ProvisioningError) as caught:
        configfile.parse_xml(data)
    assert str(caught.value) == message


def test_parse_dispatches_on_format():
    assert configfile.parse(configfile.render_xml(FIGURE_1, "2.0002"), "xml") == (
        "2.0002",
        FIGURE_1,
    )
    assert configfile.parse(configfile.render_text(FIGURE_1, "2.0002"), "text") == (
        "2.0002",
        FIGURE_1,
    )
    with pytest.raises(ProvisioningError, match=r"^unknown configuration format 'ini'$"):
        configfile.parse(b"", "ini")  # type: ignore[arg-type]


# --- round trips -------------------------------------------------------------------------------

TRICKY = {
    GLOBAL: {
        "Time Zone": "32",
        "Host Name": "  豆豆 & <Ana> \"'  ",
        "Empty": "",
        "Tabbed": "\ta\tb\t",
        "--SIP Line List--": "",
        "Url": "http://u:p@h:8080/a?b=1&c=2#d",
        "Braces": "{{x}} </GLOBAL CONFIG MODULE> <<END OF FILE>>",
        "Separators": "a\u2028b\x85c",
    },
    "EMPTY MODULE": {},
    SIP: {"SIP1 Display Name": ":: : :", "SIP1 Phone Number": "1001"},
}


@pytest.mark.parametrize("fmt", ["text", "xml"])
@pytest.mark.parametrize("version", ["2.0001", "3.9999", "2.0000000000", "v1_b-2"])
def test_round_trip(fmt, version):
    rendered = configfile.render(TRICKY, version, fmt)
    parsed = configfile.parse(rendered, fmt)
    assert parsed == ParsedFile(version, TRICKY)
    assert [list(keys) for keys in parsed.config.values()] == [list(k) for k in TRICKY.values()]
    assert list(parsed.config) == list(TRICKY)
    # LF-only copies (an editor, a TFTP server in ASCII mode) read the same.
    assert configfile.parse(rendered.replace(b"\r\n", b"\n"), fmt) == parsed


# --- digests and versions ----------------------------------------------------------------------


def test_content_digest():
    digest = configfile.content_digest(FIGURE_1)
    # Pinned: stored digests decide versions, so the canonical form must not drift silently.
    # = sha256sum of 'acs-provisioning-config-v1\n[["GLOBAL CONFIG MODULE",[["Time Zone","32"]]],
    # ["AUTOUPDATE CONFIG MODULE",[["Auto Pbook Url","tftp://..."],...]]]' (one line, no spaces)
    assert digest == "1afe499da66da5f0ee4d75f8e6eda64ba7f8766eab35268aae709fd5c1d50150"
    assert (
        configfile.content_digest(
            configfile.parse_text(configfile.render_text(FIGURE_1, "9.9999")).config
        )
        == digest
    )
    assert (
        configfile.content_digest(
            configfile.parse_xml(configfile.render_xml(FIGURE_1, "2.0001")).config
        )
        == digest
    )
    changed = configfile.merge(FIGURE_1, {GLOBAL: {"Time Zone": "16"}})
    assert configfile.content_digest(changed) != digest
    reordered = {AUTO: FIGURE_1[AUTO], GLOBAL: FIGURE_1[GLOBAL]}
    assert configfile.content_digest(reordered) != digest
    # Module and key boundaries are part of the content.
    assert configfile.content_digest({"A": {"B": "C"}}) != configfile.content_digest(
        {"A": {"BC": ""}}
    )
    assert configfile.content_digest({"A": {}}) != configfile.content_digest({})


@pytest.mark.parametrize(
    ("previous_version", "previous_digest", "digest", "expected"),
    [
        (None, None, "d1", "2.0001"),
        (None, "d1", "d1", "2.0001"),
        ("2.0001", "d1", "d1", "2.0001"),
        ("2.0001", "d1", "d2", "2.0002"),
        ("2.0001", None, "d2", "2.0002"),
        ("2.0009", "d1", "d2", "2.0010"),
        ("2.0999", "d1", "d2", "2.1000"),
        ("2.9998", "d1", "d2", "2.9999"),
        ("2.9999", "d1", "d2", "3.0001"),
        ("2.9999", "d1", "d1", "2.9999"),
        ("99.9999", "d1", "d2", "100.0001"),
        ("2.0000", "d1", "d2", "2.0001"),
    ],
)
def test_next_version(previous_version, previous_digest, digest, expected):
    assert configfile.next_version(previous_version, previous_digest, digest) == expected


@pytest.mark.parametrize("previous", ["", "2", "2.1", "2.00001", "2.0002 |", "v2.0001", "2.000a"])
def test_next_version_refuses_foreign_versions(previous):
    with pytest.raises(ProvisioningError) as caught:
        configfile.next_version(previous, "d1", "d2")
    assert str(caught.value) == f"previous version {previous!r} is not <major>.<four digits>"


def test_a_changed_file_gets_a_new_version_and_an_unchanged_one_keeps_it():
    first_digest = configfile.content_digest(FIGURE_1)
    first = configfile.next_version(None, None, first_digest)
    again = configfile.next_version(first, first_digest, configfile.content_digest(FIGURE_1))
    changed = configfile.merge(FIGURE_1, {GLOBAL: {"Time Zone": "16"}})
    bumped = configfile.next_version(again, first_digest, configfile.content_digest(changed))
    assert (first, again, bumped) == ("2.0001", "2.0001", "2.0002")
