"""/api/v1/presets: declarative presets (operators write them, viewers read them), dry-run."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from acs.services.presets import PresetSpec
from acs.web.api.deps import OperatorRole, RuntimeDep, Viewer, audit, now
from acs.web.api.schemas import PresetDryRun, PresetPublic, PresetsPublic, PresetUpdate

router = APIRouter(prefix="/presets", tags=["presets"])


@router.post("", response_model=PresetPublic, status_code=201)
async def create_preset(
    body: PresetSpec, request: Request, runtime: RuntimeDep, principal: OperatorRole
) -> dict[str, Any]:
    """A preset, in force from the matching devices' next Inform."""
    audit(request, preset=body.name)
    return await runtime.presets.create(body, now=now(), created_by=principal.name)


@router.get("", response_model=PresetsPublic)
async def list_presets(runtime: RuntimeDep, _: Viewer) -> dict[str, Any]:
    """Every preset, in the order they act (weight, then id)."""
    return {"data": await runtime.presets.list_all()}


@router.get("/{name}", response_model=PresetPublic)
async def get_preset(name: str, runtime: RuntimeDep, _: Viewer) -> dict[str, Any]:
    return await runtime.presets.get(name)


@router.patch("/{name}", response_model=PresetPublic)
async def update_preset(
    name: str, body: PresetUpdate, request: Request, runtime: RuntimeDep, _: OperatorRole
) -> dict[str, Any]:
    changes = body.model_dump(exclude_none=True)
    if changes.get("schedule") == "":
        changes["schedule"] = None
    audit(request, preset=name, changed=sorted(changes))
    return await runtime.presets.update(name, changes, now=now())


@router.delete("/{name}", status_code=204)
async def delete_preset(
    name: str, request: Request, runtime: RuntimeDep, _: OperatorRole
) -> Response:
    audit(request, preset=name)
    await runtime.presets.delete(name)
    return Response(status_code=204)


@router.get("/{name}/dry-run", response_model=PresetDryRun)
async def dry_run(
    name: str,
    runtime: RuntimeDep,
    _: Viewer,
    device_id: Annotated[str | None, Query(description="what it would do on this device")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Which devices it matches (a count and the first page), and, for ``device_id``, what
    a session would do there now. Nothing is written."""
    return await runtime.presets.dry_run(name, now=now(), device_id=device_id, limit=limit)
