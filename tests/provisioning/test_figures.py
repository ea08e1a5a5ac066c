"""The document's own example files, copied character for character, read by our parsers.

The document (Auto Provision Description v1.1) shows them with LF line ends and with the
blank lines of its layout; Figure 20 carries a stray " |" after its version (a text cursor
caught in the screenshot, most likely), kept here as printed.
"""

from __future__ import annotations

import pytest

from acs.provisioning import configfile

AUTO = "AUTOUPDATE CONFIG MODULE"

# Section 4.1, "To update an option, the module header of this option must be carried".
HOST_NAME_EXAMPLE = """\
<<VOIP CONFIG FILE>>Version:2.0002

<GLOBAL CONFIG MODULE>

Host Name :VOIP (not less than 20 characters)

<<END OF FILE>>
"""

FIGURE_1 = """\
<<VOIP CONFIG FILE>>Version:2.0002

<GLOBAL CONFIG MODULE>

Time Zone :32

<AUTOUPDATE CONFIG MODULE>

Auto Pbook Url :tftp://123:123@172.16.6.70/500.csv

Auto Image Url :http://123:123@172.16.6.70:8000/x4.z

Auto Etc Url :tftp://172.16.6.70/sips.pem

<<END OF FILE>>
"""

FIGURE_6 = """\
<VOIP CONFIG FILE>
<Digests>2.0002</Digests>
<GLOBAL CONFIG MODULE>
<Time_Zone>32</Time_Zone>
</GLOBAL CONFIG MODULE>
<AUTOUPDATE CONFIG MODULE>
<Auto Image Url> tftp://172.16.6.45/x4.z</Auto Image Url>
</AUTOUPDATE CONFIG MODULE>
</VOIP_CONFIG_FILE>
"""

FIGURE_18 = """\
<<VOIP CONFIG FILE>>Version:2.0002

<AUTOUPDATE CONFIG MODULE>

Auto Image Url      :ftp://123:123@172.16.6.70:8000/x4.z

<<END OF FILE>>
"""

FIGURE_19 = """\
<<VOIP CONFIG FILE>>Version:2.0002

<AUTOUPDATE CONFIG MODULE>

Auto Pbook Url     :tftp://123:123@172.16.6.70/500.csv

<<END OF FILE>>
"""

FIGURE_20 = """\
<<VOIP CONFIG FILE>>Version:2.0002 |

<AUTOUPDATE CONFIG MODULE>

Auto Etc Url       :tftp://172.16.6.70/sips.pem

<<END OF FILE>>
"""

FIGURE_21 = """\
<<VOIP CONFIG FILE>>Version:2.0002

<AUTOUPDATE CONFIG MODULE>

Auto Logo Url      :tftp://172.16.6.70/background.bmp

<<END OF FILE>>
"""

FIGURE_22 = """\
<<VOIP CONFIG FILE>>Version:2.0002

<AUTOUPDATE CONFIG MODULE>
Auto Mmiset Url    :tftp://123:123@172.16.6.45/mmiset6_SpanishT20131206171925.z

<<END OF FILE>>
"""

FIGURE_23 = """\
<<VOIP CONFIG FILE>>Version:2.0002

<AUTOUPDATE CONFIG MODULE>

Auto DPeer Url    :ftp://123:123@172.16.6.45:8080/dialPeer.csv

<<END OF FILE>>
"""

FIGURE_24 = """\
<<VOIP CONFIG FILE>>Version:2.0002
<AUTOUPDATE CONFIG MODULE>
Auto AList Url :ftp://123:123@172.16.6.45:8080/accessList.csv
<<END OF FILE>>
"""


def test_host_name_example():
    # The parenthesis is the document's annotation, but in a file it is part of the value.
    assert configfile.parse_text(HOST_NAME_EXAMPLE.encode()) == (
        "2.0002",
        {"GLOBAL CONFIG MODULE": {"Host Name": "VOIP (not less than 20 characters)"}},
    )


def test_figure_1():
    expected = {
        "GLOBAL CONFIG MODULE": {"Time Zone": "32"},
        AUTO: {
            "Auto Pbook Url": "tftp://123:123@172.16.6.70/500.csv",
            "Auto Image Url": "http://123:123@172.16.6.70:8000/x4.z",
            "Auto Etc Url": "tftp://172.16.6.70/sips.pem",
        },
    }
    parsed = configfile.parse_text(FIGURE_1.encode())
    assert parsed == ("2.0002", expected)
    assert list(parsed.config[AUTO]) == ["Auto Pbook Url", "Auto Image Url", "Auto Etc Url"]
    # With the CRLF line ends the document prescribes, it reads the same.
    assert configfile.parse_text(FIGURE_1.replace("\n", "\r\n").encode()) == parsed


def test_figure_6():
    parsed = configfile.parse_xml(FIGURE_6.encode())
    assert parsed == (
        "2.0002",
        {
            "GLOBAL CONFIG MODULE": {"Time Zone": "32"},
            # Values are kept verbatim, the figure's space after the tag included.
            AUTO: {"Auto Image Url": " tftp://172.16.6.45/x4.z"},
        },
    )
    # Written back in our consistent spelling: underscores in keys, no added space.
    assert configfile.render_xml(parsed.config, "2.0002").decode() == (
        "<VOIP CONFIG FILE>\r\n"
        "<Digests>2.0002</Digests>\r\n"
        "<GLOBAL CONFIG MODULE>\r\n"
        "<Time_Zone>32</Time_Zone>\r\n"
        "</GLOBAL CONFIG MODULE>\r\n"
        "<AUTOUPDATE CONFIG MODULE>\r\n"
        "<Auto_Image_Url> tftp://172.16.6.45/x4.z</Auto_Image_Url>\r\n"
        "</AUTOUPDATE CONFIG MODULE>\r\n"
        "</VOIP_CONFIG_FILE>\r\n"
    )


@pytest.mark.parametrize(
    ("figure", "version", "key", "value"),
    [
        (FIGURE_18, "2.0002", "Auto Image Url", "ftp://123:123@172.16.6.70:8000/x4.z"),
        (FIGURE_19, "2.0002", "Auto Pbook Url", "tftp://123:123@172.16.6.70/500.csv"),
        (FIGURE_20, "2.0002 |", "Auto Etc Url", "tftp://172.16.6.70/sips.pem"),
        (FIGURE_21, "2.0002", "Auto Logo Url", "tftp://172.16.6.70/background.bmp"),
        (
            FIGURE_22,
            "2.0002",
            "Auto Mmiset Url",
            "tftp://123:123@172.16.6.45/mmiset6_SpanishT20131206171925.z",
        ),
        (FIGURE_23, "2.0002", "Auto DPeer Url", "ftp://123:123@172.16.6.45:8080/dialPeer.csv"),
        (FIGURE_24, "2.0002", "Auto AList Url", "ftp://123:123@172.16.6.45:8080/accessList.csv"),
    ],
    ids=["18", "19", "20", "21", "22", "23", "24"],
)
def test_figures_18_to_24(figure, version, key, value):
    assert configfile.parse_text(figure.encode()) == (version, {AUTO: {key: value}})


def test_figure_18_rendered_our_way():
    config = configfile.parse_text(FIGURE_18.encode()).config
    assert configfile.render_text(config, "2.0002") == (
        b"<<VOIP CONFIG FILE>>Version:2.0002\r\n"
        b"\r\n"
        b"<AUTOUPDATE CONFIG MODULE>\r\n"
        b"Auto Image Url :ftp://123:123@172.16.6.70:8000/x4.z\r\n"
        b"\r\n"
        b"<<END OF FILE>>\r\n"
    )
