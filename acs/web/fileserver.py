"""What CPEs GET from the CPE-facing listener: stored files and phone configurations.

``/files/<name>`` and ``/prov/<anything>/<name>`` both serve the one namespace of
``acs.services.provisioning_files``, the same that TFTP and FTP serve: a stored file under its
name (HEAD, Range with 206, ETag/If-None-Match with 304), else a phone configuration as static
provisioning asks for it (DHCP option 66, a typed URL): the general file of a model
(``F0V00X600000.cfg``), the MAC-named file (``001565113af8.cfg``), a user-named file or
``$input`` id (``name.cfg``), text or XML by extension, encrypted when its profile has a key.

Access: a signed URL (``t=``, handed out by the ACS, bound to the path it was made for) or
credentials (``ACS_PROVISIONING_AUTH``: Digest by default; Basic over HTTPS, and over HTTP
with ``ACS_PROVISIONING_ALLOW_BASIC_OVER_HTTP``): the shared pair or a phone's own. Which
files each may have is ``provisioning_files.may_read``'s decision. A wrong or expired token
gets 403 and nothing else: not whether the file exists, not its size. Nothing is looked up
or rendered before the request is authorised, except the credentials of the username it
gives and the stored file a content-bound token (``c.``) must be checked against.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any, Final

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse

from acs.cwmp import digest
from acs.db.errors import UNAVAILABLE
from acs.provisioning.errors import ProvisioningError
from acs.services.provisioning_files import (
    OPEN,
    SIGNED,
    BadName,
    NoSuchFile,
    NotYours,
    Outcome,
    Redirected,
    Requester,
    Transfer,
    count,
)
from acs.services.runtime import Runtime
from acs.web import access

log = logging.getLogger("acs.files")
_BINDING = "file-server"  # Digest nonces of the file server are bound to it, not a device
RETRY_AFTER: Final = 60
# How a transfer ended, by the status it was answered.
_OUTCOMES: Final = {
    200: Outcome.OK,
    206: Outcome.OK,
    302: Outcome.REDIRECTED,
    304: Outcome.NOT_MODIFIED,
    401: Outcome.REFUSED,
    403: Outcome.REFUSED,
    404: Outcome.NOT_FOUND,
    416: Outcome.INVALID,
    422: Outcome.INVALID,
    503: Outcome.UNAVAILABLE,
}


def add_file_routes(app: FastAPI, runtime: Runtime) -> None:
    settings = runtime.settings
    resolver = runtime.provisioning_files

    async def authorize(request: Request, path: str, sha256: str | None) -> Requester | Response:
        """Who asks for ``path``; else the 401/403 to send.

        Raises:
            StorageError (and the drivers' errors): the phones' credentials could not be read.
        """
        token = request.query_params.get("t")
        if token is not None:
            if runtime.files.check_token(token, path, now=time.time(), sha256=sha256):
                _note(request, auth="signed url")
                return SIGNED
            _note(request, auth="refused: bad or expired signed url")
            return Response("forbidden\n", status_code=403, media_type="text/plain")
        if settings.provisioning_auth == "none":
            _note(request, auth="none")
            return OPEN
        header = request.headers.get("authorization")
        parsed = digest.parse_authorization(header)
        found = await resolver.credentials(parsed.username) if parsed is not None else None
        asked: dict[str, Any] = {
            "method": request.method,
            "path": request.url.path,
            "tls": request.url.scheme == "https",
            "credentials": found.credentials if found is not None else None,
            "binding": _BINDING,
            "now": time.time(),
        }
        authenticator = resolver.authenticator
        if authenticator.strict:  # a nonce count seen before is a replay: counts are kept
            async with runtime.db.hot_write() as tx:
                outcome = await authenticator.authenticate(tx, header, **asked)
        else:
            outcome = authenticator.check(header, **asked)
        if outcome.ok and found is not None:
            _note(request, auth=f"{outcome.scheme} {found.requester}")
            return found.requester
        _note(
            request,
            auth=f"refused: {outcome.reason if not outcome.ok else 'unknown username'}",
            challenge=outcome.expected,
        )
        response = Response("authentication required\n", status_code=401, media_type="text/plain")
        for value in outcome.challenge:
            response.headers.append("www-authenticate", value)
        return response

    async def serve(request: Request, prefix: str, path: str) -> Response:
        full = prefix + path
        _note(request, file=full)
        sha256 = None
        try:
            if request.query_params.get("t", "").startswith("c."):
                try:
                    meta = await resolver.stored(path)
                except BadName:
                    meta = None
                sha256 = meta.sha256 if meta is not None else None
            requester = await authorize(request, full, sha256)
        except UNAVAILABLE as exc:
            return _unavailable(full, exc)
        if isinstance(requester, Response):
            if requester.status_code == 401:  # a phone sent elsewhere has no credentials here
                try:
                    location = await resolver.redirect_for(path, request.url.query)
                except UNAVAILABLE as exc:
                    return _unavailable(full, exc)
                if location is not None:
                    return _redirect(request, location)
            return requester
        base = settings.public_url or f"{request.url.scheme}://{request.headers.get('host')}"
        try:
            found = await resolver.open(
                path,
                query=request.url.query,
                base_url=base.rstrip("/"),
                now=datetime.now(UTC),
                requester=requester,
                redirect=True,
            )
        except Redirected as exc:
            return _redirect(request, exc.location)
        except NotYours as exc:
            _note(request, reason=f"{requester} may not read this MAC file")
            return _text(404, str(exc))
        except NoSuchFile as exc:
            return _text(404, str(exc))
        except BadName as exc:
            return _text(422, str(exc))
        except ProvisioningError as exc:
            log.warning("provisioning %s: %s", full, exc)
            _note(request, reason=str(exc))
            return _text(422, str(exc))
        except UNAVAILABLE as exc:
            return _unavailable(full, exc)
        if found.mac is not None or requester.mac is not None:  # the device, when known
            _note(request, mac=found.mac or requester.mac)
        etag = f'"{found.etag}"'
        if etag in [v.strip() for v in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers={"etag": etag})
        if found.path is not None:
            return FileResponse(found.path, media_type=found.content_type, headers={"etag": etag})
        assert found.content is not None and found.version is not None
        return Response(
            found.content,
            media_type=found.content_type,
            headers={"etag": etag, "x-config-version": found.version},
        )

    async def serve_file(name: str, request: Request) -> Response:
        return await serve(request, "/files/", name)

    async def serve_config(path: str, request: Request) -> Response:
        return await serve(request, "/prov/", path)

    def transfer_line(
        scope: access.Scope, status: int, sent: int, ms: float
    ) -> tuple[int, str, dict[str, Any]] | None:
        """One line and one count per request for a file; the Digest challenge that comes
        first is a DEBUG line, not counted."""
        noted = scope["state"].get("transfer")
        if noted is None:  # not a file: another GET on the CPE-facing listener
            return logging.DEBUG, "request", {"method": scope.get("method"), "status": status}
        transfer = Transfer(
            protocol="https" if scope.get("scheme") == "https" else "http",
            file=noted.get("file"),
            client=access.client(scope),
            method=str(scope.get("method")),
            outcome=_OUTCOMES.get(status, Outcome.ERROR),
            status=status,
            bytes=sent,
            duration_ms=ms,
            mac=noted.get("mac"),
            auth=noted.get("auth"),
            reason=noted.get("reason"),
        )
        if noted.get("challenge"):
            return logging.DEBUG, "file transfer", transfer.fields()
        count(transfer)
        return logging.INFO, "file transfer", transfer.fields()

    app.add_middleware(access.AccessLog, logger=log, describe=transfer_line)
    app.add_api_route("/files/{name}", serve_file, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route(
        "/prov/{path:path}", serve_config, methods=["GET", "HEAD"], include_in_schema=False
    )


def _redirect(request: Request, location: str) -> Response:
    _note(request, reason=f"redirected to {location}", challenge=False)
    return Response(status_code=302, headers={"location": location})


def _unavailable(full: str, exc: Exception) -> Response:
    log.error("file %s: storage unavailable: %s", full, exc)
    return Response(
        "storage unavailable, retry later\n",
        status_code=503,
        media_type="text/plain",
        headers={"retry-after": str(RETRY_AFTER)},
    )


def _text(status: int, message: str) -> Response:
    return Response(f"{message}\n", status_code=status, media_type="text/plain")


def _note(request: Request, **values: object) -> None:
    """What the transfer's log line says besides status, bytes and time (``transfer_line``)."""
    transfer = getattr(request.state, "transfer", None)
    if transfer is None:
        transfer = request.state.transfer = {}
    transfer.update(values)
