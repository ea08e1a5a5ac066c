"""Periodic housekeeping inside each worker: expire abandoned sessions (pruning old nonce
counts), expire tasks, move devices that missed their Informs (late, offline), advance
rollouts, deliver webhooks, prune old events.

Every job is idempotent, so several workers and nodes may run it at once; on PostgreSQL
they simply find less to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from acs.db.errors import UNAVAILABLE
from acs.services import events, maintenance, monitoring, rollouts
from acs.services.runtime import Runtime

log = logging.getLogger("acs.scheduler")


def _now() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    def __init__(self, runtime: Runtime, interval: float = 5.0):
        self.runtime = runtime
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self.storage_down: set[str] = set()  # jobs whose last run found storage unavailable
        self.jobs: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("expire sessions", runtime.cwmp.expire_sessions),
            ("expire tasks", lambda: maintenance.expire_tasks(runtime.db, _now())),
            (
                "move overdue devices",
                lambda: monitoring.move_overdue(runtime.db, _now(), runtime.watch),
            ),
            ("advance rollouts", self._advance_rollouts),
            ("deliver webhooks", lambda: runtime.webhooks.dispatch(_now())),
            (
                "prune events",
                lambda: events.prune(runtime.db, _now(), runtime.settings.event_retention_days),
            ),
        ]

    async def _advance_rollouts(self) -> None:
        runtime = self.runtime
        poke = await rollouts.advance(runtime.db, _now(), runtime.settings.task_default_ttl)
        if poke:
            runtime.spawn(runtime.connection_requests.poke_many(poke))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="acs-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_once(self) -> None:
        for name, job in self.jobs:
            try:
                await job()
            except UNAVAILABLE as exc:
                # the database is down: said once per outage, in a line, not every interval
                # with a traceback (the requests' own 503s say the rest)
                if name not in self.storage_down:
                    self.storage_down.add(name)
                    log.warning("scheduled job %r skipped: storage unavailable: %s", name, exc)
                continue
            except Exception:  # a failing job must not stop the others or the loop
                log.exception("scheduled job %r failed", name)
                continue
            if name in self.storage_down:
                self.storage_down.discard(name)
                log.info("scheduled job %r runs again", name)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.run_once()
