"""Connections of both HTTP listeners: read deadlines, a cap per source, a bound on idle ones.

uvicorn bounds one thing only: how long a kept-alive connection may wait for its next request
(``timeout_keep_alive``). A client that connects and sends nothing, or sends its headers or
its body a byte every few seconds, is kept for as long as it likes, and one address may open
as many connections as the file descriptors allow. This module adds, per listener of a
worker:

* read deadlines (``Reading``, a machine with no I/O and no clock): a request's headers must
  be complete within ``header_timeout`` of the connection (or, on a kept-alive connection,
  of the request's first byte); its body within ``body_timeout`` of its headers, plus a
  second for every ``body_min_rate`` bytes received, so that a large body over a slow link
  goes on while a byte every few seconds does not. The connections reading a request are
  swept every quarter of the shortest timeout (at most a second); one past its deadline is
  closed (a 408 first when no response can be under way);
* a cap on the connections open from one source (``acs.services.throttle.source_key``: an
  address, an IPv6 /64): the one past it is closed at once, unread;
* a bound on idle kept-alive connections: past it, the one idle longest is closed.

What is refused or closed is logged once a minute per source and kind, not per connection.

The hook is a subclass of uvicorn's httptools protocol (``guarded_protocol``), handed to
``uvicorn.Config(http=...)``: httptools calls its parser callbacks by name (its public
interface) and uvicorn calls ``on_response_complete`` once a response is written. These
names are checked at import (``_HOOKS``), and tests/web/test_guard.py runs the hooks on
real sockets, so that a uvicorn that moves them fails loudly instead of guarding nothing.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Final

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from acs import logs
from acs.config import Settings
from acs.services import metrics
from acs.services.throttle import FailureThrottle, source_key

log = logging.getLogger("acs.http")

# The methods of uvicorn's HttpToolsProtocol this module extends. httptools calls the
# on_* parser callbacks by these names; uvicorn calls on_response_complete itself.
_HOOKS: Final = (
    "connection_made",
    "connection_lost",
    "on_message_begin",
    "on_headers_complete",
    "on_body",
    "on_message_complete",
    "on_response_complete",
)
_missing = [name for name in _HOOKS if not callable(getattr(HttpToolsProtocol, name, None))]
if _missing:  # pragma: no cover - only with a uvicorn this module was not written for
    raise ImportError(
        f"uvicorn {uvicorn.__version__}: HttpToolsProtocol lacks {', '.join(_missing)}; "
        "acs.web.guard needs adapting to it"
    )

LOG_WINDOW: Final = 60.0  # seconds: each kind of refusal is logged once per source in it


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The limits of one listener (``ACS_HTTP_*``)."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    body_min_rate: float = 500.0  # bytes per second that earn the body one more second
    per_source: int = 256
    idle: int = 1024

    @classmethod
    def of(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            header_timeout=settings.http_header_timeout,
            body_timeout=settings.http_body_timeout,
            body_min_rate=float(settings.http_body_min_rate),
            per_source=settings.http_max_connections_per_source,
            idle=settings.http_idle_connections,
        )


# --- the reading side of one connection, as data -----------------------------------------


class Phase(enum.Enum):
    """Where a connection is in reading its requests."""

    __hash__ = object.__hash__  # members are singletons; Enum's own hash runs Python code

    NEW = "new"  # connected, its first request has not begun
    HEADERS = "headers"  # a request has begun; its headers are not complete
    BODY = "body"  # its headers are complete; its body is not
    READ = "read"  # the last request begun is read (answered, or being answered)


class Event(enum.Enum):
    __hash__ = object.__hash__

    BEGIN = "begin"  # a request's first byte (httptools: on_message_begin)
    HEADERS_DONE = "headers done"  # on_headers_complete
    MESSAGE_DONE = "message done"  # on_message_complete: its body is read
    RESPONSE_DONE = "response done"  # uvicorn: a response is written


TRANSITIONS: Final[dict[tuple[Phase, Event], Phase]] = {
    (Phase.NEW, Event.BEGIN): Phase.HEADERS,
    (Phase.READ, Event.BEGIN): Phase.HEADERS,
    (Phase.HEADERS, Event.HEADERS_DONE): Phase.BODY,
    (Phase.BODY, Event.MESSAGE_DONE): Phase.READ,
    # A response may complete while the next request (pipelined) is read, or while its own
    # body still comes (the app answered early: 413, 503).
    (Phase.HEADERS, Event.RESPONSE_DONE): Phase.HEADERS,
    (Phase.BODY, Event.RESPONSE_DONE): Phase.BODY,
    (Phase.READ, Event.RESPONSE_DONE): Phase.READ,
}


# The members as plain names: an Enum member read through its class runs Python code (Python
# 3.11), and these are read a few times per request.
_NEW, _HEADERS, _BODY, _READ = Phase
_BEGIN, _HEADERS_DONE, _MESSAGE_DONE, _RESPONSE_DONE = Event


class IllegalMove(Exception):
    """An event the phase does not allow: a hook called out of order (a uvicorn or httptools
    that changed under us). Raised inside a parser callback, it ends that connection."""


class Reading:
    """The reading side of one connection and its deadline, with no I/O and no clock.

    ``pending`` counts the requests begun whose response is not written yet. While an earlier
    request's response is pending, uvicorn stops reading a pipelined request after its
    headers, so its body has no deadline until its turn comes (``RESPONSE_DONE``).
    """

    __slots__ = ("body_bytes", "pending", "phase", "since")

    def __init__(self, now: float):
        self.phase = _NEW
        self.since = now  # when the current deadline's clock started
        self.pending = 0
        self.body_bytes = 0

    def move(self, event: Event, now: float) -> None:
        phase = TRANSITIONS.get((self.phase, event))
        if phase is None or (event is _RESPONSE_DONE and self.pending == 0):
            raise IllegalMove(f"{event.value} while {self.phase.value}, {self.pending} pending")
        if event is _BEGIN:
            self.pending += 1
            if self.phase is _READ:  # a new connection's clock runs from its connect
                self.since = now
        elif event is _HEADERS_DONE:
            self.since, self.body_bytes = now, 0
        elif event is _RESPONSE_DONE:
            self.pending -= 1
            if self.phase is _BODY and self.pending == 1:
                self.since = now  # the pipelined request's turn: its body is read from now
        self.phase = phase

    @property
    def idle(self) -> bool:
        """Between requests on a kept-alive connection: all read, all answered."""
        return self.phase is _READ and self.pending == 0

    def deadline(self, limits: ConnectionLimits) -> float | None:
        """When the connection is to be closed unless it moves on; ``None``: no deadline (an
        answer is being written, or it is idle: uvicorn's keep-alive timeout applies)."""
        phase = self.phase
        if phase is _NEW or phase is _HEADERS:
            return self.since + limits.header_timeout
        if phase is _BODY and self.pending <= 1:
            return self.since + limits.body_timeout + self.body_bytes / limits.body_min_rate
        return None


# --- one listener's connections ----------------------------------------------------------


class ConnectionGuard:
    """The connections of one listener in one worker: counts per source, the idle ones in
    the order they became idle; what it closes is counted (``metrics``) and logged once a
    minute per source and kind."""

    def __init__(
        self, limits: ConnectionLimits, listener: str, clock: Callable[[], float] = time.monotonic
    ):
        self.limits = limits
        self.listener = listener
        self.per_source: dict[str, int] = {}
        self.idle: dict[GuardedProtocol, None] = {}  # insertion order: longest idle first
        # Connections reading a request are looked at every ``tick`` seconds (a sweep costs
        # next to nothing when requests arrive whole; a timer per request cost a fifth of
        # bare HTTP's CPU), so a deadline is kept to within a tick.
        self.reading: set[GuardedProtocol] = set()
        self.tick = min(1.0, limits.header_timeout / 4, limits.body_timeout / 4)
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = {
            reason: metrics.HTTP_CONNECTIONS_CLOSED.labels(listener, reason)
            for reason in ("per_source", "headers", "body", "idle")
        }
        self._said = FailureThrottle(window=LOG_WINDOW, clock=clock)

    def admit(self, source: str) -> bool:
        """Count a connection from ``source``; ``False``: past the cap, close it."""
        open_now = self.per_source.get(source, 0)
        if open_now >= self.limits.per_source:
            self._closed["per_source"].inc()
            self._note(
                logging.WARNING,
                "connection refused",
                source,
                f"{open_now} connections open from this source "
                "(ACS_HTTP_MAX_CONNECTIONS_PER_SOURCE)",
            )
            return False
        self.per_source[source] = open_now + 1
        return True

    def release(self, source: str) -> None:
        left = self.per_source.get(source, 0) - 1
        if left > 0:
            self.per_source[source] = left
        else:
            self.per_source.pop(source, None)

    def became_idle(self, protocol: GuardedProtocol) -> None:
        self.idle[protocol] = None
        if len(self.idle) > self.limits.idle:
            oldest = next(iter(self.idle))
            del self.idle[oldest]
            self._closed["idle"].inc()
            self._note(
                logging.INFO,
                "idle connection closed",
                "",
                f"more than {self.limits.idle} idle connections (ACS_HTTP_IDLE_CONNECTIONS)",
            )
            oldest.transport.close()

    def busy(self, protocol: GuardedProtocol) -> None:
        self.idle.pop(protocol, None)

    def watch(self, protocol: GuardedProtocol) -> None:
        """``protocol`` reads a request: its deadline is checked from now on."""
        self.reading.add(protocol)
        if self._sweep is None:
            self._sweep = protocol.loop.call_later(self.tick, self._swept, protocol.loop)

    def _swept(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for protocol in [p for p in self.reading if p.due(now)]:
            self.reading.discard(protocol)
            protocol.expire()
        self._sweep = loop.call_later(self.tick, self._swept, loop) if self.reading else None

    def expired(self, source: str, phase: Phase) -> None:
        if phase is Phase.BODY:
            kind = "body"
            why = (
                f"request body not complete within {self.limits.body_timeout:g} s and 1 s per "
                f"{self.limits.body_min_rate:g} bytes (ACS_HTTP_BODY_TIMEOUT)"
            )
        else:
            kind = "headers"
            why = (
                f"request headers not complete within {self.limits.header_timeout:g} s "
                "(ACS_HTTP_HEADER_TIMEOUT)"
            )
        self._closed[kind].inc()
        self._note(logging.INFO, "connection closed", source, why, kind=kind)

    def _note(self, level: int, message: str, source: str, reason: str, kind: str = "") -> None:
        # once per window for each source and kind; the first line says so
        if self._said.failed(f"{message}:{kind}:{source}") == 1 and log.isEnabledFor(level):
            log.log(
                level,
                message,
                extra=logs.fields(
                    listener=self.listener,
                    client=source or None,
                    reason=reason,
                    note=f"logged once in {LOG_WINDOW:g} s",
                ),
            )


# --- the uvicorn protocol ----------------------------------------------------------------

_REQUEST_TIMEOUT: Final = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 16\r\nconnection: close\r\n\r\nrequest timeout\n"
)


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol under a ``ConnectionGuard`` (``guarded_protocol`` makes
    one class per listener)."""

    guard: ClassVar[ConnectionGuard]

    source: str | None = None  # None: not counted (refused, or no peer address)
    reading: Reading

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.reading = Reading(self.loop.time())
        source = None if self.client is None else source_key(self.client[0])
        if source is not None:
            if not self.guard.admit(source):
                transport.close()
                return
            self.source = source
        self.guard.watch(self)

    def connection_lost(self, exc: Exception | None) -> None:
        guard = self.guard
        if self.source is not None:
            guard.release(self.source)
            self.source = None
        guard.busy(self)
        guard.reading.discard(self)
        super().connection_lost(exc)

    # httptools' callbacks and uvicorn's: uvicorn's work first, then the move
    def on_message_begin(self) -> None:
        super().on_message_begin()
        guard = self.guard
        guard.idle.pop(self, None)  # no longer idle, if it was
        self.reading.move(_BEGIN, self.loop.time())
        guard.watch(self)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self.reading.move(_HEADERS_DONE, self.loop.time())

    def on_body(self, body: bytes) -> None:
        self.reading.body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._move(_MESSAGE_DONE)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._move(_RESPONSE_DONE)

    def _move(self, event: Event) -> None:
        """A move that may end the reading of a request or make the connection idle."""
        reading = self.reading
        reading.move(event, self.loop.time())
        if reading.phase is _READ:
            self.guard.reading.discard(self)
            if reading.idle and not self.transport.is_closing():
                self.guard.became_idle(self)

    def due(self, now: float) -> bool:
        """Past its deadline (the body's moves with what arrived, so it is computed now)."""
        at = self.reading.deadline(self.guard.limits)
        return at is not None and at <= now

    def expire(self) -> None:
        if self.transport.is_closing():
            return
        phase = self.reading.phase
        self.guard.expired(self.source or "", phase)
        if phase is _BODY:
            # The app may be answering already: no 408 across its response. abort(), not
            # close(): close() waits for a client that does not read to take our buffer.
            self.transport.abort()
        else:
            if self.reading.pending <= 1:  # nothing is being answered on this connection
                self.transport.write(_REQUEST_TIMEOUT)
            self.transport.close()


def guarded_protocol(guard: ConnectionGuard) -> type[asyncio.Protocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` of a listener under ``guard``."""
    name = f"Guarded{guard.listener.capitalize()}Protocol"
    return type(name, (GuardedProtocol,), {"guard": guard})
