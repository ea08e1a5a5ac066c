"""A scripted ACS on 127.0.0.1 for the simulator's tests: just enough CWMP over HTTP to drive
agents and fleets (InformResponse, the requests a test queued for a device, then 204), no
authentication, no database. It records every Inform and every answer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from acs.cwmp import messages as m
from acs.cwmp import soap

NAMESPACE = soap.CWMP_NAMESPACES["1.2"]


@dataclass(frozen=True)
class SeenInform:
    serial: str
    events: tuple[str, ...]
    at: float  # time.monotonic()


class FakeAcs:
    def __init__(self) -> None:
        self.informs: list[SeenInform] = []
        self.answers: list[tuple[str, Any]] = []  # (serial, what the CPE answered)
        self.requests: dict[str, list[Any]] = {}  # serial -> ACS requests for its sessions
        self.url = ""
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> FakeAcs:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/acs"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def queue(self, serial: str, *requests: Any) -> None:
        """Send these in the device's next session(s), after its InformResponse."""
        self.requests.setdefault(serial, []).extend(requests)

    def informs_of(self, serial: str) -> list[SeenInform]:
        return [i for i in self.informs if i.serial == serial]

    async def until(self, done: Callable[[], bool], seconds: float = 10.0) -> None:
        """Wait (at most ``seconds``) until ``done()`` holds after an exchange."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(done), seconds)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        serial = ""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                length = 0
                for line in head.split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                message = soap.parse_envelope(body).message if body.strip() else None
                reply: Any = None
                if isinstance(message, m.Inform):
                    serial = message.device_id.serial_number
                    events = tuple(e.event_code for e in message.event)
                    self.informs.append(SeenInform(serial, events, time.monotonic()))
                    reply = m.InformResponse(1)
                elif isinstance(message, m.TransferComplete):
                    reply = m.TransferCompleteResponse()
                else:
                    if message is not None:
                        self.answers.append((serial, message))
                    pending = self.requests.get(serial)
                    if pending:
                        reply = pending.pop(0)
                if reply is None:
                    writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                else:
                    data = soap.render_envelope(reply, namespace=NAMESPACE, cwmp_id="fake")
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n"
                        + f"Content-Length: {len(data)}\r\n\r\n".encode()
                        + data
                    )
                await writer.drain()
                async with self._changed:
                    self._changed.notify_all()
        writer.close()


def set_values(*values: tuple[str, Any, str]) -> m.SetParameterValues:
    return m.SetParameterValues(
        tuple(m.ParameterValueStruct(n, v, t) for n, v, t in values), parameter_key="test"
    )
