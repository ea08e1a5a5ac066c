"""The management listener (operators): REST API under /api/v1, health and metrics."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import text

from acs import __version__
from acs.services.runtime import Runtime


def create_api_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="acs management API",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness and database reachability; no authentication."""
        async with runtime.db.read() as conn:
            await conn.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    return app
