"""The management listener (operators): REST API under /api/v1, health and metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import text

from acs import __version__
from acs.services import devices as devices_service
from acs.services import metrics, operators
from acs.services.runtime import Runtime
from acs.web.api.deps import claimed_name, now, require
from acs.web.api.routes import devices, faults, files, provisioning, rollouts, tasks
from acs.web.api.routes import operators as operator_routes

_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def create_api_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="acs management API",
        version=__version__,
        description="Operators drive the ACS here: devices, tasks (TR-069 RPCs), faults, "
        "operators and tokens. Authenticate with HTTP Basic (operator name and password) or "
        "`Authorization: Bearer <token>`.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.runtime = runtime

    @app.exception_handler(devices_service.DeviceNotFound)
    async def device_not_found(
        _request: Request, exc: devices_service.DeviceNotFound
    ) -> JSONResponse:
        return JSONResponse({"detail": f"no device {exc.args[0]!r}"}, status_code=404)

    @app.middleware("http")
    async def audit_log(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Every state-changing request is written down: who, what, when, outcome."""
        response = await call_next(request)
        if request.method in _STATE_CHANGING and request.url.path.startswith("/api/"):
            client = request.client.host if request.client else None
            await operators.record_audit(
                runtime.db,
                now=now(),
                operator=claimed_name(request),
                method=request.method,
                path=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
                status=response.status_code,
                client=client,
                detail=getattr(request.state, "audit", None),
            )
        return response

    @app.get("/healthz", tags=["system"])
    async def healthz() -> dict[str, str]:
        """Liveness and database reachability; no authentication."""
        async with runtime.db.read() as conn:
            await conn.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    metrics_deps = [] if runtime.settings.metrics_public else [Depends(require("viewer"))]

    @app.get(
        "/metrics", tags=["system"], response_class=PlainTextResponse, dependencies=metrics_deps
    )
    async def prometheus() -> PlainTextResponse:
        """Prometheus text format (needs a viewer unless ACS_METRICS_PUBLIC=true)."""
        body = await metrics.render(runtime.db, now(), runtime.counters)
        return PlainTextResponse(body, media_type="text/plain; version=0.0.4")

    for router in (
        devices.router,
        tasks.router,
        faults.router,
        files.router,
        rollouts.router,
        provisioning.router,
        operator_routes.router,
    ):
        app.include_router(router, prefix="/api/v1")
    return app
