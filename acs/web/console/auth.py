"""Who is using the console: the session cookie, the role each page and action needs, CSRF.

The cookie holds a random token (``services/console_sessions``); it is HttpOnly, SameSite=Lax,
and Secure when the request came over TLS. Every POST carries the session's CSRF token (a
form field, or the ``X-CSRF-Token`` header for the few requests our JavaScript sends) and,
when the browser says where it comes from, an Origin of this listener; both are checked
before the handler runs. The role is checked here, on the server, for every request: what a
page leaves out is only a convenience.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Annotated, Final
from urllib.parse import quote, urlsplit

from fastapi import Depends, HTTPException, Request, status

from acs.cwmp import digest
from acs.services import console_sessions
from acs.services.console_sessions import Lifetime
from acs.services.operators import Principal
from acs.services.runtime import Runtime

COOKIE: Final = "acs_console"
CSRF_FIELD: Final = "csrf"
CSRF_HEADER: Final = "x-csrf-token"


class SignInNeeded(Exception):
    """No live session: pages send the browser to the sign-in page, other requests get 401."""


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def lifetime(runtime: Runtime) -> Lifetime:
    return Lifetime(runtime.settings.console_idle_timeout, runtime.settings.console_session_max)


def csrf_token(runtime: Runtime, session_id: str) -> str:
    return hmac.new(runtime.console_key, session_id.encode(), hashlib.sha256).hexdigest()


def now() -> datetime:
    return datetime.now(UTC)


async def signed_in(request: Request) -> Principal:
    """The operator of this request's session (``request.state``: principal, csrf)."""
    runtime = runtime_of(request)
    token = request.cookies.get(COOKIE)
    found = (
        await console_sessions.resume(runtime.db, token, now(), lifetime(runtime))
        if token
        else None
    )
    if found is None:
        raise SignInNeeded
    request.state.principal = found.principal
    request.state.csrf = csrf_token(runtime, found.session_id)
    if request.method == "POST":
        await _check_post(request, request.state.csrf)
    return found.principal


async def _check_post(request: Request, expected: str) -> None:
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        host = request.headers.get("host", "")
        if urlsplit(origin).netloc != host:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-origin request refused")
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not given or not digest.equal(given, expected):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "the form's security token is missing or stale; reload"
        )


def need(role: str) -> object:
    async def check(principal: Annotated[Principal, Depends(signed_in)]) -> Principal:
        if not principal.can(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"needs the {role} role; {principal.name} is {principal.role}",
            )
        return principal

    return Depends(check)


ViewerUser = Annotated[Principal, need("viewer")]
OperatorUser = Annotated[Principal, need("operator")]
AdminUser = Annotated[Principal, need("admin")]


def sign_in_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login?next=" + quote(target, safe="")


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this listener only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
