"""The scheduler while the database is down (a PostgreSQL server of the test's own, killed):
each job says so once, in a line without a traceback, and says when it runs again."""

from __future__ import annotations

import asyncio
import logging

from acs.scheduler import Scheduler
from tests.services.test_storage_outage import _runtime


async def test_jobs_say_once_that_storage_is_down_and_when_they_run_again(
    own_postgres, tmp_path, caplog
):
    runtime = await _runtime(own_postgres, tmp_path)
    try:
        scheduler = Scheduler(runtime)
        await scheduler.run_once()
        caplog.set_level(logging.INFO, logger="acs.scheduler")
        await asyncio.to_thread(own_postgres.kill)
        for _ in range(3):
            await scheduler.run_once()
        down = [r for r in caplog.records if r.name == "acs.scheduler"]
        names = [name for name, _ in scheduler.jobs]
        assert [r.levelname for r in down] == ["WARNING"] * len(names)
        assert all(r.exc_info is None for r in down)
        assert [r.getMessage().split(" skipped: ")[0] for r in down] == [
            f"scheduled job {name!r}" for name in names
        ]
        assert all("storage unavailable" in r.getMessage() for r in down)

        caplog.clear()
        await asyncio.to_thread(own_postgres.start)
        await scheduler.run_once()
        await scheduler.run_once()
        assert [r.getMessage() for r in caplog.records if r.name == "acs.scheduler"] == [
            f"scheduled job {name!r} runs again" for name in names
        ]
        assert scheduler.storage_down == set()
    finally:
        await runtime.close()
