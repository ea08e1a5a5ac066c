"""One read transfer (RRQ) as a TFTP server runs it, with no I/O.

Theory of operation
-------------------
A client asks for a file with an RRQ from its port (its transfer id, TID). The server
answers from a port of its own, one per transfer (RFC 1350 section 4), so this machine sees
only that transfer's datagrams: the caller owns the sockets, checks that a datagram comes
from the client's address and port, and feeds the rest here.

If the request carries options this server takes (``blksize`` RFC 2348, ``timeout`` and
``tsize`` RFC 2349, ``windowsize`` RFC 7440), the server first answers an OACK with the ones
it accepts, and the client acknowledges it with ACK 0 (RFC 2347); options it does not take,
or whose values are out of range, are left out of the OACK, which the RFC allows. Without any,
DATA block 1 is the answer.

DATA blocks carry ``blksize`` bytes (512 by default); a shorter one, possibly empty, is the
last. Up to ``windowsize`` blocks (1 by default) are in flight; an ACK of block *n*
acknowledges every block up to *n*, and if *n* is short of the last block sent, the window
starts again after *n* (RFC 7440 section 4). Block numbers are 16 bits and wrap from 65535
to 0, which lets files of more than 32 MB go with 512-byte blocks; the machine counts blocks
in full and maps each ACK's number onto the window in flight. An ACK outside that window (a
duplicate, or a late one) is ignored: answering duplicates is the Sorcerer's Apprentice bug
(RFC 1123 section 4.2.3.1), the retransmission timer alone resends. On each timeout the
unacknowledged window (or the OACK) is sent again, the timer doubling up to ``max_timeout``
unless the client set it; after ``retries`` timeouts in a row the transfer fails. An ERROR
from the client ends it; a packet that has no place in a read transfer (DATA, a request,
an OACK) is answered with ERROR 4 and ends it; bytes that are no packet are ignored.

The caller feeds the file's bytes as the machine asks for them (``wanted``, ``feed``,
``end``): it keeps only the window's blocks, so a transfer holds at most ``windowsize``
blocks of its file, whatever its size. Every method returns the datagrams to send now;
``timer`` says when to call ``timeout()`` next.

States (``State``)::

    NEGOTIATING --ACK 0--> SENDING --ACK of the last block--> DONE
    NEGOTIATING, SENDING --timeout--> (same, datagrams sent again)
    NEGOTIATING, SENDING --retries exhausted, ERROR, illegal packet--> FAILED
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from acs.tftp import packets
from acs.tftp.packets import ErrorCode

DEFAULT_BLKSIZE: Final = 512
MIN_BLKSIZE: Final = 8  # RFC 2348
MAX_BLKSIZE: Final = 65_464  # RFC 2348: the largest block a UDP datagram over IPv4 carries
MAX_TIMEOUT_OPTION: Final = 255  # RFC 2349: 1-255 seconds
MAX_WINDOWSIZE: Final = 65_535  # RFC 7440
MODES: Final = ("octet", "netascii")  # RFC 1350; "mail" is obsolete and refused


class State(StrEnum):
    NEGOTIATING = "negotiating"  # OACK sent, waiting for ACK 0
    SENDING = "sending"  # DATA in flight
    DONE = "done"  # the last block was acknowledged
    FAILED = "failed"


class Event(StrEnum):
    """What happened to the transfer: a datagram or a timeout, classified."""

    OPTIONS_ACKED = "options_acked"  # ACK 0 to the OACK
    BLOCKS_ACKED = "blocks_acked"  # an ACK moves the window, not yet past the last block
    LAST_ACKED = "last_acked"
    STALE_ACK = "stale_ack"  # an ACK outside the window in flight: ignored
    NOISE = "noise"  # bytes that are no TFTP packet: ignored
    TIMEOUT = "timeout"  # datagrams sent again
    GAVE_UP = "gave_up"  # timeouts past the retries
    PEER_ERROR = "peer_error"  # the client sent ERROR
    ILLEGAL = "illegal"  # a packet that has no place in a read transfer


_FINAL: Final = frozenset((State.DONE, State.FAILED))

TRANSITIONS: Final[dict[tuple[State, Event], State]] = {
    (State.NEGOTIATING, Event.OPTIONS_ACKED): State.SENDING,
    (State.NEGOTIATING, Event.STALE_ACK): State.NEGOTIATING,
    (State.NEGOTIATING, Event.NOISE): State.NEGOTIATING,
    (State.NEGOTIATING, Event.TIMEOUT): State.NEGOTIATING,
    (State.NEGOTIATING, Event.GAVE_UP): State.FAILED,
    (State.NEGOTIATING, Event.PEER_ERROR): State.FAILED,
    (State.NEGOTIATING, Event.ILLEGAL): State.FAILED,
    (State.SENDING, Event.BLOCKS_ACKED): State.SENDING,
    (State.SENDING, Event.LAST_ACKED): State.DONE,
    (State.SENDING, Event.STALE_ACK): State.SENDING,
    (State.SENDING, Event.NOISE): State.SENDING,
    (State.SENDING, Event.TIMEOUT): State.SENDING,
    (State.SENDING, Event.GAVE_UP): State.FAILED,
    (State.SENDING, Event.PEER_ERROR): State.FAILED,
    (State.SENDING, Event.ILLEGAL): State.FAILED,
}


class TransferError(Exception):
    """A move the table does not allow: the caller used a finished transfer."""

    def __init__(self, state: State, event: Event):
        self.state = state
        self.event = event
        super().__init__(f"{event.value} is not allowed in state {state.value}")


class RequestRefused(Exception):
    """A request the server answers with an ERROR and no transfer (``code``, ``message``)."""

    def __init__(self, code: ErrorCode, message: str):
        self.code = code
        self.message = message
        super().__init__(message)

    def datagram(self) -> bytes:
        return packets.encode(packets.Error(self.code, self.message))


@dataclass(frozen=True, slots=True)
class Limits:
    """What the server allows and its own timing; the client's options count within these."""

    max_blksize: int = MAX_BLKSIZE
    max_windowsize: int = 64  # blocks a transfer holds (and sends without an ACK)
    timeout: float = 1.0  # seconds before the first retransmission, unless the client says
    max_timeout: float = 8.0  # the timer doubles up to this
    retries: int = 5  # timeouts in a row before the transfer fails


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The transfer's parameters, and the OACK's options (empty: no OACK)."""

    blksize: int = DEFAULT_BLKSIZE
    windowsize: int = 1
    timeout: float | None = None  # the client's, in seconds; None: the server's own
    oack: tuple[tuple[str, str], ...] = ()


def check_request(request: packets.Request) -> str:
    """The request's mode, lower-cased, if the server serves this request.

    Raises:
        RequestRefused: a WRQ (this server is read-only: ERROR 2), or a mode other than
            octet and netascii (ERROR 0).
    """
    if request.opcode is packets.Opcode.WRQ:
        raise RequestRefused(ErrorCode.ACCESS_VIOLATION, "read-only server: no writes")
    mode = request.mode.lower()
    if mode not in MODES:
        raise RequestRefused(ErrorCode.NOT_DEFINED, f"transfer mode {request.mode!r} not served")
    return mode


def negotiate(options: dict[str, str], *, size: int | None, limits: Limits) -> Negotiated:
    """The options the server accepts from a read request's ``options``.

    ``blksize`` above ``limits.max_blksize`` and ``windowsize`` above
    ``limits.max_windowsize`` are answered with the limit (RFC 2348, 7440); values out of the
    RFCs' ranges, or no numbers, leave the option out. ``tsize`` is answered with ``size``,
    unless it is not known (None): then it is left out.
    """
    blksize, windowsize, timeout = DEFAULT_BLKSIZE, 1, None
    oack: list[tuple[str, str]] = []
    for name, raw in options.items():
        value = int(raw) if raw.isascii() and raw.isdigit() else None
        if value is None:
            continue
        if name == "blksize" and value >= MIN_BLKSIZE:
            blksize = min(value, limits.max_blksize, MAX_BLKSIZE)
            oack.append((name, str(blksize)))
        elif name == "windowsize" and value >= 1:
            windowsize = min(value, limits.max_windowsize, MAX_WINDOWSIZE)
            oack.append((name, str(windowsize)))
        elif name == "timeout" and 1 <= value <= MAX_TIMEOUT_OPTION:
            timeout = float(value)
            oack.append((name, raw))
        elif name == "tsize" and size is not None:
            oack.append((name, str(size)))
    return Negotiated(blksize, windowsize, timeout, tuple(oack))


class ReadTransfer:
    """One RRQ being served (see the module docstring). ``size``: the file's size in bytes
    as sent (None if not known in advance: netascii), for ``tsize``."""

    def __init__(self, options: dict[str, str], *, size: int | None, limits: Limits = Limits()):
        self.limits = limits
        self.negotiated = negotiate(options, size=size, limits=limits)
        self.blksize = self.negotiated.blksize
        self.windowsize = self.negotiated.windowsize
        self.state = State.NEGOTIATING if self.negotiated.oack else State.SENDING
        self.finished = False  # DONE or FAILED
        self.failure: str | None = None  # why the transfer failed, for the log
        self.error_sent: ErrorCode | None = None  # the ERROR this side sent, if any
        self.acked_bytes = 0  # payload the client acknowledged
        self.retransmissions = 0
        self._timeout = self.negotiated.timeout or limits.timeout
        self._timeouts_in_a_row = 0
        self._acked = 0  # blocks acknowledged, counted in full (no wrap)
        self._sent = 0  # the highest block sent
        self._blocks: deque[bytes] = deque()  # blocks _acked+1 ... held for (re)sending
        self._partial = bytearray()  # fed bytes not yet a whole block
        self._last: int | None = None  # the last block's number, once the source ended
        self._started = False  # nothing goes out before start()

    # --- what the caller asks ------------------------------------------------------------

    @property
    def timer(self) -> float | None:
        """Seconds until ``timeout()`` is due; None once finished."""
        return None if self.finished else self._timeout

    @property
    def wanted(self) -> int:
        """Bytes of the file to ``feed`` before the window is full (0: none now)."""
        if self.finished or self._last is not None:
            return 0
        missing = self.windowsize - len(self._blocks)
        return max(0, missing * self.blksize - len(self._partial))

    @property
    def blocks_acked(self) -> int:
        return self._acked

    # --- moves -----------------------------------------------------------------------------

    def start(self) -> list[bytes]:
        """The first datagrams: the OACK, or the DATA fed so far."""
        self._started = True
        if self.state is State.NEGOTIATING:
            return [self._oack()]
        return self._send_window()

    def feed(self, data: bytes) -> list[bytes]:
        """The file's next bytes (as sent: netascii already converted)."""
        if not self._partial and len(data) == self.blksize:  # a block as it is: no copies
            self._blocks.append(data)
            return self._send_window()
        self._partial += data
        whole = len(self._partial) - len(self._partial) % self.blksize
        for offset in range(0, whole, self.blksize):
            self._blocks.append(bytes(self._partial[offset : offset + self.blksize]))
        del self._partial[:whole]
        return self._send_window()

    def end(self) -> list[bytes]:
        """The file has no more bytes: what is left, possibly nothing, is the last block."""
        if self._last is None:
            self._blocks.append(bytes(self._partial))
            self._partial.clear()
            self._last = self._acked + len(self._blocks)
        return self._send_window()

    def receive(self, datagram: bytes) -> list[bytes]:
        """A datagram from the client's address and port."""
        if len(datagram) == 4 and datagram[:2] == packets.ACK_OPCODE:  # the common case
            return self._on_ack(int.from_bytes(datagram[2:], "big"))
        try:
            packet = packets.decode(datagram)
        except packets.MalformedPacket:
            self._move(Event.NOISE)
            return []
        if isinstance(packet, packets.Ack):
            return self._on_ack(packet.block)
        if isinstance(packet, packets.Error):
            self.failure = f"client error {packet.code}: {packet.message}"
            self._move(Event.PEER_ERROR)
            return []
        self._move(Event.ILLEGAL)
        kind = type(packet).__name__.upper()
        self.failure = f"illegal operation: {kind} in a read transfer"
        self.error_sent = ErrorCode.ILLEGAL_OPERATION
        return [packets.encode(packets.Error(ErrorCode.ILLEGAL_OPERATION, self.failure))]

    def timeout(self) -> list[bytes]:
        """The timer ran out: send the unacknowledged datagrams again, or give up."""
        self._timeouts_in_a_row += 1
        if self._timeouts_in_a_row > self.limits.retries:
            self._move(Event.GAVE_UP)
            self.failure = f"timeout: no answer after {self.limits.retries} retransmissions"
            return []
        self._move(Event.TIMEOUT)
        self.retransmissions += 1
        if self.negotiated.timeout is None:
            self._timeout = min(self._timeout * 2, self.limits.max_timeout)
        if self.state is State.NEGOTIATING:
            return [self._oack()]
        self._sent = self._acked
        return self._send_window()

    # --- inside ------------------------------------------------------------------------------

    def _move(self, event: Event) -> None:
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise TransferError(self.state, event) from None
        self.finished = self.state in _FINAL

    def _oack(self) -> bytes:
        return packets.encode(packets.OptionAck(dict(self.negotiated.oack)))

    def _on_ack(self, number: int) -> list[bytes]:
        # The block in flight whose 16-bit number this is: _acked + 1 ... _sent.
        ahead = (number - self._acked) & packets.MAX_BLOCK
        block = self._acked + ahead
        if self.state is State.NEGOTIATING:
            if number != 0:
                self._move(Event.STALE_ACK)
                return []
            self._move(Event.OPTIONS_ACKED)
            self._progress()
            return self._send_window()
        if ahead == 0 or block > self._sent:
            self._move(Event.STALE_ACK)
            return []
        for _ in range(ahead):
            self.acked_bytes += len(self._blocks.popleft())
        self._acked = block
        self._progress()
        if block == self._last:
            self._move(Event.LAST_ACKED)
            return []
        self._move(Event.BLOCKS_ACKED)
        if block < self._sent:  # the client missed what followed: the window starts again
            self._sent = block
        return self._send_window()

    def _progress(self) -> None:
        self._timeouts_in_a_row = 0
        self._timeout = self.negotiated.timeout or self.limits.timeout

    def _send_window(self) -> list[bytes]:
        if not self._started or self.state is not State.SENDING:
            return []
        out = []
        end = self._acked + min(self.windowsize, len(self._blocks))
        while self._sent < end:
            self._sent += 1
            out.append(packets.data(self._sent, self._blocks[self._sent - self._acked - 1]))
        return out


def netascii(data: bytes) -> bytes:
    """``data`` as netascii (RFC 764, as RFC 1350 asks): LF becomes CR LF, a CR becomes
    CR NUL. Byte by byte, so chunks convert independently; a client reverses it exactly."""
    return data.replace(b"\r", b"\r\0").replace(b"\n", b"\r\n")
