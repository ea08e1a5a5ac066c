"""One log line per HTTP request, as ASGI middleware: what was asked, the status, the bytes
sent, how long it took. What the line says is the caller's (``describe``): the management
API names the operator, the file server the file and the phone."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from acs import logs

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# (scope, status, body bytes sent, milliseconds) -> (level, message, fields), or None: no line
Describe = Callable[[Scope, int, int, float], tuple[int, str, dict[str, Any]] | None]


class AccessLog:
    """Logs the line ``describe`` makes of each HTTP request once its response is sent (or
    failed: status 500). ``request_ids``: this is where requests enter, so each gets its id."""

    def __init__(
        self, app: Any, logger: logging.Logger, describe: Describe, *, request_ids: bool = False
    ):
        self.app = app
        self.log = logger
        self.describe = describe
        self.request_ids = request_ids

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = logs.request_id.set(logs.new_request_id()) if self.request_ids else None
        scope.setdefault("state", {})  # what routes note for the line (request.state)
        started = time.perf_counter()
        status = sent = 0

        async def observed(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            ms = round((time.perf_counter() - started) * 1000, 1)
            line = self.describe(scope, status or 500, sent, ms)
            if line is not None and self.log.isEnabledFor(line[0]):
                level, message, values = line
                self.log.log(level, message, extra=logs.fields(**values))
            if token is not None:
                logs.request_id.reset(token)


def client(scope: Scope) -> str | None:
    peer = scope.get("client")
    return str(peer[0]) if peer else None


def path_and_query(scope: Scope) -> str:
    query = scope.get("query_string", b"")
    path = str(scope.get("path", ""))
    return f"{path}?{query.decode('latin-1')}" if query else path
