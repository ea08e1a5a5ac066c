"""What CPEs GET from the CPE-facing listener: stored files and phone configurations.

``/files/<name>``: a stored file, with HEAD, Range (206) and ETag/If-None-Match (304).
``/prov/<anything>/<file>``: a phone's configuration file as static provisioning serves it
(DHCP option 66, a typed URL): the general file of a model (``F0V00X600000.cfg``), the
MAC-named file (``001565113af8.cfg``), a user-named file or ``$input`` id (``name.cfg``),
text or XML by extension, encrypted when its profile has a key.

Access: a signed URL (``t=``, handed out by the ACS) or credentials like the CWMP
endpoint's (``ACS_PROVISIONING_AUTH``: Digest by default, with the shared pair or a
device's own). A wrong or expired token gets 403 and nothing else: not whether the file
exists, not its size.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse

from acs.provisioning import models as phone_models
from acs.provisioning.errors import ProvisioningError
from acs.services import files, metrics, provisioning
from acs.services.runtime import Runtime
from acs.web import access

log = logging.getLogger("acs.files")
_BINDING = "file-server"  # Digest nonces of the file server are bound to it, not a device


def add_file_routes(app: FastAPI, runtime: Runtime) -> None:
    settings = runtime.settings

    def authorize(request: Request, path: str, sha256: str | None) -> Response | None:
        """None if the request may have ``path``; else the 401/403 to send."""
        token = request.query_params.get("t")
        if token is not None:
            if runtime.files.check_token(token, path, now=time.time(), sha256=sha256):
                _note(request, auth="signed url")
                return None
            _note(request, auth="refused: bad or expired signed url")
            return Response("forbidden\n", status_code=403, media_type="text/plain")
        if settings.provisioning_auth == "none":
            _note(request, auth="none")
            return None
        outcome = runtime.authenticator.check(
            request.headers.get("authorization"),
            method=request.method,
            path=request.url.path,
            tls=request.url.scheme == "https",
            credentials=None,
            binding=_BINDING,
            now=time.time(),
        )
        if outcome.ok:
            _note(request, auth=outcome.scheme)
            return None
        _note(request, auth=f"refused: {outcome.reason}", challenge=outcome.expected)
        response = Response("authentication required\n", status_code=401, media_type="text/plain")
        for value in outcome.challenge:
            response.headers.append("www-authenticate", value)
        return response

    async def serve_file(name: str, request: Request) -> Response:
        path = f"/files/{name}"
        _note(request, file=path)
        try:
            meta = await runtime.files.get(name)
        except files.FileNotFound:
            meta = None
        refused = authorize(request, path, meta.sha256 if meta else None)
        if refused is not None:
            return refused
        if meta is None:
            return Response("no such file\n", status_code=404, media_type="text/plain")
        etag = f'"{meta.sha256}"'
        if etag in [v.strip() for v in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers={"etag": etag})
        blob = runtime.files.blob_path(meta.sha256)
        if not blob.exists():
            log.error("file %s: content %s missing from %s", name, meta.sha256, blob)
            return Response(
                "file content unavailable\n",
                status_code=503,
                media_type="text/plain",
                headers={"retry-after": "60"},
            )
        return FileResponse(blob, media_type=meta.content_type, headers={"etag": etag})

    async def serve_config(path: str, request: Request) -> Response:
        full = "/prov/" + path
        _note(request, file=full)
        refused = authorize(request, full, None)
        if refused is not None:
            return refused
        try:
            wanted = phone_models.resolve(path, request.url.query)
            if isinstance(wanted, phone_models.MacFile):
                _note(request, mac=wanted.mac)
            base = settings.public_url or f"{request.url.scheme}://{request.headers.get('host')}"
            rendered = await runtime.provisioning.render(
                wanted, base_url=base.rstrip("/"), now=datetime.now(UTC)
            )
        except provisioning.NotFound as exc:
            return Response(f"{exc}\n", status_code=404, media_type="text/plain")
        except ProvisioningError as exc:
            log.warning("provisioning %s: %s", full, exc)
            return Response(f"{exc}\n", status_code=422, media_type="text/plain")
        etag = f'"{rendered.version}"'
        if etag in [v.strip() for v in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers={"etag": etag})
        return Response(
            rendered.content,
            media_type=rendered.content_type,
            headers={"etag": etag, "x-config-version": rendered.version},
        )

    app.add_middleware(access.AccessLog, logger=log, describe=_transfer_line)
    app.add_api_route("/files/{name}", serve_file, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route(
        "/prov/{path:path}", serve_config, methods=["GET", "HEAD"], include_in_schema=False
    )


def _note(request: Request, **values: object) -> None:
    """What the transfer's log line says besides status, bytes and time (``_transfer_line``)."""
    transfer = getattr(request.state, "transfer", None)
    if transfer is None:
        transfer = request.state.transfer = {}
    transfer.update(values)


def _transfer_line(
    scope: access.Scope, status: int, sent: int, ms: float
) -> tuple[int, str, dict[str, Any]] | None:
    """One line per request for a file, and its count; the Digest challenge that comes first
    is DEBUG and not counted (it is the protocol's first step, not a refusal)."""
    transfer = scope["state"].get("transfer")
    if transfer is None:  # not a file: another GET on the CPE-facing listener
        return logging.DEBUG, "request", {"method": scope.get("method"), "status": status}
    protocol = "https" if scope.get("scheme") == "https" else "http"
    challenge = bool(transfer.get("challenge"))
    if not challenge:
        metrics.FILE_TRANSFERS.labels(protocol, _outcome(status)).inc()
        if sent:
            metrics.FILE_BYTES.labels(protocol).inc(sent)
    return (
        logging.DEBUG if challenge else logging.INFO,
        "file transfer",
        {
            "protocol": protocol,
            "file": transfer.get("file"),
            "mac": transfer.get("mac"),
            "client": access.client(scope),
            "method": scope.get("method"),
            "status": status,
            "bytes": sent,
            "duration_ms": ms,
            "auth": transfer.get("auth"),
        },
    )


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "refused"
    return "missing" if status == 404 else "failed"
