"""Failed attempts per source (``source_key``), counted in windows of ``window`` seconds.

API sign-ins refuse a source with ``limit`` failures for the rest of the window without
checking its credentials (argon2 costs ~0.1 s of CPU per check by design: a guessing client
must not get to spend it), and forget its failures on a success. The CWMP service refuses
nothing for it (thousands of CPEs may share the address) but checks such a source's requests
before it parses their bodies (``acs.services.cwmp``). What is logged is said once per window
and source, not per attempt. The counts live in the process: with N workers a source gets N
times the limit, which still bounds guessing.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass


def source_key(host: str) -> str:
    """The source a peer address counts as: an IPv4 address as it is (one address may be a
    carrier-grade NAT with thousands of CPEs behind it); an IPv6 address by its /64, which is
    one subscriber's (a host picks any address of it at will); an IPv4-mapped IPv6 address
    (a dual-stack listener's IPv4 peer) as its IPv4 address."""
    if ":" not in host:
        return host  # IPv4 (the common case: no parsing)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return host


@dataclass(slots=True)
class _Failures:
    since: float  # start of the current window
    count: int = 0


class FailureThrottle:
    def __init__(
        self,
        limit: int = 10,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_sources: int = 100_000,
    ):
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_sources = max_sources
        self._sources: dict[str, _Failures] = {}

    def _current(self, source: str, now: float) -> _Failures | None:
        entry = self._sources.get(source)
        if entry is not None and now - entry.since >= self.window:
            del self._sources[source]
            return None
        return entry

    def retry_after(self, source: str) -> int:
        """Seconds the source must wait before it may try again; 0: it may try now."""
        now = self.clock()
        entry = self._current(source, now)
        if entry is None or entry.count < self.limit:
            return 0
        return max(1, int(entry.since + self.window - now + 0.999))

    def failed(self, source: str) -> int:
        """Count a failure; how many the source has in this window (1: the first, worth a log
        line; ``limit``: it is refused from now on, worth another)."""
        now = self.clock()
        entry = self._current(source, now)
        if entry is None:
            if len(self._sources) >= self.max_sources:  # a flood of sources: start over
                self._sources.clear()
            entry = self._sources[source] = _Failures(since=now)
        entry.count += 1
        return entry.count

    def succeeded(self, source: str) -> None:
        self._sources.pop(source, None)

    def failures(self, source: str) -> int:
        entry = self._current(source, self.clock())
        return 0 if entry is None else entry.count
