"""The HTTP binding of CWMP (TR-069 3.4), with no I/O: requests, replies, cookies, and how
a request finds its session.

A CWMP session is a run of HTTP POSTs. TR-069 3.4.1 says a CPE SHOULD return the ACS's
cookies; CPEs differ, so a request finds its session by, in this order:

1. our session cookie (seen mangled in the field: attributes echoed back, several cookies
   joined by commas);
2. else the TCP connection it came on (peer address and port: CPEs that drop cookies but
   keep the connection alive);
3. else, only for a request that carries no cookie of ours, the peer address alone (CPEs
   that drop both). Several cookie-less CPEs behind one address (a NAT) are told apart by
   the cwmp:ID of their answers, which carries the prefix of the session that asked.

A request with our cookie whose session is gone is never matched by address: behind a NAT
that handed it another device's session (seen in a boot storm: 401 after 401).

``lookups`` says which queries to make, in order; the caller stops at the first that finds
any session, and ``pick`` chooses among what it found.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

COOKIE_NAME: Final = "acs_session"
MAX_CPE_SESSION_TIMEOUT: Final = 300  # honour a CPE's SessionTimeout header up to this


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A POST from a CPE, as the web layer hands it over: no framework types below it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    peer_host: str
    peer_port: int
    tls: bool = False

    @property
    def cookies(self) -> list[str]:
        return session_cookies(self.headers.get("cookie"))


@dataclass(slots=True)
class HttpReply:
    """The answer to one POST."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def text(cls, status: int, message: str, **headers: str) -> HttpReply:
        reply = cls(status, message.encode() + b"\n", [("content-type", "text/plain")])
        reply.headers.extend((k.replace("_", "-"), v) for k, v in headers.items())
        return reply

    @classmethod
    def xml(cls, body: bytes, session_id: str | None = None, *, tls: bool = False) -> HttpReply:
        """A SOAP envelope, with the session cookie (``Secure`` over TLS)."""
        headers = [("content-type", 'text/xml; charset="utf-8"')]
        if session_id is not None:
            cookie = f"{COOKIE_NAME}={session_id}; Path=/; HttpOnly"
            headers.append(("set-cookie", cookie + ("; Secure" if tls else "")))
        return cls(200, body, headers)

    @classmethod
    def unauthorized(cls, challenges: Sequence[str]) -> HttpReply:
        return cls(401, b"", [("www-authenticate", value) for value in challenges])

    @classmethod
    def busy(cls, message: str, retry_after: int) -> HttpReply:
        """503 with Retry-After: overload, a device already in a session, storage away."""
        return cls.text(503, message, retry_after=str(max(1, retry_after)))


def session_cookies(header: str | None) -> list[str]:
    """Our session ids in a Cookie header, however the CPE mangled it.

    Seen in the field: ``acs_session=x``; attributes echoed back
    (``acs_session=x; Path=/; HttpOnly``); several cookies joined by commas.
    """
    if not header:
        return []
    out = []
    for part in re.split(r"[;,]", header):
        name, sep, value = part.strip().partition("=")
        value = value.strip().strip('"')
        if sep and name.strip() == COOKIE_NAME and value:
            out.append(value)
    return out


def id_prefix(session_id: str) -> str:
    """The prefix of the cwmp:IDs of a session's requests, which tells cookie-less CPEs
    behind one address apart."""
    return session_id[:8] + "."


def session_timeout(default: int, cpe_timeout: int | None) -> int:
    """Seconds a session waits for the CPE's next request: ours, or the CPE's SessionTimeout
    header (CWMP 1.3+) if longer, up to ``MAX_CPE_SESSION_TIMEOUT``."""
    if cpe_timeout:
        return max(default, min(cpe_timeout, MAX_CPE_SESSION_TIMEOUT))
    return default


# --- finding a request's session -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ByCookie:
    session_id: str


@dataclass(frozen=True, slots=True)
class ByConnection:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class ByAddress:
    host: str


Lookup = ByCookie | ByConnection | ByAddress


def lookups(request: HttpRequest) -> list[Lookup]:
    """The queries that find a request's session, in order (see the module docstring)."""
    cookies = request.cookies
    plan: list[Lookup] = [ByCookie(c) for c in dict.fromkeys(cookies)]  # usually one
    if not request.peer_host:
        return plan
    plan.append(ByConnection(request.peer_host, request.peer_port))
    if not cookies:
        plan.append(ByAddress(request.peer_host))
    return plan


def pick(rows: Sequence[Any], request: HttpRequest, cwmp_id: str | None) -> Any:
    """The session a request belongs to among those one lookup found (rows with ``id``,
    ``peer_host`` and ``peer_port``): cookie, connection, then address."""
    cookies = request.cookies
    for row in rows:
        if row.id in cookies:
            return row
    for row in rows:
        if row.peer_host == request.peer_host and row.peer_port == request.peer_port:
            return row
    by_address = [row for row in rows if row.peer_host == request.peer_host]
    if len(by_address) > 1 and cwmp_id:
        # Several cookie-less CPEs behind one address: our request ids carry the session.
        matching = [r for r in by_address if cwmp_id.startswith(id_prefix(r.id))]
        if matching:
            return matching[0]
    return by_address[0] if by_address else None
