"""TR-111's STUN server inside each worker: Binding Requests in, answers out, each device's
NAT binding recorded (``nat_traversal``), where a UDP connection request then reaches it.

What to answer is ``acs.cwmp.stun.answer``'s (sans-I/O); this module looks the request's
USERNAME up (the STUNUsername bootstrap provisioning gave the device) and writes what the
answer says to record. Devices send a Binding Request every ``ACS_STUN_KEEPALIVE`` seconds,
so the common case must cost no statement: credentials and the binding last recorded are
cached per worker (a bounded LRU, read again after ``CACHE_TTL`` or when a request disagrees
with it), a changed binding is written at once, and the last sighting of an unchanged one
is written at most once a ``SEEN_EVERY`` per device, in batches every ``FLUSH_EVERY``. A
binding counts as fresh for ``fresh_for(keepalive)``: two missed keep-alives plus those
delays.

Every worker reads the one socket the supervisor bound (the kernel hands each datagram to
one of them); UDP connection requests leave from that same socket (``send``), since NATs
that filter by address and port only let in what comes from where the binding was made.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import select

from acs import logs
from acs.cwmp import stun
from acs.db import hot, tables
from acs.db.engine import Database
from acs.db.errors import UNAVAILABLE
from acs.db.types import UTCDateTime
from acs.services import metrics
from acs.services.secretbox import SecretBox

log = logging.getLogger("acs.stun")

SEEN_EVERY: Final = 60.0  # seconds: an unchanged binding's sighting is written this often
FLUSH_EVERY: Final = 5.0  # seconds between batched writes of sightings
CACHE_SIZE: Final = 100_000  # devices whose credentials a worker keeps
CACHE_TTL: Final = 300.0  # seconds before a cached device is read again
MAX_IN_FLIGHT: Final = 1000  # datagrams being answered at once; more are dropped (UDP)


def fresh_for(keepalive: int) -> timedelta:
    """How long after its last recorded sighting a binding is trusted: two keep-alive
    periods missed, plus the delays before a sighting is written."""
    return timedelta(seconds=2 * keepalive + SEEN_EVERY + FLUSH_EVERY)


def plain_host(host: str) -> str:
    """``::ffff:192.0.2.1`` (a dual-stack socket's IPv4 peer) as ``192.0.2.1``."""
    with contextlib.suppress(ValueError):
        ip = ipaddress.ip_address(host)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
    return host


@dataclass
class _Device:
    device_id: str
    password: str
    binding: stun.Address | None
    seen_written: float | None  # monotonic time the sighting was last written (or queued)
    loaded: float


_CHANGED = hot.Statement(
    "UPDATE nat_traversal SET stun_host = :host, stun_port = :port, stun_seen = :now, "
    "stun_changed = :now WHERE device_id = :device_id AND stun_username = :username",
    binds={"now": UTCDateTime()},
)
_SEEN = hot.Statement(
    "UPDATE nat_traversal SET stun_seen = :now WHERE device_id = :device_id "
    "AND stun_host = :host AND stun_port = :port",
    binds={"now": UTCDateTime()},
)


class _Gate:
    """True at most once per ``seconds`` (a warning that would repeat for every datagram)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.last = float("-inf")

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.seconds:
            return False
        self.last = now
        return True


class StunServer:
    """The STUN server of one worker (see the module docstring)."""

    def __init__(self, db: Database, box: SecretBox, *, clock: Any = time.monotonic):
        self.db = db
        self.box = box
        self.clock = clock
        self.transport: asyncio.DatagramTransport | None = None
        self.local: stun.Address | None = None  # the bound address, if not a wildcard
        self.address = ""  # where it listens, for logs and /healthz
        self._family = 0
        self._cache: OrderedDict[str, _Device] = OrderedDict()
        self._seen: dict[str, tuple[str, int]] = {}  # device -> binding, waiting for a flush
        self._in_flight: set[asyncio.Task[None]] = set()
        self._storage_warning = _Gate(60.0)
        self._flusher: asyncio.Task[None] | None = None

    # --- the socket ------------------------------------------------------------------

    async def start(self, sock: Any) -> None:
        """Serve on ``sock`` (bound by the supervisor) and flush sightings periodically."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        self.transport = transport
        self._family = sock.family
        host, port = sock.getsockname()[:2]
        wildcard = ipaddress.ip_address(host).is_unspecified
        self.local = None if wildcard else (plain_host(host), port)
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._flusher = asyncio.create_task(self._flush_every(), name="acs-stun-flush")

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        with contextlib.suppress(*UNAVAILABLE):
            await self.flush(datetime.now(UTC))
        if self.transport is not None:
            self.transport.close()

    def send(self, data: bytes, host: str, port: int) -> None:
        """Send a datagram from the STUN socket (a UDP connection request through the NAT
        binding this socket saw)."""
        if self.transport is None:
            raise OSError("the STUN server is not listening")
        if self._family == socket.AF_INET6 and ":" not in host:  # dual-stack: IPv4 mapped
            host = f"::ffff:{host}"
        self.transport.sendto(data, (host, port))

    def received(self, data: bytes, source: tuple[Any, ...]) -> None:
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            metrics.STUN_REQUESTS.labels("dropped").inc()
            return
        task = asyncio.get_running_loop().create_task(self._answer(data, source))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _answer(self, data: bytes, source: tuple[Any, ...]) -> None:
        address = (plain_host(str(source[0])), int(source[1]))
        try:
            reply = await self.handle(data, address, datetime.now(UTC))
        except UNAVAILABLE as exc:
            metrics.STUN_REQUESTS.labels("unavailable").inc()
            if self._storage_warning():
                log.warning("STUN requests dropped, storage unavailable: %s", exc)
            return
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, source)

    # --- Binding Requests ------------------------------------------------------------

    async def handle(self, data: bytes, source: stun.Address, now: datetime) -> bytes | None:
        """The reply to a datagram from ``source`` (``None``: dropped), having recorded what
        the answer says to."""
        try:
            request = stun.binding_request(stun.parse(data))
        except stun.StunError as exc:
            metrics.STUN_REQUESTS.labels("malformed").inc()
            log.debug(
                "not a STUN Binding Request", extra=logs.fields(client=_text(source), why=str(exc))
            )
            return None
        device = await self._device(request.username) if request.username else None
        if device is not None and device.binding != source:
            # another worker may have recorded a newer binding: read it before refusing
            device = await self._device(request.username or "", reload=True)
        known = stun.Known(device.device_id, device.password, device.binding) if device else None
        answer = stun.answer(request, source, known, local=self.local)
        metrics.STUN_REQUESTS.labels(answer.verdict.value).inc()
        if device is not None and answer.verdict is stun.Verdict.CHANGED:
            await self._changed(request, device, source, now)
        elif device is not None and answer.verdict is stun.Verdict.KEPT:
            self._kept(device, source)
        elif answer.verdict is stun.Verdict.INTEGRITY_FAILED:
            log.info(
                "stun refused",
                extra=logs.fields(
                    device=device.device_id if device else None,
                    client=_text(source),
                    why="MESSAGE-INTEGRITY does not match the device's STUNPassword",
                ),
            )
        elif log.isEnabledFor(logging.DEBUG):
            log.debug(
                "stun answered",
                extra=logs.fields(
                    device=device.device_id if device else None,
                    username=request.username,
                    client=_text(source),
                    verdict=answer.verdict.value,
                    error=answer.error,
                ),
            )
        return answer.reply

    async def _changed(
        self, request: stun.BindingRequest, device: _Device, source: stun.Address, now: datetime
    ) -> None:
        async with self.db.hot_write() as tx:
            await tx.execute(
                _CHANGED,
                host=source[0],
                port=source[1],
                now=now,
                device_id=device.device_id,
                username=request.username,
            )
        was = device.binding
        device.binding = source
        device.seen_written = self.clock()
        self._seen.pop(device.device_id, None)
        log.info(
            "stun binding",
            extra=logs.fields(
                device=device.device_id,
                binding=_text(source),
                was=_text(was) if was else None,
                binding_change=request.binding_change,
            ),
        )

    def _kept(self, device: _Device, source: stun.Address) -> None:
        clock = self.clock()
        if device.seen_written is None or clock - device.seen_written >= SEEN_EVERY:
            device.seen_written = clock
            self._seen[device.device_id] = source

    async def _device(self, username: str, *, reload: bool = False) -> _Device | None:
        cached = self._cache.get(username)
        clock = self.clock()
        if cached is not None and not reload and clock - cached.loaded < CACHE_TTL:
            self._cache.move_to_end(username)
            return cached
        n = tables.nat_traversal
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        n.c.device_id, n.c.stun_password_enc, n.c.stun_host, n.c.stun_port
                    ).where(n.c.stun_username == username)
                )
            ).first()
        if row is None or not row.stun_password_enc:
            self._cache.pop(username, None)
            return None
        try:
            password = self.box.open(row.stun_password_enc)
        except ValueError:
            log.warning("%s: its STUN password cannot be opened", row.device_id)
            return None
        binding = (row.stun_host, row.stun_port) if row.stun_host and row.stun_port else None
        seen = cached.seen_written if cached is not None and cached.binding == binding else None
        device = _Device(row.device_id, password, binding, seen, clock)
        self._cache[username] = device
        self._cache.move_to_end(username)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return device

    # --- sightings -------------------------------------------------------------------

    async def flush(self, now: datetime) -> int:
        """Write the sightings waiting (one transaction); how many."""
        if not self._seen:
            return 0
        pending, self._seen = self._seen, {}
        try:
            async with self.db.hot_write() as tx:
                for device_id, (host, port) in pending.items():
                    await tx.execute(_SEEN, now=now, device_id=device_id, host=host, port=port)
        except BaseException:
            for device_id, binding in pending.items():  # again at the next flush
                self._seen.setdefault(device_id, binding)
            raise
        return len(pending)

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            try:
                await self.flush(datetime.now(UTC))
            except UNAVAILABLE as exc:
                if self._storage_warning():
                    log.warning("STUN sightings not written yet, storage unavailable: %s", exc)

    def health(self) -> dict[str, Any]:
        return {"listening": self.address, "cached_devices": len(self._cache)}


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: StunServer):
        self.server = server

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.server.received(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable for an earlier reply: nothing to do (UDP)
        log.debug("STUN socket error: %s", exc)


def _text(address: stun.Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
