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
from typing import Any

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


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.queue.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP: the timeout deals with it


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
    transport, inbox = await loop.create_datagram_endpoint(
        _Inbox, local_addr=(local_host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), 0)
    )
    got = Fetched()
    started = time.perf_counter()
    try:
        await _run(
            transport,
            inbox,
            (host, port),
            filename,
            got,
            options=options or {},
            mode=mode,
            timeout=timeout,
            retries=retries,
            skip_ack=skip_ack,
            duplicate_acks=duplicate_acks,
            request=request,
        )
    finally:
        transport.close()
        got.seconds = time.perf_counter() - started
    return got


async def _run(
    transport: asyncio.DatagramTransport,
    inbox: _Inbox,
    server: Address,
    filename: str,
    got: Fetched,
    *,
    options: dict[str, str],
    mode: str,
    timeout: float,
    retries: int,
    skip_ack: int | None,
    duplicate_acks: bool,
    request: bytes | None,
) -> None:
    rrq = request or packets.encode(
        packets.Request(packets.Opcode.RRQ, filename, mode, dict(options))
    )
    blksize = 512
    window = 1
    last_sent = rrq  # what a timeout sends again
    peer: Address | None = None
    received = 0  # blocks received in order, counted in full
    in_window = 0
    chunks: list[bytes] = []
    have_last = False  # the last block came, its ACK was "lost"
    transport.sendto(rrq, server)
    misses = 0

    def send(datagram: bytes) -> None:
        assert peer is not None
        transport.sendto(datagram, peer)
        if duplicate_acks:
            transport.sendto(datagram, peer)

    while True:
        try:
            datagram, sender = await asyncio.wait_for(inbox.queue.get(), timeout)
        except TimeoutError:
            misses += 1
            got.timeouts += 1
            if misses > retries:
                return
            transport.sendto(last_sent, peer or server)
            continue
        if peer is None:
            peer = got.server = sender
        elif sender[:2] != peer[:2]:
            continue
        misses = 0
        packet = packets.decode(datagram)
        if isinstance(packet, packets.Error):
            got.error = packet
            return
        if isinstance(packet, packets.OptionAck):
            got.oack = packet.options
            blksize = int(packet.options.get("blksize", 512))
            window = int(packet.options.get("windowsize", 1))
            last_sent = packets.encode(packets.Ack(0))
            send(last_sent)
            continue
        if not isinstance(packet, packets.Data):
            return
        got.blocks.append(packet.block)
        if packet.block != (received + 1) & packets.MAX_BLOCK:
            # out of order (a block of the window was lost, or a retransmission): ack the
            # last one in order, the server starts its window again after it (RFC 7440)
            last_sent = packets.encode(packets.Ack(received))
            send(last_sent)
            in_window = 0
            if have_last:
                break
            continue
        received += 1
        in_window += 1
        chunks.append(packet.payload)
        last = len(packet.payload) < blksize
        if in_window < window and not last:
            continue
        in_window = 0
        last_sent = packets.encode(packets.Ack(received))
        if received == skip_ack:
            skip_ack = None  # lost on the way: the server's timer resends the block
            have_last = last
            continue
        send(last_sent)
        if last:
            break
    got.content = b"".join(chunks)
    got.complete = True
