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
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI

from acs import logs
from acs.cwmp.http import HttpReply, HttpRequest, session_cookies
from acs.services import metrics
from acs.services.runtime import Runtime
from acs.web.body import BadEncoding, BodyTooLarge, asgi_chunks, read_body
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
            metrics.CWMP_RESPONSES.labels(str(reply.status)).inc()
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
            if reply.status != 204:
                headers.append((b"content-length", str(len(reply.body)).encode()))
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            await send({"type": "http.response.body", "body": reply.body})
        finally:
            logs.request_id.reset(token)

    async def _serve(self, scope: Scope, receive: Receive) -> HttpReply:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.inflight >= self.settings.cwmp_max_inflight and not session_cookies(
            headers.get("cookie")
        ):
            # More requests than memory should hold: refuse what does not continue a session
            # (new sessions are limited further on, by CwmpService's admission), telling the
            # CPE when to retry instead of queueing it.
            metrics.SESSIONS_REFUSED.labels("inflight").inc()
            return HttpReply.busy("busy, retry later", self.service.admission.retry_after())
        self.inflight += 1
        try:
            try:
                body = await read_body(
                    asgi_chunks(receive),
                    content_length=headers.get("content-length"),
                    content_encoding=headers.get("content-encoding"),
                    max_bytes=self.settings.cwmp_max_body_bytes,
                )
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
            self.inflight -= 1


def create_cwmp_app(runtime: Runtime) -> CwmpEndpoint:
    """The CPE-facing app. CPEs POST to whatever URL they were given; all paths work.
    POSTs are answered by ``CwmpEndpoint`` before any FastAPI machinery (its middleware
    stack cost more than a tenth of a CWMP request); the rest (file server) is FastAPI."""
    app = FastAPI(title="acs CWMP endpoint", openapi_url=None, docs_url=None, redoc_url=None)
    add_file_routes(app, runtime)
    return CwmpEndpoint(app, runtime)
