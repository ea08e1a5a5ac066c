"""/api/v1/redirects: phones or MAC prefixes sent to another provisioning server (HTTP 302)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from acs.web.api.deps import OperatorRole, RuntimeDep, Viewer, audit, now

router = APIRouter(prefix="/redirects", tags=["provisioning"])


class RedirectBody(BaseModel):
    url: str = Field(
        description="http(s) URL; $mac is the phone's MAC; a trailing / gets the asked name"
    )


class RedirectPublic(BaseModel):
    prefix: str = Field(description="a MAC (12 hex digits) or a MAC prefix (fewer)")
    url: str
    created: Any
    created_by: str | None


@router.get("", response_model=list[RedirectPublic])
async def list_redirects(runtime: RuntimeDep, _: Viewer) -> list[dict[str, Any]]:
    return await runtime.redirects.list()


@router.put("/{prefix}", response_model=RedirectPublic)
async def put_redirect(
    prefix: str, body: RedirectBody, request: Request, runtime: RuntimeDep, who: OperatorRole
) -> dict[str, Any]:
    """Send a phone (its MAC) or every phone of a MAC prefix elsewhere: its requests for
    provisioning files over HTTP(S) get a 302 there (the longest prefix wins)."""
    audit(request, redirect=prefix, url=body.url)
    return await runtime.redirects.put(prefix, body.url, by=who.name, now=now())


@router.get("/{prefix}", response_model=RedirectPublic)
async def get_redirect(prefix: str, runtime: RuntimeDep, _: Viewer) -> dict[str, Any]:
    return await runtime.redirects.get(prefix)


@router.delete("/{prefix}", status_code=204)
async def delete_redirect(
    prefix: str, request: Request, runtime: RuntimeDep, _: OperatorRole
) -> Response:
    audit(request, redirect=prefix)
    await runtime.redirects.delete(prefix)
    return Response(status_code=204)
