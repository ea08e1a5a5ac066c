"""The TFTP listener: provisioning files for phones that fetch them over TFTP (read-only).

Requests arrive on one UDP socket (``ACS_TFTP_PORT``, bound by ``acs serve`` before the
workers start and shared by them: the kernel hands each datagram to one worker). Each
transfer gets a socket of its own on an ephemeral port (its TID, RFC 1350 section 4), bound
to the address the request was sent to, so that a host with several addresses answers from
the one the phone asked (``IP_PKTINFO``); the worker that took the request serves it to the
end. Transfers run on the event loop with callbacks: datagrams in, ``acs.tftp.transfer``'s
machine, datagrams out, one timer. A configuration is in memory once rendered; a stored
file is read ahead in 64 KiB chunks in a thread, so a transfer holds little more than its
window, whatever the file's size.

TFTP has no authentication: ``ACS_TFTP_ALLOW`` says which networks may fetch; a request from
elsewhere gets no answer at all (no reflection of spoofed requests). A write request gets
ERROR 2. Requests beyond ``ACS_TFTP_MAX_TRANSFERS`` in a worker get no answer either: the
phone sends its request again after its timeout, when there may be room.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from acs.config import Settings
from acs.db.errors import UNAVAILABLE
from acs.provisioning.errors import ProvisioningError
from acs.services import provisioning_files as pf
from acs.services.runtime import Runtime
from acs.tftp import packets
from acs.tftp.packets import ErrorCode
from acs.tftp.transfer import Limits, ReadTransfer, RequestRefused, check_request, netascii

log = logging.getLogger("acs.tftp")

_RECV_BUFFER: Final = packets.MAX_DATAGRAM
# What a transfer's socket reads: a client sends ACKs (4 bytes) and ERRORs; more is cut off
_TRANSFER_DATAGRAM: Final = 2048
_BURST: Final = 64  # datagrams read per wake-up, so one busy socket cannot starve the loop
# Linux's values; Python 3.11 does not name them.
_IP_PKTINFO: Final = getattr(socket, "IP_PKTINFO", 8)
_IP_RECVERR: Final = getattr(socket, "IP_RECVERR", 11)
_IPV6_RECVERR: Final = getattr(socket, "IPV6_RECVERR", 25)
_ANCILLARY: Final = socket.CMSG_SPACE(20) * 2
_ERROR_ANCILLARY: Final = socket.CMSG_SPACE(16 + 28)  # sock_extended_err and the offender
_QUIET_SECONDS: Final = 60.0  # refused or dropped requests: a line per source per minute
# The request socket's receive buffer: 1,000 phones booting at once send their requests
# together, and Linux's default (212,992 bytes) holds about 300 of them: the rest would be
# dropped by the kernel, and each of those phones would wait its timeout before asking again.
RECEIVE_BUFFER: Final = 4 << 20
_SO_RCVBUFFORCE: Final = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux; beyond rmem_max

Address = tuple[Any, ...]  # (host, port) or (host, port, flowinfo, scope_id)


def bind(host: str, port: int) -> socket.socket:
    """The listener's UDP socket, bound; the caller names it in errors."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    _enlarge_receive_buffer(sock)
    return sock


def _enlarge_receive_buffer(sock: socket.socket) -> None:
    """Ask for ``RECEIVE_BUFFER`` bytes of queue (beyond ``net.core.rmem_max`` when the
    process may: CAP_NET_ADMIN); say so once if the system gives less."""
    for option in (socket.SO_RCVBUF, _SO_RCVBUFFORCE):
        with contextlib.suppress(OSError):  # SO_RCVBUFFORCE without the capability
            sock.setsockopt(socket.SOL_SOCKET, option, RECEIVE_BUFFER)
        # Linux reports twice what it was asked (its bookkeeping), up to twice rmem_max
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= RECEIVE_BUFFER:
            return
    got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
    log.warning(
        "UDP port %s: a receive buffer of %d bytes only (net.core.rmem_max): a burst of "
        "requests beyond it is dropped, and phones ask again after their timeout; "
        "sysctl -w net.core.rmem_max=%d allows %d",
        sock.getsockname()[1],
        got,
        RECEIVE_BUFFER,
        RECEIVE_BUFFER,
    )


def _host(address: Address) -> str:
    """The client's address as people write it (an IPv4 client of a dual-stack socket
    arrives as ``::ffff:192.0.2.1``)."""
    ip = ipaddress.ip_address(address[0].split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


class TftpListener:
    """TFTP on ``sock`` for one worker (see the module docstring)."""

    def __init__(self, runtime: Runtime, sock: socket.socket, *, limits: Limits | None = None):
        self.runtime = runtime
        self.settings = runtime.settings
        self.sock = sock
        self.limits = limits or Limits()
        self.networks = self.settings.tftp_networks
        self.transfers: dict[Address, _Transfer] = {}
        self._quiet: dict[tuple[str, str], float] = {}  # (what, source): when last said
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Serve from now on, on the running loop."""
        self._loop = asyncio.get_running_loop()
        self.sock.setblocking(False)
        with contextlib.suppress(OSError):  # where the system has no such option
            if self.sock.family == socket.AF_INET6:
                self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            self.sock.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
        self._loop.add_reader(self.sock.fileno(), self._readable)

    async def close(self) -> None:
        """Stop taking requests; transfers in flight end (``aborted``: the server stops)."""
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
        for transfer in list(self.transfers.values()):
            transfer.abort("server stopping")
        self.sock.close()

    # --- requests ------------------------------------------------------------------------------

    def _readable(self) -> None:
        for _ in range(_BURST):
            try:
                datagram, ancillary, _flags, client = self.sock.recvmsg(_RECV_BUFFER, _ANCILLARY)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # an ICMP error reported on the socket: nothing to read
                log.debug("TFTP socket: %s", exc)
                return
            self._request(datagram, client, _destination(ancillary) or self._bound_host())

    def _bound_host(self) -> str:
        return str(self.sock.getsockname()[0])

    def _request(self, datagram: bytes, client: Address, local: str) -> None:
        started = time.perf_counter()
        host = _host(client)
        if not self._allowed(host):
            self._quietly(host, "TFTP request from %s refused: not in ACS_TFTP_ALLOW", host)
            pf.count(self._unserved(host, pf.Outcome.REFUSED, started))
            return
        try:
            request = packets.decode(datagram)
        except packets.MalformedPacket:
            return  # noise on the port
        if not isinstance(request, packets.Request):
            return  # a packet of a transfer sent to the wrong port
        current = self.transfers.get(client)
        if current is not None:
            if current.request == request:
                return  # the client sent its request again before our answer came
            current.abort("the client sent a new request")
        if len(self.transfers) >= self.settings.tftp_max_transfers:
            self._quietly(
                host,
                "TFTP request from %s dropped: this worker serves %d transfers already "
                "(ACS_TFTP_MAX_TRANSFERS)",
                host,
                len(self.transfers),
            )
            busy = self._unserved(host, pf.Outcome.UNAVAILABLE, started, reason="busy")
            pf.count(busy)
            return
        try:
            reply = socket.socket(self.sock.family, socket.SOCK_DGRAM)
        except OSError as exc:  # out of file descriptors
            self._quietly(host, "TFTP request from %s dropped: no socket for it: %s", host, exc)
            return
        try:
            reply.setblocking(False)
            _report_icmp_errors(reply)
            reply.bind((local, 0))
        except OSError as exc:
            reply.close()
            self._quietly(host, "TFTP request from %s dropped: no socket for it: %s", host, exc)
            return
        transfer = _Transfer(self, request, client, host, local, reply, started)
        self.transfers[client] = transfer
        transfer.begin()

    def _allowed(self, host: str) -> bool:
        address = ipaddress.ip_address(host)
        return any(address in network for network in self.networks)

    def _unserved(
        self, host: str, outcome: pf.Outcome, started: float, reason: str | None = None
    ) -> pf.Transfer:
        return pf.Transfer(
            protocol="tftp",
            file=None,
            client=host,
            method="RRQ",
            outcome=outcome,
            status=None,
            bytes=0,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            reason=reason,
        )

    def _quietly(self, source: str, message: str, *args: object) -> None:
        """A warning at most once a minute per kind and source: a flood of spoofed requests
        must not become a flood of lines."""
        now = time.monotonic()
        key = (message, source)
        if now - self._quiet.get(key, -_QUIET_SECONDS) < _QUIET_SECONDS:
            return
        if len(self._quiet) >= 10_000:
            self._quiet.clear()
        self._quiet[key] = now
        log.warning(message, *args)

    def base_url(self, local: str) -> str:
        """Where the phone reaches the CPE-facing HTTP listener, for the URLs a configuration
        carries: ``ACS_PUBLIC_URL``, else the address it sent its TFTP request to."""
        return base_url(self.settings, local)


def base_url(settings: Settings, local: str) -> str:
    """Where a phone reaches the CPE-facing HTTP listener: ``ACS_PUBLIC_URL``, else the
    address (``local``) at which it reached this server over another protocol."""
    return settings.cwmp_base_url(_host((local,)))


def _report_icmp_errors(sock: socket.socket) -> None:
    """Queue the ICMP errors that datagrams sent from ``sock`` meet (``IP_RECVERR``), with
    the address each was sent to: an unconnected UDP socket hears of none otherwise, and a
    transfer whose phone has gone would wait out every retransmission."""
    with contextlib.suppress(OSError):  # where the system has no such option
        sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)  # IPv4, v4-mapped included
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)


def _refused_by(sock: socket.socket, peer: Address) -> bool:
    """Empty ``sock``'s queue of ICMP errors (a socket with errors queued stays readable):
    whether one says that ``peer``'s port is closed ("port unreachable")."""
    refused = False
    for _ in range(_BURST):
        try:
            _data, ancillary, _flags, sent_to = sock.recvmsg(
                1, _ERROR_ANCILLARY, socket.MSG_ERRQUEUE
            )
        except OSError:  # BlockingIOError: the queue is empty
            break
        for _level, _kind, err in ancillary:  # struct sock_extended_err: ee_errno first
            if len(err) >= 4 and int.from_bytes(err[:4], sys.byteorder) == errno.ECONNREFUSED:
                refused = refused or sent_to[:2] == peer[:2]
    return refused


def _destination(ancillary: list[tuple[int, int, bytes]]) -> str | None:
    """The address a request was sent to, from IP_PKTINFO / IPV6_PKTINFO."""
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IP and kind == _IP_PKTINFO and len(data) >= 12:
            return socket.inet_ntop(socket.AF_INET, data[8:12])  # in_pktinfo.ipi_addr
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(data) >= 16:
            return socket.inet_ntop(socket.AF_INET6, data[:16])  # in6_pktinfo.ipi6_addr
    return None


class _Source:
    """The bytes of a file as sent (netascii converted), buffered: all of a configuration
    at once, a stored file in ``READ_AHEAD`` chunks."""

    def __init__(self, reader: pf.Reader, convert: Callable[[bytes], bytes] | None):
        found = reader.found
        self.convert = convert
        self.data = b""  # what is in memory, from ``pos`` on
        self.pos = 0
        self.eof = False
        self.reader = reader
        if found.content is not None:
            self.data = convert(found.content) if convert else found.content
            self.eof = True

    @property
    def buffered(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        """Up to ``n`` bytes of what is buffered (fewer where a chunk ends)."""
        pos = self.pos
        chunk = self.data[pos : pos + n]
        self.pos = pos + len(chunk)
        return chunk

    async def fill(self) -> None:
        """Read the next chunk; once what was buffered is taken (``buffered`` is 0)."""
        chunk = await self.reader.read()
        self.data, self.pos = (self.convert(chunk) if self.convert else chunk), 0
        self.eof = not chunk or self.reader.done

    def close(self) -> None:
        self.reader.close()


class _Transfer:
    """One RRQ: the socket of its TID, the machine, the file's bytes, the timer."""

    def __init__(
        self,
        listener: TftpListener,
        request: packets.Request,
        client: Address,
        host: str,
        local: str,
        sock: socket.socket,
        started: float,
    ):
        self.listener = listener
        self.loop = asyncio.get_running_loop()
        self.request = request
        self.client = client
        self.peer = client[:2]  # (host, port), what its datagrams come from
        self.host = host
        self.local = local
        self.sock = sock
        self.started = started
        self.machine: ReadTransfer | None = None
        self.source: _Source | None = None
        self.found: pf.ProvisioningFile | None = None
        self.task: asyncio.Task[None] | None = None
        self.filling: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.deadline = 0.0
        self.ended = False

    def begin(self) -> None:
        self.task = self.loop.create_task(self._open())

    async def _open(self) -> None:
        """Resolve the name, then hand the transfer over to the callbacks."""
        try:
            await self._resolve()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("TFTP %s from %s", self.request.filename, self.host)
            self._refuse(ErrorCode.NOT_DEFINED, "internal error", pf.Outcome.ERROR)

    async def _resolve(self) -> None:
        try:
            mode = check_request(self.request)
        except RequestRefused as refused:
            outcome = pf.Outcome.REFUSED if refused.code == 2 else pf.Outcome.INVALID
            self._refuse(refused.code, refused.message, outcome)
            return
        try:
            found = await self.listener.runtime.provisioning_files.open(
                self.request.filename,
                base_url=self.listener.base_url(self.local),
                now=datetime.now(UTC),
                requester=pf.OPEN,  # no authentication: ACS_TFTP_ALLOW says who may ask
            )
        except pf.NoSuchFile as exc:
            self._refuse(ErrorCode.FILE_NOT_FOUND, str(exc), pf.Outcome.NOT_FOUND)
            return
        except pf.BadName as exc:
            self._refuse(ErrorCode.ACCESS_VIOLATION, str(exc), pf.Outcome.INVALID)
            return
        except ProvisioningError as exc:
            log.warning("provisioning %s: %s", self.request.filename, exc)
            self._refuse(ErrorCode.NOT_DEFINED, str(exc), pf.Outcome.INVALID)
            return
        except UNAVAILABLE as exc:
            log.error("TFTP %s: storage unavailable: %s", self.request.filename, exc)
            message = "storage unavailable, retry later"
            self._refuse(ErrorCode.NOT_DEFINED, message, pf.Outcome.UNAVAILABLE)
            return
        self.found = found
        text = mode == "netascii"
        reader = self.listener.runtime.provisioning_files.reader(found)
        self.source = source = _Source(reader, netascii if text else None)
        if found.path is not None:
            try:
                await source.fill()
            except OSError as exc:
                self._read_failed(exc)
                return
        size = found.size if not text else (source.buffered if source.eof else None)
        self.machine = ReadTransfer(self.request.options, size=size, limits=self.listener.limits)
        self.loop.add_reader(self.sock.fileno(), self._readable)
        self._pump()
        self._send(self.machine.start())
        self._pump()

    # --- callbacks ---------------------------------------------------------------------------

    def _readable(self) -> None:
        """One datagram (the readiness is level-triggered: the next one calls again). The
        path every block of every transfer takes: kept short."""
        machine = self.machine
        assert machine is not None
        try:
            datagram, sender = self.sock.recvfrom(_TRANSFER_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # an ICMP error for a datagram sent: which, the queue says
            self._icmp_error()
            return
        if sender[:2] != self.peer:
            # RFC 1350 section 4: another TID is answered, and the transfer goes on.
            error = packets.Error(ErrorCode.UNKNOWN_TID, "unknown transfer id")
            self._sendto(packets.encode(error), sender)
            return
        out = machine.receive(datagram)
        if out:
            self._send(out)
        if machine.finished:
            self._after()
        else:
            self._pump()

    def _pump(self) -> None:
        """Feed the machine what it wants from the source; read ahead when it runs dry."""
        machine, source = self.machine, self.source
        assert machine is not None and source is not None
        while not self.ended and (wanted := machine.wanted) > 0:
            if source.buffered:
                self._send(machine.feed(source.take(wanted)))
            elif source.eof:
                self._send(machine.end())
            else:
                if self.filling is None:
                    self.filling = self.loop.create_task(self._fill())
                break
        self._after()

    async def _fill(self) -> None:
        assert self.source is not None
        try:
            await self.source.fill()
        except OSError as exc:
            self._read_failed(exc)
            return
        finally:
            self.filling = None
        if not self.ended:
            self._pump()

    def _timeout(self) -> None:
        self.timer = None
        if self.ended:
            return
        now = self.loop.time()
        if now < self.deadline:  # the deadline moved while this timer waited
            self.timer = self.loop.call_at(self.deadline, self._timeout)
            return
        machine = self.machine
        assert machine is not None
        self._send(machine.timeout())
        if not machine.finished:
            self._arm()  # also when there was nothing to send again (data still on its way)
            self._pump()
        self._after()

    # --- sending, timing, ending -------------------------------------------------------------

    def _send(self, datagrams: list[bytes]) -> None:
        """Send, and time the answer from now."""
        if not datagrams:
            return
        for datagram in datagrams:
            self._sendto(datagram, self.client)
        self._arm()

    def _arm(self) -> None:
        """The retransmission timer, due ``machine.timer`` from now. A timer set for later
        is moved; one set for sooner finds the new deadline when it fires (most datagrams
        move the deadline: one handle per transfer, not one per datagram)."""
        machine = self.machine
        if machine is None or machine.timer is None:
            return
        self.deadline = self.loop.time() + machine.timer
        if self.timer is None or self.timer.when() > self.deadline:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_at(self.deadline, self._timeout)

    def _sendto(self, datagram: bytes, address: Address) -> None:
        try:
            self.sock.sendto(datagram, address)
        except (BlockingIOError, InterruptedError):
            pass  # the socket's buffer is full: as if lost on the way, the timer resends
        except OSError as exc:  # an earlier datagram's ICMP error, or this one's
            if exc.errno not in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                log.debug("TFTP send to %s: %s", self.host, exc)
            self._icmp_error()

    def _icmp_error(self) -> None:
        """An ICMP error came back: if the phone's port is closed (it gave up, or restarted
        and asks again from another port), the transfer ends now rather than after every
        retransmission, freeing its place. Others (no route, for now) the timer copes with."""
        if not self.ended and _refused_by(self.sock, self.client):
            self._end(pf.Outcome.ABORTED, None, "the client went away (ICMP port unreachable)")

    def _after(self) -> None:
        """End the transfer once its machine has."""
        machine = self.machine
        if self.ended or machine is None or not machine.finished:
            return
        if machine.failure is None:
            self._end(pf.Outcome.OK, None)
        elif machine.failure.startswith("timeout"):
            self._end(pf.Outcome.TIMEOUT, None, machine.failure)
        elif machine.error_sent is not None:
            self._end(pf.Outcome.ERROR, int(machine.error_sent), machine.failure)
        else:
            self._end(pf.Outcome.ABORTED, None, machine.failure)

    def _refuse(self, code: ErrorCode, message: str, outcome: pf.Outcome) -> None:
        self._sendto(packets.encode(packets.Error(code, message)), self.client)
        self._end(outcome, int(code), message)

    def _read_failed(self, exc: OSError) -> None:
        log.error("TFTP %s: cannot read the stored file: %s", self.request.filename, exc)
        message = "cannot read the file, retry later"
        self._sendto(packets.encode(packets.Error(ErrorCode.NOT_DEFINED, message)), self.client)
        self._end(pf.Outcome.UNAVAILABLE, int(ErrorCode.NOT_DEFINED), f"read error: {exc}")

    def abort(self, reason: str) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.filling is not None:
            self.filling.cancel()
        self._end(pf.Outcome.ABORTED, None, reason)

    def _end(self, outcome: pf.Outcome, status: int | None, reason: str | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        if self.timer is not None:
            self.timer.cancel()
        if self.machine is not None:
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        if self.source is not None:
            self.source.close()
        if self.listener.transfers.get(self.client) is self:
            del self.listener.transfers[self.client]
        found, machine = self.found, self.machine
        pf.record(
            pf.Transfer(
                protocol="tftp",
                file=self.request.filename,
                client=self.host,
                method=self.request.opcode.name,
                outcome=outcome,
                status=status,
                bytes=machine.acked_bytes if machine is not None else 0,
                duration_ms=round((time.perf_counter() - self.started) * 1000, 1),
                mac=found.mac if found is not None else None,
                auth="allow-list",
                reason=reason,
            ),
        )
