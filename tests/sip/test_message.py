"""acs.sip.message: SIP messages parsed and rendered, exactly; what is not SIP is Malformed."""

from __future__ import annotations

import pytest

from acs.sip import message as sip
from acs.sip.message import Malformed, NameAddr, Request, Response, SipUri, Via

SUBSCRIBE = (
    b"SUBSCRIBE sip:MAC%3a0c383e113af8@224.0.1.75 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1;rport\r\n"
    b"From: <sip:MAC%3a0c383e113af8@224.0.1.75>;tag=a1\r\n"
    b"To: <sip:MAC%3a0c383e113af8@224.0.1.75>\r\n"
    b"Call-ID: c1@192.0.2.10\r\n"
    b"CSeq: 1 SUBSCRIBE\r\n"
    b'Event: ua-profile;profile-type="device";vendor="Fanvil";model="X6"\r\n'
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def test_a_request_is_its_start_line_headers_in_order_and_body():
    assert sip.parse(SUBSCRIBE) == Request(
        "SUBSCRIBE",
        "sip:MAC%3a0c383e113af8@224.0.1.75",
        (
            ("via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1;rport"),
            ("from", "<sip:MAC%3a0c383e113af8@224.0.1.75>;tag=a1"),
            ("to", "<sip:MAC%3a0c383e113af8@224.0.1.75>"),
            ("call-id", "c1@192.0.2.10"),
            ("cseq", "1 SUBSCRIBE"),
            ("event", 'ua-profile;profile-type="device";vendor="Fanvil";model="X6"'),
            ("content-length", "0"),
        ),
        b"",
    )


def test_compact_names_folded_values_bare_lf_and_leading_crlf_are_read():
    datagram = (
        b"\r\n\r\nNOTIFY sip:a@b SIP/2.0\n"
        b"v: SIP/2.0/UDP h;branch=x\n"
        b"f: <sip:a@b>;tag=1\n"
        b"t:<sip:a@b>\n"
        b"i: id\n"
        b"o: ua-profile\n"
        b"Subject: one\n"
        b" \t two\n"
        b"l: 3\n"
        b"\n"
        b"abcdef"
    )
    assert sip.parse(datagram) == Request(
        "NOTIFY",
        "sip:a@b",
        (
            ("via", "SIP/2.0/UDP h;branch=x"),
            ("from", "<sip:a@b>;tag=1"),
            ("to", "<sip:a@b>"),
            ("call-id", "id"),
            ("event", "ua-profile"),
            ("subject", "one two"),
            ("content-length", "3"),
        ),
        b"abc",
    )


def test_a_response_and_a_body_without_content_length():
    got = sip.parse(b"SIP/2.0 486 Busy Here\r\nCSeq: 1 NOTIFY\r\n\r\nthe rest")
    assert got == Response(486, "Busy Here", (("cseq", "1 NOTIFY"),), b"the rest")
    assert got.header("cseq") == "1 NOTIFY"
    assert got.header("via") is None


def test_a_head_without_its_empty_line_has_no_body():
    assert sip.parse(b"SIP/2.0 200 OK\r\nCSeq: 1 NOTIFY\r\n") == Response(
        200, "OK", (("cseq", "1 NOTIFY"),), b""
    )


def test_header_values_split_lists_across_headers():
    request = sip.parse(
        b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=1, SIP/2.0/UDP b;branch=2\r\n"
        b"Via: SIP/2.0/UDP c;branch=3\r\n\r\n"
    )
    assert request.header_values("via") == [
        "SIP/2.0/UDP a;branch=1",
        "SIP/2.0/UDP b;branch=2",
        "SIP/2.0/UDP c;branch=3",
    ]


@pytest.mark.parametrize(
    ("datagram", "why"),
    [
        (b"", "no start line"),
        (b"\r\n\r\n", "no start line"),
        (b"GARBAGE", "the request line is not 'METHOD URI SIP/2.0'"),
        (b"\x00\x01\x02 x y", "not a method: '\\x00\\x01\\x02'"),
        (b"INVITE sip:a SIP/3.0\r\n\r\n", "not SIP/2.0: 'SIP/3.0'"),
        (b"INVITE nowhere SIP/2.0\r\n\r\n", "not a Request-URI: 'nowhere'"),
        (b"SIP/2.0 99 Odd\r\n\r\n", "not a status code: '99'"),
        (b"SIP/1.0 200 OK\r\n\r\n", "not SIP/2.0: 'SIP/1.0'"),
        (b"OPTIONS sip:x SIP/2.0\r\n\xff\xfe: x\r\n\r\n", "the head is not UTF-8"),
        (b"OPTIONS sip:x SIP/2.0\r\nno colon here\r\n\r\n", "not a header line: 'no colon here'"),
        (b"OPTIONS sip:x SIP/2.0\r\n: empty\r\n\r\n", "not a header line: ': empty'"),
        (b"OPTIONS sip:x SIP/2.0\r\n folded\r\n\r\n", "a continuation line before any header"),
        (b"OPTIONS sip:x SIP/2.0\r\nX: a\rB: b\r\n\r\n", "a control character in the head"),
        (b"OPTIONS sip:x SIP/2.0\r\nl: five\r\n\r\n", "Content-Length is not a number: 'five'"),
        (b"OPTIONS sip:x SIP/2.0\r\nl: 9\r\n\r\nshort", "Content-Length 9 but 5 bytes follow"),
        (b"OPTIONS sip:x SIP/2.0\r\n" + b"X: y\r\n" * 101 + b"\r\n", "more than 100 headers"),
        (b"x" * 8193, "8193 bytes, more than 8192"),
    ],
)
def test_what_is_not_sip_is_malformed_and_says_why(datagram, why):
    with pytest.raises(Malformed) as refused:
        sip.parse(datagram)
    assert str(refused.value) == why


def test_lists_and_parameters():
    assert sip.split_list('a, "b,c" <d,e>, f,,') == ["a", '"b,c" <d,e>', "f"]
    assert sip.parse_params(' ;a=1 ; B ;c="x;\\"y"') == (
        ("a", "1"),
        ("B", None),
        ("c", '"x;\\"y"'),
    )
    assert sip.unquote('"x;\\"y"') == 'x;"y'
    assert sip.unquote("token") == "token"
    assert sip.parse_header('ua-profile;vendor="Fanvil"') == (
        "ua-profile",
        (("vendor", '"Fanvil"'),),
    )
    assert sip.parse_header("presence") == ("presence", ())
    for bad, why in [
        (';a="open', "an unterminated quoted string: '\"open'"),
        (";=1", "a parameter without a name: ';=1'"),
        ("x", "expected ';' in parameters: 'x'"),
    ]:
        with pytest.raises(Malformed) as refused:
            sip.parse_params(bad)
        assert str(refused.value) == why


def test_via():
    via = sip.parse_via("sip / 2.0 / udp [2001:db8::1]:5070 ;branch=z9hG4bKx;rport;Received=1")
    assert via == Via(
        "UDP", "2001:db8::1", 5070, (("branch", "z9hG4bKx"), ("rport", None), ("Received", "1"))
    )
    assert (via.branch, via.param("rport"), via.param("received"), via.param("ttl")) == (
        "z9hG4bKx",
        "",
        "1",
        None,
    )
    assert via.render() == "SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bKx;rport;Received=1"
    assert sip.parse_via("SIP/2.0/UDP phone.example").port is None
    for bad, why in [
        ("SIP/2.0 192.0.2.1", "not a Via: 'SIP/2.0 192.0.2.1'"),
        ("SIP/2.0/UDP host:port", "not a port: 'host:port'"),
        ("SIP/2.0/UDP [::1", "'[' without ']': '[::1'"),
        ("SIP/2.0/UDP h:70000", "not a port: 'h:70000'"),
    ]:
        with pytest.raises(Malformed) as refused:
            sip.parse_via(bad)
        assert str(refused.value) == why


def test_name_addr_and_uri():
    assert sip.parse_name_addr('"Desk <1>" <sip:1001@pbx;transport=udp>;tag=9') == NameAddr(
        "sip:1001@pbx;transport=udp", (("tag", "9"),)
    )
    assert sip.parse_name_addr("sip:1001@pbx;tag=9").tag == "9"
    assert sip.parse_name_addr("<sip:1001@pbx>").tag is None
    assert sip.parse_uri("sip:MAC%3a0c383e113af8@224.0.1.75") == SipUri(
        "sip", "MAC%3a0c383e113af8", "224.0.1.75", None
    )
    assert sip.parse_uri("SIPS:u:pw@[::1]:5061;transport=tls?subject=x") == SipUri(
        "sips", "u", "::1", 5061
    )
    assert sip.parse_uri("sip:192.0.2.10:5060") == SipUri("sip", None, "192.0.2.10", 5060)
    for bad, why in [
        ("tel:+15551234", "not a SIP URI: 'tel:+15551234'"),
        ("sip:u@", "not a host: ''"),
        ("sip:u@bad host", "not a host: 'bad host'"),
    ]:
        with pytest.raises(Malformed) as refused:
            sip.parse_uri(bad)
        assert str(refused.value) == why
    with pytest.raises(Malformed) as refused:
        sip.parse_name_addr("Someone <sip:a@b")
    assert str(refused.value) == "'<' without '>': 'Someone <sip:a@b'"


def test_cseq():
    assert sip.parse_cseq(" 42 SUBSCRIBE ") == (42, "SUBSCRIBE")
    for bad in ("SUBSCRIBE", "2147483648 SUBSCRIBE", "1", "x NOTIFY", "1 NO TIFY"):
        with pytest.raises(Malformed):
            sip.parse_cseq(bad)


def test_rendering_adds_content_length():
    assert sip.render_request("NOTIFY", "sip:a@b", [("CSeq", "1 NOTIFY")], b"url") == (
        b"NOTIFY sip:a@b SIP/2.0\r\nCSeq: 1 NOTIFY\r\nContent-Length: 3\r\n\r\nurl"
    )
    assert sip.render_response(200, "OK", [("CSeq", "1 SUBSCRIBE")]) == (
        b"SIP/2.0 200 OK\r\nCSeq: 1 SUBSCRIBE\r\nContent-Length: 0\r\n\r\n"
    )
    assert sip.bracket("2001:db8::1") == "[2001:db8::1]"
    assert sip.bracket("192.0.2.1") == "192.0.2.1"
