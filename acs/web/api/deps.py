"""Dependencies of the management API: the runtime and who is calling."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials, HTTPBearer
from fastapi.security.http import HTTPAuthorizationCredentials

from acs.services import operators
from acs.services.operators import Principal
from acs.services.runtime import Runtime
from acs.services.throttle import FailureThrottle, source_key

log = logging.getLogger("acs.api")

_basic = HTTPBasic(auto_error=False, realm="acs", description="operator name and password")
_bearer = HTTPBearer(auto_error=False, description="an API token (acs token create)")
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="acs", Bearer'}


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


# Rows to skip in a listing: bounded so that no backend is handed more than its 64-bit
# OFFSET (2**63 and more were answered 500).
MAX_OFFSET = 2**62
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")]


def now() -> datetime:
    return datetime.now(UTC)


async def current_principal(
    request: Request,
    runtime: RuntimeDep,
    basic: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if basic is None and bearer is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "authentication required", headers=_CHALLENGE
        )
    source = source_key(request.client.host) if request.client else ""
    sign_ins: FailureThrottle = request.app.state.sign_ins
    wait = sign_ins.retry_after(source)
    if wait:
        request.state.audit = {"sign_in": "throttled"}
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many failed sign-ins from this address; retry later",
            headers={"retry-after": str(wait)},
        )
    principal = None
    if bearer is not None:
        principal = await operators.authenticate_token(runtime.db, bearer.credentials, now())
    elif basic is not None:
        principal = await operators.authenticate_password(
            runtime.db, basic.username, basic.password
        )
    if principal is None:
        _refused(request, sign_ins, source, basic.username if basic is not None else None)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "authentication required", headers=_CHALLENGE
        )
    sign_ins.succeeded(source)
    request.state.principal = principal
    return principal


def _refused(request: Request, sign_ins: FailureThrottle, source: str, name: str | None) -> None:
    """A failed sign-in: counted for its source, audited, and logged once per window."""
    failures = sign_ins.failed(source)
    who = f"operator {name!r}" if name is not None else "a token"
    request.state.audit = {"sign_in": "refused", "via": "password" if name else "token"}
    if failures == 1:
        log.warning("sign-in refused for %s from %s", who, source)
    elif failures == sign_ins.limit:
        log.warning(
            "%d failed sign-ins from %s within %.0f s (the last for %s): refused for the rest "
            "of that time",
            failures,
            source,
            sign_ins.window,
            who,
        )


def require(role: str) -> Callable[..., Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.can(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"needs the {role} role; {principal.name} is {principal.role}",
            )
        return principal

    return check


Viewer = Annotated[Principal, Depends(require("viewer"))]
OperatorRole = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]


def claimed_name(request: Request) -> str | None:
    """Who a refused request said it was (for the audit log)."""
    principal = getattr(request.state, "principal", None)
    if principal is not None:
        return str(principal.name)
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            return base64.b64decode(header[6:]).decode(errors="replace").partition(":")[0][:128]
        except (binascii.Error, ValueError):
            return None
    return None


def audit(request: Request, **detail: object) -> None:
    """Attach what a state-changing request did to its audit log entry."""
    request.state.audit = detail
