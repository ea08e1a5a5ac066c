"""Admission of new CWMP sessions on one worker: a boot storm is met with 503s, never timeouts.

What bounds the work of a worker is the number of sessions it has open, not the number of
requests it is serving this instant: each open session will send more requests, and if ten
thousand are open at once, every one of their requests waits behind all the others until CPEs
time out and start over. So a worker admits a new session (an authenticated Inform) only while
fewer than ``limit`` of the sessions it opened are still open; requests of sessions already
admitted are always served. A session is counted until this worker sees it end, or until it
is older than the session timeout (it may have ended on another worker, or been abandoned).

Refused CPEs are told when to come back (``Retry-After``): a time spread evenly up to how
long the sessions waiting now take at the rate sessions are completing, so that they come
back as a stream the worker can absorb and not as the next wave.

``limit`` is an upper bound; the number actually admitted (the window) follows how long the
worker takes to serve a request. When that grows past ``SLOW_REQUEST_SECONDS`` the worker has
admitted more than its database keeps up with: its requests wait for connections and locks,
and CPEs time out in the middle of sessions (seen in a PostgreSQL boot storm on a small
machine: sessions of two minutes, a pool timeout after 30 s). The window then shrinks in
proportion, at most once a second, and grows again by one per request served in time. The
signal is the server's own time per request, never the session's length, which a slow WAN
link or a long provisioning session stretches without any load here.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 10.0
MAX_RETRY_AFTER = 120
SLOW_REQUEST_SECONDS = 1.0  # serving one request should take milliseconds
MIN_WINDOW = 8


class SessionAdmission:
    def __init__(
        self,
        limit: int,
        session_timeout: float,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ):
        self.limit = limit
        self.session_timeout = session_timeout
        self.clock = clock
        self.rng = rng or random.Random()
        self._open: dict[str, float] = {}  # session id -> when admitted (insertion ordered)
        self._closed: deque[float] = deque()  # when recent sessions ended
        self._refused: dict[str, float] = {}  # device -> when last turned away (oldest first)
        self.window = float(limit)  # sessions admitted at once now (see the module docstring)
        self._service_time = 0.0  # moving average of the time to serve a request
        self._last_shrink = -math.inf

    @property
    def open_sessions(self) -> int:
        return len(self._open)

    @property
    def admitting(self) -> int:
        """How many sessions may be open at once right now."""
        return max(min(self.limit, MIN_WINDOW), min(self.limit, int(self.window)))

    def admit(self, device_id: str) -> bool:
        """May a new session of this device start now? (Counts the device as waiting if not.)"""
        now = self.clock()
        admitting = self.admitting
        if len(self._open) >= admitting:
            self._forget_stale(now)
        if len(self._open) < admitting:
            self._refused.pop(device_id, None)
            return True
        self._refused.pop(device_id, None)  # re-insert: the dict stays ordered by time
        self._refused[device_id] = now
        return False

    def opened(self, session_id: str) -> None:
        self._open[session_id] = self.clock()

    def closed(self, session_id: str) -> None:
        if self._open.pop(session_id, None) is not None:
            self._closed.append(self.clock())

    def served(self, seconds: float) -> None:
        """A request of a session took ``seconds`` to serve: adjust the window."""
        self._service_time += (seconds - self._service_time) * 0.1
        if self._service_time > SLOW_REQUEST_SECONDS:
            now = self.clock()
            if now - self._last_shrink >= 1.0:
                self._last_shrink = now
                shrink = max(0.5, SLOW_REQUEST_SECONDS / self._service_time)
                self.window = max(float(MIN_WINDOW), self.window * shrink)
        elif self.window < self.limit:
            self.window = min(float(self.limit), self.window + 1.0)

    def retry_after(self) -> int:
        """Seconds a refused CPE should wait: spread evenly up to the time the sessions waiting
        now (refused lately, or open) take at the rate sessions are completing, so that the
        refused come back as a stream the worker can absorb, not as the next wave."""
        now = self.clock()
        self._trim(now)
        backlog = len(self._refused) + len(self._open)
        horizon = max(backlog / self._completion_rate(now), 1.0)
        seconds = self.rng.uniform(1.0, horizon)
        return min(max(math.ceil(seconds), 1), MAX_RETRY_AFTER)

    def _completion_rate(self, now: float) -> float:
        """Sessions ending per second over the window, but no less than if the admitted
        sessions took two seconds each: in the first seconds of a storm the worker is busy
        turning CPEs away and little completes, and a rate measured then would send them
        away for minutes. Erring fast is cheap (a CPE back too early costs one more 503);
        erring slow leaves the worker idle while CPEs wait."""
        assumed = max(self.limit / 2.0, 1.0)
        if len(self._closed) < 2:
            return assumed
        span = max(now - self._closed[0], 1.0)
        return max(len(self._closed) / span, assumed)

    def _forget_stale(self, now: float) -> None:
        horizon = now - self.session_timeout
        stale = []
        for session_id, admitted in self._open.items():  # oldest first
            if admitted > horizon:
                break
            stale.append(session_id)
        for session_id in stale:
            del self._open[session_id]

    def _trim(self, now: float) -> None:
        horizon = now - WINDOW_SECONDS
        while self._closed and self._closed[0] < horizon:
            self._closed.popleft()
        while self._refused:
            device_id, when = next(iter(self._refused.items()))
            if when >= horizon:
                break
            del self._refused[device_id]
