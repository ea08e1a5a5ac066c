"""/api/v1/rollouts: one task for many devices, in waves."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import ValidationError

from acs.services import rollouts
from acs.web.api.deps import Offset, OperatorRole, RuntimeDep, Viewer, audit, now
from acs.web.api.schemas import RolloutCreate, RolloutPublic, RolloutsPublic

router = APIRouter(prefix="/rollouts", tags=["rollouts"])


@router.post("", response_model=RolloutPublic, status_code=201)
async def create_rollout(
    body: RolloutCreate, request: Request, runtime: RuntimeDep, principal: OperatorRole
) -> dict[str, Any]:
    """Target every device matching ``filter`` with ``task``, ``wave_size`` at a time; stop
    when the failed share of a wave exceeds ``failure_threshold``."""
    audit(request, rollout=body.name, task=body.task.get("name"), filter=body.filter)
    try:
        rollout, poke = await rollouts.create(
            runtime.db,
            name=body.name,
            filter=body.filter,
            task=body.task,
            wave_size=body.wave_size,
            failure_threshold=body.failure_threshold,
            connection_request=body.connection_request,
            created_by=principal.name,
            now=now(),
            task_ttl=body.task_ttl or runtime.settings.task_default_ttl,
        )
    except ValidationError as exc:  # only the route knows where in the body the task was
        raise HTTPException(
            422, [{**e, "loc": ["body", "task", *e["loc"]]} for e in exc.errors(include_url=False)]
        ) from None
    runtime.notifier.pulse()
    if poke:
        runtime.spawn(runtime.connection_requests.poke_many(poke))
    return rollout


@router.get("", response_model=RolloutsPublic)
async def list_rollouts(
    runtime: RuntimeDep,
    _: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    data, count = await rollouts.list_rollouts(runtime.db, limit, offset)
    return {"data": data, "count": count}


@router.get("/{rollout_id}", response_model=RolloutPublic)
async def get_rollout(rollout_id: int, runtime: RuntimeDep, _: Viewer) -> dict[str, Any]:
    return await rollouts.get(runtime.db, rollout_id)


@router.post("/{rollout_id}/stop", response_model=RolloutPublic)
async def stop_rollout(
    rollout_id: int, request: Request, runtime: RuntimeDep, principal: OperatorRole
) -> dict[str, Any]:
    audit(request, rollout=rollout_id)
    return await rollouts.stop(runtime.db, rollout_id, now(), f"stopped by {principal.name}")
