"""/api/v1/operators, /api/v1/tokens, /api/v1/audit, /api/v1/me."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response

from acs.services import operators
from acs.services.operators import Principal
from acs.web.api.deps import Admin, Offset, RuntimeDep, Viewer, audit, now
from acs.web.api.schemas import (
    AuditsPublic,
    MePublic,
    OperatorCreate,
    OperatorPublic,
    OperatorUpdate,
    TokenCreate,
    TokenCreated,
    TokenPublic,
)

router = APIRouter(tags=["operators"])


@router.get("/me", response_model=MePublic)
async def me(principal: Viewer) -> Principal:
    return principal


@router.get("/operators", response_model=list[OperatorPublic])
async def list_operators(runtime: RuntimeDep, _: Admin) -> list[dict[str, Any]]:
    return await operators.list_operators(runtime.db)


@router.post("/operators", response_model=OperatorPublic, status_code=201)
async def create_operator(
    body: OperatorCreate, request: Request, runtime: RuntimeDep, _: Admin
) -> dict[str, Any]:
    audit(request, operator=body.name, role=body.role)
    return await operators.create_operator(runtime.db, body.name, body.role, body.password, now())


@router.patch("/operators/{name}", response_model=OperatorPublic)
async def update_operator(
    name: str, body: OperatorUpdate, request: Request, runtime: RuntimeDep, _: Admin
) -> dict[str, Any]:
    audit(
        request,
        operator=name,
        role=body.role,
        disabled=body.disabled,
        password_changed=body.password is not None,
    )
    return await operators.update_operator(
        runtime.db, name, role=body.role, password=body.password, disabled=body.disabled
    )


@router.delete("/operators/{name}", status_code=204)
async def delete_operator(name: str, request: Request, runtime: RuntimeDep, _: Admin) -> Response:
    audit(request, operator=name)
    await operators.delete_operator(runtime.db, name)
    return Response(status_code=204)


@router.get("/tokens", response_model=list[TokenPublic])
async def list_tokens(runtime: RuntimeDep, principal: Viewer) -> list[dict[str, Any]]:
    """All tokens for admins; one's own for everybody else."""
    mine = None if principal.can("admin") else principal.name
    return await operators.list_tokens(runtime.db, mine)


@router.post("/tokens", response_model=TokenCreated, status_code=201)
async def create_token(
    body: TokenCreate, request: Request, runtime: RuntimeDep, principal: Viewer
) -> dict[str, Any]:
    owner = body.operator or principal.name
    if owner != principal.name and not principal.can("admin"):
        raise HTTPException(403, "only admins create tokens for other operators")
    if principal.via == "token":
        # A token makes tokens that die no later than itself; only a password makes one
        # that lives longer (a stolen short-lived token must not mint a lasting one).
        if body.ttl_seconds is None:
            raise HTTPException(403, "a token can create only tokens that expire: give ttl_seconds")
        if principal.expires is not None:
            left = int((principal.expires - now()).total_seconds())
            if body.ttl_seconds > left:
                raise HTTPException(
                    403,
                    f"a token can create only tokens that expire no later than itself: "
                    f"ttl_seconds at most {max(left, 0)}",
                )
    audit(request, operator=owner, token=body.name)
    token, record = await operators.create_token(
        runtime.db, owner, body.name, now(), body.ttl_seconds
    )
    return {**record, "token": token}


@router.delete("/tokens/{token_id}", status_code=204)
async def revoke_token(
    token_id: int, request: Request, runtime: RuntimeDep, principal: Viewer
) -> Response:
    audit(request, token=token_id)
    await operators.revoke_token(
        runtime.db, token_id, None if principal.can("admin") else principal.name
    )
    return Response(status_code=204)


@router.get("/audit", response_model=AuditsPublic)
async def list_audit(
    runtime: RuntimeDep,
    _: Admin,
    operator: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    data, count = await operators.list_audit(
        runtime.db, operator=operator, limit=limit, offset=offset
    )
    return {"data": data, "count": count}
