"""Reading a request body with a size cap, undoing gzip/deflate with the same cap."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any


class BodyTooLarge(Exception):
    pass


class BadEncoding(Exception):
    pass


class ClientGone(Exception):
    """The connection closed before the body was complete (the client left, or the body
    deadline of acs.web.guard ended it): there is no request to answer."""


async def asgi_chunks(
    receive: Callable[[], Awaitable[dict[str, Any]]],
) -> AsyncIterator[bytes]:
    """The body chunks of an ASGI request (chunked transfer decoding is the server's);
    ``ClientGone`` if the connection closes first (a part of a body is not a body)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone("the connection closed before the request body was complete")
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def read_body(
    chunks: AsyncIterator[bytes],
    *,
    content_length: str | None,
    content_encoding: str | None,
    max_bytes: int,
) -> bytes:
    """The whole body, refusing more than ``max_bytes`` before or after decompression;
    a gzip bomb stops at the cap, not at the end of memory."""
    declared = (content_length or "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(f"Content-Length {declared} exceeds {max_bytes} bytes")
    parts = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            # Read (and drop) a bounded amount more, so that a client still sending gets
            # our 413 instead of a connection reset (a "lingering close", as nginx does).
            if size > 2 * max_bytes:
                break
            continue
        parts.append(chunk)
    if size > max_bytes:
        raise BodyTooLarge(f"body exceeds {max_bytes} bytes")
    body = b"".join(parts)
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _inflate(body, encoding, max_bytes)
    raise BadEncoding(f"unsupported Content-Encoding {encoding!r}")


def _inflate(body: bytes, encoding: str, max_bytes: int) -> bytes:
    # gzip: wbits 16+15. "deflate" should be zlib-wrapped (RFC 9110) but some clients
    # send raw deflate; 32+15 detects zlib or gzip headers, -15 reads raw.
    attempts = [16 + 15] if encoding != "deflate" else [32 + 15, -15]
    for wbits in attempts:
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(body, max_bytes + 1)
        except zlib.error:
            continue
        if len(out) > max_bytes or inflater.unconsumed_tail:
            raise BodyTooLarge(f"decompressed body exceeds {max_bytes} bytes")
        return out
    raise BadEncoding(f"body is not valid {encoding} data")
