"""Concurrent calls for the same key share one run of the work (what Go's singleflight does).

A thousand phones booting at once ask for the same general file and the same firmware within
the same second: the first request's lookup answers all of those that arrive while it runs,
so they cost one database read between them, and each still gets the answer of a lookup made
after it asked. Nothing is kept once the work ends: this is no cache.

A caller that is cancelled leaves the others waiting for the work; if the caller doing the
work is cancelled, the next one waiting does it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        """Keys whose work is in flight."""
        return len(self._running)

    async def run(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        """``work()``'s result (or exception), shared with the calls of ``key`` meanwhile."""
        while (running := self._running.get(key)) is not None:
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                if not running.cancelled():
                    raise  # this caller was cancelled
                # the caller doing the work was: do it here
        future = self._running[key] = asyncio.get_running_loop().create_future()
        try:
            value = await work()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: there may be nobody else waiting
            raise
        finally:
            del self._running[key]
        future.set_result(value)
        return value
