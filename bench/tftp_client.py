"""A scripted TFTP client on asyncio: fetches one file, and can misbehave on purpose.

The end-to-end tests use it where the command-line clients cannot be steered (an ACK left
out, every ACK sent twice, datagrams from a stranger's port, a raw request), and the bench
runs many of them at once. It speaks RFC 1350 with the options of RFC 2347-2349 and 7440,
as a phone does: block numbers wrap to 0 after 65535.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field
from typing import Any, cast

from acs.tftp import packets

Address = tuple[Any, ...]


@dataclass
class Fetched:
    """What one fetch got: the file (if it completed), the OACK's options, every DATA block
    number received in order (duplicates included), the server's ERROR, retransmissions
    of our own, and the server's transfer port."""

    content: bytes = b""
    complete: bool = False
    oack: dict[str, str] | None = None
    blocks: list[int] = field(default_factory=list)
    error: packets.Error | None = None
    timeouts: int = 0
    server: Address | None = None
    seconds: float = 0.0


async def fetch(
    host: str,
    port: int,
    filename: str,
    *,
    options: dict[str, str] | None = None,
    mode: str = "octet",
    timeout: float = 2.0,
    retries: int = 5,
    skip_ack: int | None = None,
    duplicate_acks: bool = False,
    local_host: str | None = None,
    request: bytes | None = None,
) -> Fetched:
    """Fetch ``filename`` from ``host:port``.

    Args:
        options: sent with the RRQ (``blksize``, ``tsize``, ``timeout``, ``windowsize``).
        timeout, retries: how long to wait for the server, and how often to send again.
        skip_ack: the first ACK of this block (by its full count, 1 being the first) is not
            sent, as if lost: the server has to send the block again.
        duplicate_acks: send every ACK twice (the Sorcerer's Apprentice test).
        local_host: the address to send from (another 127.x.y.z, to play another client).
        request: raw bytes to send instead of the RRQ.
    """
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    rrq = request or packets.encode(
        packets.Request(packets.Opcode.RRQ, filename, mode, dict(options or {}))
    )
    started = time.perf_counter()
    transport, run = await loop.create_datagram_endpoint(
        lambda: _Fetch(loop, (host, port), rrq, timeout, retries, skip_ack, duplicate_acks),
        local_addr=(local_host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), 0),
    )
    try:
        await run.done
    finally:
        run.stop()
        transport.close()
        run.got.seconds = time.perf_counter() - started
    return run.got


class _Fetch(asyncio.DatagramProtocol):
    """One fetch driven by its datagrams and one timer (no task per datagram: the bench
    runs a thousand at once on the machine it measures)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        server: Address,
        rrq: bytes,
        timeout: float,
        retries: int,
        skip_ack: int | None,
        duplicate_acks: bool,
    ):
        self.loop = loop
        self.server = server
        self.timeout = timeout
        self.retries = retries
        self.skip_ack = skip_ack
        self.duplicate_acks = duplicate_acks
        self.got = Fetched()
        self.done: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.DatagramTransport | None = None
        self.blksize = 512
        self.window = 1
        self.last_sent = rrq  # what a timeout sends again
        self.peer: Address | None = None
        self.received = 0  # blocks received in order, counted in full
        self.in_window = 0
        self.chunks: list[bytes] = []
        self.have_last = False  # the last block came, its ACK was "lost"
        self.misses = 0
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.DatagramTransport, transport)
        transport.sendto(self.last_sent, self.server)
        self.deadline = self.loop.time() + self.timeout
        self.timer = self.loop.call_at(self.deadline, self._expired)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP: the timeout deals with it

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _finish(self, complete: bool) -> None:
        self.stop()
        if complete:
            self.got.content = b"".join(self.chunks)
            self.got.complete = True
        if not self.done.done():
            self.done.set_result(None)

    def _expired(self) -> None:
        self.timer = None
        if self.done.done():
            return
        if self.loop.time() < self.deadline:  # a datagram came meanwhile: wait from it
            self.timer = self.loop.call_at(self.deadline, self._expired)
            return
        self.misses += 1
        self.got.timeouts += 1
        if self.misses > self.retries:
            self._finish(False)
            return
        assert self.transport is not None
        self.transport.sendto(self.last_sent, self.peer or self.server)
        self.deadline = self.loop.time() + self.timeout
        self.timer = self.loop.call_at(self.deadline, self._expired)

    def _send(self, datagram: bytes) -> None:
        assert self.transport is not None and self.peer is not None
        self.last_sent = datagram
        self.transport.sendto(datagram, self.peer)
        if self.duplicate_acks:
            self.transport.sendto(datagram, self.peer)

    def datagram_received(self, datagram: bytes, sender: Address) -> None:
        if self.done.done():
            return
        self.deadline = self.loop.time() + self.timeout
        if self.peer is None:
            self.peer = self.got.server = sender
        elif sender[:2] != self.peer[:2]:
            return
        self.misses = 0
        if datagram[:2] == packets.DATA_OPCODE and len(datagram) >= 4:  # the common case
            self._data(int.from_bytes(datagram[2:4], "big"), datagram[4:])
            return
        try:
            packet = packets.decode(datagram)
        except packets.MalformedPacket as exc:
            self.stop()
            self.done.set_exception(exc)
            return
        if isinstance(packet, packets.Error):
            self.got.error = packet
            self._finish(False)
        elif isinstance(packet, packets.OptionAck):
            self.got.oack = packet.options
            self.blksize = int(packet.options.get("blksize", 512))
            self.window = int(packet.options.get("windowsize", 1))
            self._send(packets.ack(0))
        else:
            self._finish(False)  # no packet a server sends a reader

    def _data(self, block: int, payload: bytes) -> None:
        self.got.blocks.append(block)
        if block != (self.received + 1) & packets.MAX_BLOCK:
            # out of order (a block of the window was lost, or a retransmission): ack the
            # last one in order, the server starts its window again after it (RFC 7440)
            self._send(packets.ack(self.received))
            self.in_window = 0
            if self.have_last:
                self._finish(True)
            return
        self.received += 1
        self.in_window += 1
        self.chunks.append(payload)
        last = len(payload) < self.blksize
        if self.in_window < self.window and not last:
            return
        self.in_window = 0
        if self.received == self.skip_ack:
            self.skip_ack = None  # lost on the way: the server's timer resends the block
            self.last_sent = packets.ack(self.received)
            self.have_last = last
            return
        self._send(packets.ack(self.received))
        if last:
            self._finish(True)
