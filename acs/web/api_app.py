"""The management listener (operators): REST API under /api/v1, health and metrics."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Final

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from acs import __version__
from acs.db.errors import UNAVAILABLE, InsufficientStorage, is_disk_full
from acs.provisioning.errors import ProvisioningError
from acs.services import errors, metrics, operators
from acs.services.files import FileTooLarge
from acs.services.runtime import Runtime
from acs.services.throttle import FailureThrottle
from acs.web import access, console
from acs.web.api.deps import claimed_name, now, require
from acs.web.api.routes import (
    devices,
    events,
    faults,
    files,
    presets,
    provisioning,
    redirects,
    rollouts,
    tasks,
    webhooks,
)
from acs.web.api.routes import operators as operator_routes
from acs.web.api.validation import explain, json_content_type

log = logging.getLogger("acs.api")

_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What a refusal of a service is answered with, its message as the detail. Starlette picks
# the handler of the nearest class in the exception's MRO, so a subclass listed here answers
# differently from its base.
REFUSALS: Final[dict[type[Exception], int]] = {
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Invalid: 422,
    FileTooLarge: 413,  # a FileError, but Content Too Large (RFC 9110 15.5.14)
    # acs/provisioning is layer 0 and imports nothing of acs, so its one error cannot derive
    # from Invalid; it means the same: what an operator wrote cannot be served.
    ProvisioningError: 422,
}


STORAGE_RETRY_AFTER = 30


async def _unavailable(request: Request, exc: Exception) -> Response:
    """The database out of reach, its pool exhausted, the disk failing: come back later. A
    change refused for a full disk is 507 Insufficient Storage, saying so."""
    if is_disk_full(exc) and request.method in _STATE_CHANGING:
        return _insufficient_storage(request, exc)
    log.error("storage unavailable for %s %s: %s", request.method, request.url.path, exc)
    if console.is_console(request):
        page = console.render_refusal(request, 503, "Storage unavailable; retry in a moment.")
        page.headers["retry-after"] = str(STORAGE_RETRY_AFTER)
        return page
    return JSONResponse(
        {"detail": "storage unavailable, retry later"},
        status_code=503,
        headers={"retry-after": str(STORAGE_RETRY_AFTER)},
    )


def _insufficient_storage(request: Request, exc: Exception) -> Response:
    log.error("disk full: %s %s refused: %s", request.method, request.url.path, exc)
    detail = (
        str(exc)
        if isinstance(exc, InsufficientStorage)
        else "insufficient storage: the database's disk is full; free space and retry"
    )
    if console.is_console(request):
        page: Response = console.render_refusal(request, 507, detail)
    else:
        page = JSONResponse({"detail": detail}, status_code=507)
    page.headers["retry-after"] = str(STORAGE_RETRY_AFTER)
    return page


def _refused(status_code: int) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def answer(request: Request, exc: Exception) -> Response:
        if console.is_console(request):  # the console shows the same refusal as a page
            return console.render_refusal(request, status_code, str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=status_code)

    return answer


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """422 with one error per mistake (``acs.web.api.validation``), not pydantic's dump."""
    assert isinstance(exc, RequestValidationError)
    json_sent = json_content_type(request.headers.get("content-type"))
    detail = explain(exc.errors(), exc.body, json_sent=json_sent)
    if console.is_console(request):
        message = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in detail)
        return console.render_refusal(request, 422, message)
    return JSONResponse({"detail": detail}, status_code=422)


async def _http_refusal(request: Request, exc: Exception) -> Response:
    """FastAPI's own answer, or a page for the console (its 403s and 404s)."""
    assert isinstance(exc, StarletteHTTPException)
    if console.is_console(request) and exc.status_code >= 400:
        return console.render_refusal(request, exc.status_code, str(exc.detail))
    return await http_exception_handler(request, exc)


# The interactive docs' scripts and styles, served by acs from the fastapi-offline package
# (no CDN: the docs work on a network without internet).
DOCS_ASSETS = "/api/v1/docs/assets"


def _api_line(
    scope: access.Scope, status: int, sent: int, ms: float
) -> tuple[int, str, dict[str, Any]]:
    """The access log's line: a health check that answers is DEBUG (load balancers poll it)."""
    quiet = scope.get("path") == "/healthz" and status < 400
    return (
        logging.DEBUG if quiet else logging.INFO,
        "api request",
        {
            "method": scope.get("method"),
            "path": access.path_and_query(scope),
            "status": status,
            "operator": claimed_name(Request(scope)),
            "client": access.client(scope),
            "duration_ms": ms,
        },
    )


def create_api_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="acs management API",
        version=__version__,
        description="Operators drive the ACS here: devices, tasks (TR-069 RPCs), faults, "
        "operators and tokens. Authenticate with HTTP Basic (operator name and password) or "
        "`Authorization: Bearer <token>`.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # served below with assets of our own
        redoc_url=None,
    )
    app.state.runtime = runtime
    # failed sign-ins per source address, for this worker process (acs.services.throttle)
    app.state.sign_ins = FailureThrottle(limit=10, window=60.0)

    for refusal, status_code in REFUSALS.items():
        app.add_exception_handler(refusal, _refused(status_code))
    for failure in UNAVAILABLE:
        app.add_exception_handler(failure, _unavailable)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_refusal)

    @app.middleware("http")
    async def audit_log(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Every state-changing request is written down: who, what, when, outcome; so is every
        refused sign-in, whatever the method."""
        response = await call_next(request)
        signing_in = getattr(request.state, "audit", {}).get("sign_in") is not None
        # the API's requests and the console's forms alike
        if request.method in _STATE_CHANGING or signing_in:
            client = request.client.host if request.client else None
            try:
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
            except UNAVAILABLE as exc:
                # The request's own answer stands (a refusal, or a change already committed);
                # that its audit entry could not be written is said where an operator looks.
                log.error(
                    "audit entry not written (storage unavailable): %s %s by %s answered %d: %s",
                    request.method,
                    request.url.path,
                    claimed_name(request),
                    response.status_code,
                    exc,
                )
        return response

    # Outermost, so that the line times the audit log's write too; requests enter here.
    app.add_middleware(access.AccessLog, logger=log, describe=_api_line, request_ids=True)

    @app.get("/healthz", tags=["system"])
    async def healthz() -> dict[str, Any]:
        """Liveness and database reachability; no authentication. ``details``: the STUN
        server and the XMPP session, when on; their trouble is reported there, never as
        an unhealthy node (CWMP does not depend on them)."""
        async with runtime.db.read() as conn:
            await conn.execute(text("SELECT 1"))
        answer: dict[str, Any] = {"status": "ok", "version": __version__}
        details: dict[str, Any] = {}
        if runtime.stun is not None:
            details["stun"] = runtime.stun.health()
        if runtime.xmpp is not None:
            details["xmpp"] = await runtime.xmpp.health()
        if details:
            answer["details"] = details
        return answer

    metrics_deps = [] if runtime.settings.metrics_public else [Depends(require("viewer"))]

    @app.get(
        "/metrics", tags=["system"], response_class=PlainTextResponse, dependencies=metrics_deps
    )
    async def prometheus(request: Request) -> Response:
        """Prometheus text format, or OpenMetrics when the scraper asks for it; every worker's
        counts (needs a viewer unless ACS_METRICS_PUBLIC=true)."""
        fleet = await metrics.fleet(runtime.db, now())
        body, content_type = metrics.render(fleet, request.headers.get("accept"))
        return Response(body, media_type=content_type)

    assets = resources.files("fastapi_offline") / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get("/api/v1/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/api/v1/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        )

    @app.get("/api/v1/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/api/v1/openapi.json",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    for router in (
        devices.router,
        tasks.router,
        faults.router,
        files.router,
        rollouts.router,
        provisioning.router,
        operator_routes.router,
        events.router,
        webhooks.router,
        redirects.router,
        presets.router,
    ):
        app.include_router(router, prefix="/api/v1")
    console.mount(app)  # after the API: its pages never shadow an API route
    return app
