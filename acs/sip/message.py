"""SIP messages as values: ``parse(bytes) -> Request | Response``, ``render_request`` and
``render_response`` back to bytes.

RFC 3261 section 7: a start line, header fields ``Name: value`` (names case-insensitive, with
the compact forms of section 7.3.3; a value may be folded over several lines that start with
whitespace, section 7.3.1), an empty line, then a body of Content-Length bytes. Over UDP
(section 18.3) a missing Content-Length means the rest of the datagram, and one larger than
the rest makes the message malformed. Lines may end in a bare LF (some phones' stacks write
them so; nothing is ambiguous about it), and CRLFs before the start line are skipped
(section 7.5).

Header values are kept as received, in order, folding undone; helpers read the structures a
responder needs: Via (section 20.42), name-addr with its parameters (From, To, Contact:
sections 20.10, 20.20, 20.39), CSeq (20.16), a header's first element and parameters (Event,
RFC 6665 section 8.2.1), and a SIP URI's user, host and port (section 19.1.1). Anything this
module cannot read raises ``Malformed``, and nothing else: the caller drops what it cannot
read and goes on. Control characters other than tab are refused in the head, so a value
copied from a request into an answer can never carry a line of its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

#: The longest datagram read as a message: a phone's SUBSCRIBE is well under 1 KiB, and
#: RFC 3261 section 18.1.1 keeps UDP messages under the path MTU.
MAX_MESSAGE: Final = 8192
MAX_HEADERS: Final = 100
VERSION: Final = "SIP/2.0"

#: Compact header names (RFC 3261 section 7.3.3, RFC 6665 for o and u, the IANA registry).
COMPACT: Final = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

_TOKEN: Final = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")
_END_OF_HEAD: Final = re.compile(rb"\r?\n\r?\n")
_CONTROL: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_VIA: Final = re.compile(
    r"SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9.!%*_+`'~-]+)\s+([^;\s]+)\s*(;.*)?", re.IGNORECASE
)

Headers: TypeAlias = tuple[tuple[str, str], ...]
#: Parameters as given: (name as written, raw value or None for a flag), in order.
Params: TypeAlias = tuple[tuple[str, str | None], ...]


class Malformed(ValueError):
    """Bytes that are no SIP message this module can read; the text says what is wrong."""


@dataclass(frozen=True, slots=True)
class Request:
    """A request: ``headers`` as (lower-case full name, value) pairs in the order received."""

    method: str
    uri: str
    headers: Headers = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower-case full name), or None."""
        return _first(self.headers, name)

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name``, comma-separated lists split (Via)."""
        return _values(self.headers, name)


@dataclass(frozen=True, slots=True)
class Response:
    """A response: status, reason phrase, headers as ``Request``'s."""

    status: int
    reason: str
    headers: Headers = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower-case full name), or None."""
        return _first(self.headers, name)

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name``, comma-separated lists split (Via)."""
        return _values(self.headers, name)


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value: ``SIP/2.0/<transport> <host>[:<port>]`` and its parameters."""

    transport: str
    host: str  # an IPv6 reference without its brackets
    port: int | None
    params: Params = ()

    def param(self, name: str) -> str | None:
        """The raw value of parameter ``name`` (case-insensitive); "" for a flag; None if
        absent."""
        found, value = _param(self.params, name)
        return (value or "") if found else None

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    def render(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"SIP/2.0/{self.transport} {bracket(self.host)}{port}{render_params(self.params)}"


@dataclass(frozen=True, slots=True)
class NameAddr:
    """From, To or Contact: the URI (inside ``<>`` or bare) and the header's parameters."""

    uri: str
    params: Params = ()

    @property
    def tag(self) -> str | None:
        return _param(self.params, "tag")[1] or None


@dataclass(frozen=True, slots=True)
class SipUri:
    """The parts of a ``sip:``/``sips:`` URI a responder reads; ``user`` as written
    (percent-escapes kept)."""

    scheme: str
    user: str | None
    host: str  # an IPv6 reference without its brackets
    port: int | None


# --- parsing --------------------------------------------------------------------------------------


def parse(datagram: bytes) -> Request | Response:
    """The message in one UDP datagram.

    Raises:
        Malformed: see the module docstring.
    """
    if len(datagram) > MAX_MESSAGE:
        raise Malformed(f"{len(datagram)} bytes, more than {MAX_MESSAGE}")
    datagram = datagram.lstrip(b"\r\n")
    if not datagram:
        raise Malformed("no start line")
    end = _END_OF_HEAD.search(datagram)
    if end is None:  # no empty line: all head, no body
        head, rest = datagram.rstrip(b"\r\n"), b""
    else:
        head, rest = datagram[: end.start()], datagram[end.end() :]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("the head is not UTF-8") from None
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    start, headers = lines[0], _headers(lines[1:])
    body = _body(headers, rest)
    if start[:4].upper() == "SIP/":
        status, reason = _status_line(start)
        return Response(status, reason, headers, body)
    method, uri = _request_line(start)
    return Request(method, uri, headers, body)


def _status_line(line: str) -> tuple[int, str]:
    version, _, rest = line.partition(" ")
    code, _, reason = rest.partition(" ")
    if version.upper() != VERSION:
        raise Malformed(f"not SIP/2.0: {version[:20]!r}")
    if not (len(code) == 3 and code.isascii() and code.isdigit() and 100 <= int(code) <= 699):
        raise Malformed(f"not a status code: {code[:20]!r}")
    return int(code), reason


def _request_line(line: str) -> tuple[str, str]:
    parts = line.split(" ")
    if len(parts) != 3:
        raise Malformed("the request line is not 'METHOD URI SIP/2.0'")
    method, uri, version = parts
    if _TOKEN.fullmatch(method) is None:
        raise Malformed(f"not a method: {method[:20]!r}")
    if version.upper() != VERSION:
        raise Malformed(f"not SIP/2.0: {version[:20]!r}")
    if ":" not in uri:
        raise Malformed(f"not a Request-URI: {uri[:40]!r}")
    return method, uri


def _headers(lines: list[str]) -> Headers:
    headers: list[tuple[str, str]] = []
    for line in lines:
        if _CONTROL.search(line):
            raise Malformed("a control character in the head")
        if line[:1] in (" ", "\t"):
            if not headers:
                raise Malformed("a continuation line before any header")
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}".strip())
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or _TOKEN.fullmatch(name) is None:
            raise Malformed(f"not a header line: {line[:40]!r}")
        if len(headers) >= MAX_HEADERS:
            raise Malformed(f"more than {MAX_HEADERS} headers")
        lower = name.lower()
        headers.append((COMPACT.get(lower, lower), value.strip()))
    return tuple(headers)


def _body(headers: Headers, rest: bytes) -> bytes:
    length = _first(headers, "content-length")
    if length is None:
        return rest
    if not (length.isascii() and length.isdigit()):
        raise Malformed(f"Content-Length is not a number: {length[:20]!r}")
    if int(length) > len(rest):
        raise Malformed(f"Content-Length {int(length)} but {len(rest)} bytes follow")
    return rest[: int(length)]


def _first(headers: Headers, name: str) -> str | None:
    return next((value for key, value in headers if key == name), None)


def _values(headers: Headers, name: str) -> list[str]:
    return [item for key, value in headers if key == name for item in split_list(value)]


def split_list(value: str) -> list[str]:
    """A header value's comma-separated elements (commas inside quotes or ``<>`` kept)."""
    items: list[str] = []
    current: list[str] = []
    quoted = angle = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char in "<>":
            angle = char == "<"
        elif char == "," and not quoted and not angle:
            items.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    items.append("".join(current).strip())
    return [item for item in items if item]


def parse_params(text: str) -> Params:
    """``;name=value;flag;name="quoted; value"`` (the text from the first ``;``).

    Raises:
        Malformed: an unterminated quoted string, or a parameter without a name.
    """
    params: list[tuple[str, str | None]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in " \t":
            i += 1
            continue
        if text[i] != ";":
            raise Malformed(f"expected ';' in parameters: {text[:40]!r}")
        i += 1
        start = i
        while i < n and text[i] not in "=;":
            i += 1
        name = text[start:i].strip()
        if _TOKEN.fullmatch(name) is None:
            raise Malformed(f"a parameter without a name: {text[:40]!r}")
        value: str | None = None
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in " \t":
                i += 1
            start = i
            if i < n and text[i] == '"':
                i = _end_of_quoted(text, i)
            else:
                while i < n and text[i] != ";":
                    i += 1
            value = text[start:i].strip()
        params.append((name, value))
    return tuple(params)


def parse_header(value: str) -> tuple[str, Params]:
    """A header value's first element and its parameters: ``ua-profile;vendor="X"``."""
    first, semi, params = value.partition(";")
    return first.strip(), parse_params(semi + params)


def unquote(value: str | None) -> str | None:
    """A parameter's value without its quotes and escapes (a token as it is)."""
    if value is None or not value.startswith('"'):
        return value
    return re.sub(r"\\(.)", r"\1", value[1:-1])


def parse_via(value: str) -> Via:
    """One Via value (a header's comma-separated elements are parsed one by one)."""
    match = _VIA.fullmatch(value.strip())
    if match is None:
        raise Malformed(f"not a Via: {value[:60]!r}")
    host, port = _hostport(match.group(2))
    return Via(match.group(1).upper(), host, port, parse_params(match.group(3) or ""))


def parse_name_addr(value: str) -> NameAddr:
    """From, To or Contact (one element): ``"Name" <uri;uri-params>;tag=x`` or ``uri;tag=x``
    (without ``<>``, parameters after the URI are the header's, RFC 3261 section 20.10)."""
    text = value.strip()
    i = 0
    if text.startswith('"'):
        i = _end_of_quoted(text, 0)
    lt = text.find("<", i)
    if lt >= 0:
        gt = text.find(">", lt)
        if gt < 0:
            raise Malformed(f"'<' without '>': {value[:60]!r}")
        uri, rest = text[lt + 1 : gt].strip(), text[gt + 1 :]
    else:
        uri, semi, rest = text.partition(";")
        rest = semi + rest
    if ":" not in uri:
        raise Malformed(f"not a URI: {uri[:60]!r}")
    return NameAddr(uri.strip(), parse_params(rest))


def parse_uri(text: str) -> SipUri:
    """A ``sip:`` or ``sips:`` URI's user, host and port."""
    scheme, colon, rest = text.strip().partition(":")
    if not colon or scheme.lower() not in ("sip", "sips"):
        raise Malformed(f"not a SIP URI: {text[:60]!r}")
    at = rest.rfind("@")  # "@" is allowed nowhere after the userinfo
    user = None
    if at >= 0:
        user = rest[:at].partition(":")[0]
        rest = rest[at + 1 :]
    hostport = re.split(r"[;?]", rest, maxsplit=1)[0]
    host, port = _hostport(hostport)
    return SipUri(scheme.lower(), user, host, port)


def parse_cseq(value: str) -> tuple[int, str]:
    """CSeq's sequence number and method."""
    number, _, method = value.strip().partition(" ")
    method = method.strip()
    if not (number.isascii() and number.isdigit() and int(number) < 2**31):
        raise Malformed(f"not a CSeq: {value[:40]!r}")
    if _TOKEN.fullmatch(method) is None:
        raise Malformed(f"not a CSeq: {value[:40]!r}")
    return int(number), method


def _hostport(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise Malformed(f"'[' without ']': {text[:60]!r}")
        host, rest = text[1:close], text[close + 1 :]
    else:
        host, colon, port = text.partition(":")
        rest = colon + port
    if not host or re.fullmatch(r"[A-Za-z0-9.:_-]+", host) is None:
        raise Malformed(f"not a host: {text[:60]!r}")
    if not rest:
        return host, None
    port = rest.removeprefix(":")
    if not (rest.startswith(":") and port.isascii() and port.isdigit() and int(port) < 65536):
        raise Malformed(f"not a port: {text[:60]!r}")
    return host, int(port)


def _end_of_quoted(text: str, i: int) -> int:
    """The index after the quoted string that starts at ``text[i]``."""
    start, i = i, i + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i + 1
        i += 1
    raise Malformed(f"an unterminated quoted string: {text[start : start + 60]!r}")


def _param(params: Params, name: str) -> tuple[bool, str | None]:
    """(whether parameter ``name`` is there, its raw value)."""
    lower = name.lower()
    return next(((True, value) for key, value in params if key.lower() == lower), (False, None))


# --- rendering ------------------------------------------------------------------------------------


def bracket(host: str) -> str:
    """A host as a URI or Via writes it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def render_params(params: Params) -> str:
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params)


def render_request(
    method: str, uri: str, headers: Sequence[tuple[str, str]], body: bytes = b""
) -> bytes:
    """A request's bytes; Content-Length is added after ``headers`` (names as written)."""
    return _render(f"{method} {uri} {VERSION}", headers, body)


def render_response(
    status: int, reason: str, headers: Sequence[tuple[str, str]], body: bytes = b""
) -> bytes:
    """A response's bytes; Content-Length is added after ``headers`` (names as written)."""
    return _render(f"{VERSION} {status} {reason}", headers, body)


def _render(start: str, headers: Sequence[tuple[str, str]], body: bytes) -> bytes:
    lines = [start, *(f"{name}: {value}" for name, value in headers)]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
