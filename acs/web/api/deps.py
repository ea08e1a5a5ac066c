"""Dependencies of the management API: the runtime and who is calling."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials, HTTPBearer
from fastapi.security.http import HTTPAuthorizationCredentials

from acs.services import operators
from acs.services.operators import Principal
from acs.services.runtime import Runtime

_basic = HTTPBasic(auto_error=False, realm="acs", description="operator name and password")
_bearer = HTTPBearer(auto_error=False, description="an API token (acs token create)")
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="acs", Bearer'}


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def now() -> datetime:
    return datetime.now(UTC)


async def current_principal(
    request: Request,
    runtime: RuntimeDep,
    basic: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    principal = None
    if bearer is not None:
        principal = await operators.authenticate_token(runtime.db, bearer.credentials, now())
    elif basic is not None:
        principal = await operators.authenticate_password(
            runtime.db, basic.username, basic.password
        )
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "authentication required", headers=_CHALLENGE
        )
    request.state.principal = principal
    return principal


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
