"""A database that dies: every storage failure is a 503 with Retry-After on both listeners,
never a 500, nothing of the failed requests is kept, and service resumes once the database is
back. On a PostgreSQL server of the test's own, killed with SIGKILL (mid-transaction too)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx

from acs.db import migrate
from acs.db.engine import Database
from acs.services.operators import ensure_admin
from acs.services.policy import Component
from acs.services.runtime import Runtime
from acs.web.api_app import create_api_app
from acs.web.cwmp_app import create_cwmp_app
from tests.conftest import make_settings
from tests.services.harness import ServiceCpe, session

DEVICE = "00D09E-IGD-SN0001"


class KillsTheDatabase(Component[None]):
    """Kills the database in the middle of the Inform's transaction, once."""

    name = "killer"

    def __init__(self, server: Any) -> None:
        self.server: Any = server

    async def on_inform(self, tx, ctx, inform, known):
        if self.server is not None:
            server, self.server = self.server, None
            await asyncio.to_thread(server.kill)
        return None


async def _runtime(own_postgres, tmp_path) -> Runtime:
    db = Database(own_postgres.url)
    try:
        await migrate.upgrade(db)
    finally:
        await db.dispose()
    return await Runtime.start(make_settings(own_postgres.url, tmp_path), migrate_sqlite=False)


async def test_a_database_that_dies_is_503_on_both_listeners_then_service_resumes(
    own_postgres, tmp_path
):
    runtime = await _runtime(own_postgres, tmp_path)
    try:
        await ensure_admin(runtime.db, "admin-password", datetime.now(UTC))
        api = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_api_app(runtime)),
            base_url="http://acs",
            auth=("admin", "admin-password"),
        )
        cpe = ServiceCpe(runtime)
        await session(cpe, "0 BOOTSTRAP", "1 BOOT")
        assert (await api.get("/api/v1/devices")).status_code == 200

        # killed in the middle of an Inform's transaction
        runtime.cwmp.policy.components = {
            "killer": KillsTheDatabase(own_postgres),
            **runtime.cwmp.policy.components,
        }
        reply = await cpe.inform("2 PERIODIC")
        assert (reply.status, dict(reply.headers)["retry-after"]) == (503, "30")
        assert reply.body == b"storage unavailable, retry later\n"
        # while it is down: both listeners say come back later
        assert (await cpe.inform("2 PERIODIC")).status == 503
        for path in ("/healthz", "/api/v1/devices", "/api/v1/tasks"):
            answer = await api.get(path)
            assert (answer.status_code, answer.headers["retry-after"]) == (503, "30"), path
            assert answer.json() == {"detail": "storage unavailable, retry later"}
        queued = await api.post(f"/api/v1/devices/{DEVICE}/tasks", json=[{"name": "Reboot"}])
        assert queued.status_code == 503
        # the file server too, whatever it looks up first (a content-bound token's file)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_cwmp_app(runtime)), base_url="http://acs"
        ) as files:
            answer = await files.get("/files/x6.bin?t=c.any")
            assert (answer.status_code, answer.headers["retry-after"]) == (503, "60")

        # back: the pools replace their dead connections, nothing of the failures was kept
        await asyncio.to_thread(own_postgres.start)
        assert (await api.get("/healthz")).status_code == 200
        assert await session(cpe, "2 PERIODIC") == []
        devices = (await api.get("/api/v1/devices")).json()
        assert devices["count"] == 1
        assert (await api.get("/api/v1/tasks")).json()["count"] == 0
        await api.aclose()
    finally:
        await runtime.close()
