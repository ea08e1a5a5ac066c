"""In-process wake-ups: "something changed, look again" (cheaper than polling alone)."""

from __future__ import annotations

import asyncio
import contextlib


class Notifier:
    """A version counter with waiters; ``pulse()`` wakes everyone waiting on an older one."""

    def __init__(self) -> None:
        self.version = 0
        self._event = asyncio.Event()

    def pulse(self) -> None:
        self.version += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, seen: int, max_wait: float) -> None:
        """Return when a pulse newer than ``seen`` happened, or after ``max_wait`` seconds."""
        if self.version != seen:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), max_wait)
