"""The CPE-facing listener: CWMP over HTTP(S) on any path (POST), files and phone
configurations (GET, see ``acs.web.fileserver``).

CWMP POSTs are the hot path of the whole ACS (every periodic Inform of every device), so
they are served by a lean ASGI layer in front of the FastAPI app: it reads the body, hands
``acs.services.cwmp`` an ``HttpRequest`` and writes its ``HttpReply``, without routing,
request objects or dependency solving (measured: about a quarter of the per-request CPU).
It only moves bytes: what a request means, and what to answer when storage fails, is the
service's. Everything else goes on to FastAPI.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI

from acs import logs
from acs.cwmp.http import HttpReply, HttpRequest, session_cookies
from acs.services import metrics
from acs.services.runtime import Runtime
from acs.web.body import BadEncoding, BodyTooLarge, ClientGone, asgi_chunks, read_body
from acs.web.fileserver import add_file_routes

log = logging.getLogger("acs.cwmp")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class CwmpEndpoint:
    """ASGI middleware answering every POST as CWMP; other requests go to ``app``."""

    def __init__(self, app: Any, runtime: Runtime):
        self.app = app
        self.runtime = runtime
        self.settings = runtime.settings
        self.service = runtime.cwmp
        self.inflight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = logs.request_id.set(logs.new_request_id())  # requests of CPEs enter here
        try:
            if scope["method"] != "POST":
                await self.app(scope, receive, send)
                return
            reply = await self._serve(scope, receive)
            if reply is None:  # the client left before its request was complete
                return
            metrics.CWMP_RESPONSES.labels(str(reply.status)).inc()
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
            if reply.status != 204:
                headers.append((b"content-length", str(len(reply.body)).encode()))
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            await send({"type": "http.response.body", "body": reply.body})
        finally:
            logs.request_id.reset(token)

    async def _serve(self, scope: Scope, receive: Receive) -> HttpReply | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        slot = _Slot(self, spared=bool(session_cookies(headers.get("cookie"))))
        try:
            try:
                body = await read_body(
                    slot.metered(asgi_chunks(receive)),
                    content_length=headers.get("content-length"),
                    content_encoding=headers.get("content-encoding"),
                    max_bytes=self.settings.cwmp_max_body_bytes,
                )
                slot.take()
            except _Busy:
                # More requests than memory should hold: refuse what does not continue a
                # session (new sessions are limited further on, by CwmpService's
                # admission), telling the CPE when to retry instead of queueing it.
                metrics.SESSIONS_REFUSED.labels("inflight").inc()
                reply = HttpReply.busy("busy, retry later", self.service.admission.retry_after())
                if not slot.body_read:  # not reading the rest of it
                    reply.headers.append(("connection", "close"))
                return reply
            except ClientGone:
                return None
            except BodyTooLarge as exc:
                return HttpReply.text(413, str(exc), connection="close")
            except BadEncoding as exc:
                return HttpReply.text(400, str(exc))
            client = scope.get("client") or ("", 0)
            return await self.service.handle(
                HttpRequest(
                    method="POST",
                    path=scope.get("path") or "/",
                    headers=headers,
                    body=body,
                    peer_host=client[0],
                    peer_port=client[1],
                    tls=scope.get("scheme") == "https",
                )
            )
        finally:
            slot.release()


# A request takes its slot of the in-flight bound once its body is read, or once more than
# this much of it arrived. A body trickling in (a byte every few seconds) holds no slot: what
# it holds is what it sent, and the body deadline (acs.web.guard) ends it. Before, 2,100 such
# clients held every slot and every Inform got 503 for as long as they stayed.
SLOT_BYTES = 64 * 1024


class _Busy(Exception):
    pass


class _Slot:
    """A request's slot of ``CwmpEndpoint.inflight``: taken once (``take``), ``_Busy`` if
    the bound is reached and the request does not continue a session (``spared``)."""

    __slots__ = ("body_read", "endpoint", "held", "spared")

    def __init__(self, endpoint: CwmpEndpoint, *, spared: bool):
        self.endpoint = endpoint
        self.spared = spared
        self.held = False
        self.body_read = False

    def take(self) -> None:
        if self.held:
            return
        endpoint = self.endpoint
        if endpoint.inflight >= endpoint.settings.cwmp_max_inflight and not self.spared:
            raise _Busy
        endpoint.inflight += 1
        self.held = True

    async def metered(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > SLOT_BYTES:
                self.take()
            yield chunk
        self.body_read = True

    def release(self) -> None:
        if self.held:
            self.endpoint.inflight -= 1
            self.held = False


def create_cwmp_app(runtime: Runtime) -> CwmpEndpoint:
    """The CPE-facing app. CPEs POST to whatever URL they were given; all paths work.
    POSTs are answered by ``CwmpEndpoint`` before any FastAPI machinery (its middleware
    stack cost more than a tenth of a CWMP request); the rest (file server) is FastAPI."""
    app = FastAPI(title="acs CWMP endpoint", openapi_url=None, docs_url=None, redoc_url=None)
    add_file_routes(app, runtime)
    return CwmpEndpoint(app, runtime)
