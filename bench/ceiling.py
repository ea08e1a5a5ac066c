"""The ceiling: a bare ASGI app answering the two exchanges of an empty CWMP session with
canned bytes and no storage, on the same uvicorn set-up and worker model as `acs serve`.

    python -m bench.ceiling --port 17547 --workers 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import signal
import socket
from multiprocessing.connection import Connection
from typing import Any

from acs.config import Settings
from acs.cwmp import messages as m
from acs.cwmp import soap
from acs.server import _Server, bind, listener_config, run_loop, run_processes
from acs.web.guard import ConnectionGuard, ConnectionLimits

INFORM_RESPONSE = soap.render_envelope(
    m.InformResponse(1), namespace=soap.CWMP_NAMESPACES["1.2"], cwmp_id="1"
)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if body.strip():
        cookie = f"acs_session={secrets.token_urlsafe(18)}; Path=/; HttpOnly".encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b'text/xml; charset="utf-8"'),
                    (b"content-length", str(len(INFORM_RESPONSE)).encode()),
                    (b"set-cookie", cookie),
                ],
            }
        )
        await send({"type": "http.response.body", "body": INFORM_RESPONSE})
    else:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _worker(sock: socket.socket) -> None:
    limits = ConnectionLimits.of(Settings(_env_file=None))  # acs serve's defaults
    server = _Server(listener_config(app, ConnectionGuard(limits, "ceiling")))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    await server.serve(sockets=[sock])


def _entry(sock: socket.socket, ready: Connection) -> None:
    ready.close()  # the supervisor's readiness pipe: the ceiling announces nothing
    run_loop(_worker(sock))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=17547)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    sock = bind(args.host, args.port)
    if args.workers == 1:
        with contextlib.suppress(KeyboardInterrupt):
            run_loop(_worker(sock))
        return
    run_processes(_entry, (sock,), args.workers)


if __name__ == "__main__":
    main()
