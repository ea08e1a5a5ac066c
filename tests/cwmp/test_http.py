"""``acs.cwmp.http``: the HTTP binding of CWMP, with no I/O (cookies, replies, lookups)."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from acs.cwmp import http


def request(
    cookie: str | None = None, host: str = "192.0.2.1", port: int = 4000
) -> http.HttpRequest:
    headers = {} if cookie is None else {"cookie": cookie}
    return http.HttpRequest("POST", "/acs", headers, b"", host, port)


class Row(NamedTuple):
    id: str
    peer_host: str
    peer_port: int


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, []),
        ("", []),
        ("acs_session=abc", ["abc"]),
        ("acs_session=abc; Path=/; HttpOnly", ["abc"]),  # attributes echoed back
        ('other=1, acs_session="abc", acs_session=def', ["abc", "def"]),  # joined by commas
        ("acs_session=", []),
        ("xacs_session=abc", []),
    ],
)
def test_session_cookies_however_mangled(header: str | None, expected: list[str]) -> None:
    assert http.session_cookies(header) == expected


def test_lookups_cookie_then_connection_then_address() -> None:
    assert http.lookups(request()) == [
        http.ByConnection("192.0.2.1", 4000),
        http.ByAddress("192.0.2.1"),
    ]
    assert http.lookups(request("acs_session=a, acs_session=b, acs_session=a")) == [
        http.ByCookie("a"),
        http.ByCookie("b"),
        http.ByConnection("192.0.2.1", 4000),
    ]  # with a cookie of ours, never by address alone: behind a NAT that is another device


def test_pick_prefers_cookie_then_connection_then_address() -> None:
    mine = Row("SESSIONA-xyz", "192.0.2.1", 4000)
    other_port = Row("SESSIONB-xyz", "192.0.2.1", 5000)
    assert http.pick([other_port, mine], request("acs_session=SESSIONA-xyz", port=9), None) == mine
    assert http.pick([other_port, mine], request(port=4000), None) == mine
    assert http.pick([other_port], request(port=1), None) == other_port
    assert http.pick([Row("x", "198.51.100.9", 1)], request(), None) is None


def test_cookieless_cpes_behind_one_address_are_told_apart_by_request_id() -> None:
    a = Row("AAAAAAAA-rest", "192.0.2.1", 1)
    b = Row("BBBBBBBB-rest", "192.0.2.1", 2)
    assert http.id_prefix(b.id) == "BBBBBBBB."
    assert http.pick([a, b], request(port=3), "BBBBBBBB.4") == b
    assert http.pick([a, b], request(port=3), "CCCCCCCC.1") == a  # no match: the newest


def test_replies() -> None:
    xml = http.HttpReply.xml(b"<x/>", "sid", tls=True)
    assert (xml.status, xml.body) == (200, b"<x/>")
    assert xml.headers == [
        ("content-type", 'text/xml; charset="utf-8"'),
        ("set-cookie", "acs_session=sid; Path=/; HttpOnly; Secure"),
    ]
    assert http.HttpReply.xml(b"", None).headers == [("content-type", 'text/xml; charset="utf-8"')]
    busy = http.HttpReply.busy("busy, retry later", 0)
    assert (busy.status, busy.body, busy.headers) == (
        503,
        b"busy, retry later\n",
        [("content-type", "text/plain"), ("retry-after", "1")],
    )
    assert http.HttpReply.unauthorized(["Digest a", "Digest b"]).headers == [
        ("www-authenticate", "Digest a"),
        ("www-authenticate", "Digest b"),
    ]


@pytest.mark.parametrize(
    ("cpe", "expected"), [(None, 30), (0, 30), (10, 30), (120, 120), (3600, 300)]
)
def test_session_timeout_honours_the_cpe_up_to_a_bound(cpe: int | None, expected: int) -> None:
    assert http.session_timeout(30, cpe) == expected
