"""A minimal HTTP/1.1 client over asyncio streams, for simulating thousands of CPEs.

A fleet of simulated CPEs must cost the machine much less than the ACS it loads, so this
client does only what CPEs do: POST (and GET) with Content-Length bodies on a keep-alive
connection, Digest or Basic authentication with the nonce kept between sessions (as real
CPEs do; it saves the 401 round trip), and a cookie kept for the session. Responses are
read with Content-Length or chunked encoding.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from acs.cwmp import digest


class HttpError(Exception):
    """The connection failed or the peer broke the protocol."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes
    challenges: list[str] = field(default_factory=list)  # every WWW-Authenticate value


class Authenticator:
    """HTTP authentication for one CPE: Basic, or Digest remembering the last challenge (so
    later requests answer it at once, with a rising nonce count, instead of meeting a 401)."""

    def __init__(self, username: str, password: str, scheme: str = "digest"):
        self.username = username
        self.password = password
        self.scheme = scheme
        self.challenge: dict[str, str] | None = None
        self.nc = 0

    def header(self, method: str, uri: str) -> str | None:
        if self.scheme == "basic":
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return f"Basic {token}"
        if self.scheme != "digest" or self.challenge is None:
            return None
        self.nc += 1
        return digest.client_authorization(
            self.challenge, self.username, self.password, method=method, uri=uri, nc=self.nc
        )

    def challenged(self, challenges: list[str]) -> bool:
        """Take the server's challenge; False if there is nothing we can answer."""
        if self.scheme != "digest":
            return False
        for scheme, params in digest.parse_challenges(challenges):
            algorithm = params.get("algorithm", "MD5").upper()
            if scheme == "Digest" and algorithm in digest.ALGORITHMS and "nonce" in params:
                self.challenge = params
                self.nc = 0
                return True
        return False


class Connection:
    """One keep-alive connection to one server (reconnects once if the server closed it)."""

    def __init__(self, url: str, *, timeout: float = 30.0):
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self.authority = f"{self.host}:{self.port}"
        self.timeout = timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.cookie: str | None = None

    async def _open(self) -> None:
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout
            )
        except (OSError, TimeoutError) as exc:
            raise HttpError(f"cannot connect: {exc or type(exc).__name__}") from None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(
        self,
        method: str,
        body: bytes = b"",
        *,
        path: str | None = None,
        headers: dict[str, str] | None = None,
        auth: Authenticator | None = None,
    ) -> Response:
        """Send one request (answering one auth challenge); returns the final response."""
        target = path or self.path
        response = await self._exchange(method, target, body, headers, auth)
        if response.status == 401 and auth is not None and auth.challenged(response.challenges):
            response = await self._exchange(method, target, body, headers, auth)
        return response

    async def _exchange(
        self,
        method: str,
        target: str,
        body: bytes,
        headers: dict[str, str] | None,
        auth: Authenticator | None,
    ) -> Response:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.authority}"]
        if method == "POST":
            lines.append('Content-Type: text/xml; charset="utf-8"')
            lines.append(f"Content-Length: {len(body)}")
        if self.cookie:
            lines.append(f"Cookie: {self.cookie}")
        if auth is not None:
            value = auth.header(method, target)
            if value:
                lines.append(f"Authorization: {value}")
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        for attempt in (1, 2):
            if self.writer is None:
                await self._open()
            assert self.reader is not None and self.writer is not None
            try:
                self.writer.write(data)
                await self.writer.drain()
                response = await asyncio.wait_for(self._read(), self.timeout)
            except (OSError, ConnectionError, asyncio.IncompleteReadError, HttpError) as exc:
                await self.close()
                if attempt == 2:
                    raise HttpError(f"connection lost: {exc or type(exc).__name__}") from None
                continue
            except TimeoutError:
                await self.close()
                raise HttpError("timeout") from None
            if response.headers.get("connection", "").lower() == "close":
                await self.close()
            for value in response.headers.get("set-cookie", "").split("\n"):
                if value:
                    self.cookie = value.split(";", 1)[0]
            return response
        raise HttpError("unreachable")  # pragma: no cover

    async def _read(self) -> Response:
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            raise HttpError(f"bad status line {lines[0]!r}") from None
        headers: dict[str, str] = {}
        challenges: list[str] = []
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "www-authenticate":
                challenges.append(value)
            if name == "set-cookie":
                headers[name] = headers[name] + "\n" + value if name in headers else value
            elif name in headers:
                headers[name] += ", " + value
            else:
                headers[name] = value
        if status in (204, 304) or 100 <= status < 200:
            body = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked()
        else:
            length = int(headers.get("content-length", "0") or 0)
            body = await self.reader.readexactly(length) if length else b""
        return Response(status, headers, body, challenges)

    async def _read_chunked(self) -> bytes:
        assert self.reader is not None
        chunks: list[bytes] = []
        while True:
            size_line = await self.reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(chunks)
            chunks.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)
