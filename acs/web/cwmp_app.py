"""The CPE-facing listener: CWMP over HTTP(S) on any path (POST), files and phone
configurations (GET, see ``acs.web.fileserver``)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from sqlalchemy.exc import DBAPIError

from acs.services.cwmp import HttpReply, HttpRequest
from acs.services.runtime import Runtime
from acs.web.body import BadEncoding, BodyTooLarge, read_body
from acs.web.fileserver import add_file_routes

log = logging.getLogger("acs.cwmp")


def create_cwmp_app(runtime: Runtime) -> FastAPI:
    """The CWMP endpoint. CPEs POST to whatever URL they were given; all paths work."""
    app = FastAPI(title="acs CWMP endpoint", openapi_url=None, docs_url=None, redoc_url=None)
    settings = runtime.settings
    service = runtime.cwmp
    inflight = 0

    async def cwmp(request: Request) -> Response:
        response = await _serve(request)
        runtime.counters.cwmp_response(response.status_code)
        return response

    async def _serve(request: Request) -> Response:
        nonlocal inflight
        if inflight >= settings.cwmp_max_inflight:
            # Overload (a boot storm): tell the CPE when to retry instead of queueing it.
            return _plain(503, "busy, retry later", {"retry-after": "10"})
        inflight += 1
        try:
            try:
                body = await read_body(request, settings.cwmp_max_body_bytes)
            except BodyTooLarge as exc:
                return _plain(413, str(exc), {"connection": "close"})
            except BadEncoding as exc:
                return _plain(400, str(exc))
            client = request.client
            reply = await service.handle(
                HttpRequest(
                    method=request.method,
                    path=request.url.path,
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=body,
                    peer_host=client.host if client else "",
                    peer_port=client.port if client else 0,
                    tls=request.url.scheme == "https",
                )
            )
        except (DBAPIError, TimeoutError, OSError) as exc:
            log.error("storage unavailable: %s", exc)
            return _plain(503, "storage unavailable, retry later", {"retry-after": "30"})
        finally:
            inflight -= 1
        return _response(reply)

    add_file_routes(app, runtime)
    app.add_api_route("/", cwmp, methods=["POST"], include_in_schema=False)
    app.add_api_route("/{path:path}", cwmp, methods=["POST"], include_in_schema=False)
    return app


def _plain(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    return Response(text + "\n", status_code=status, media_type="text/plain", headers=headers)


def _response(reply: HttpReply) -> Response:
    response = Response(reply.body, status_code=reply.status)
    for name, value in reply.headers:
        response.headers.append(name, value)
    return response
