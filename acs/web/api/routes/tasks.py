"""/api/v1/tasks: every task, cancel, retry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from acs.services import tasks
from acs.web.api.deps import Offset, OperatorRole, RuntimeDep, Viewer, audit, now
from acs.web.api.schemas import TaskPublic, TasksPublic

router = APIRouter(prefix="/tasks", tags=["tasks"])


@router.get("", response_model=TasksPublic)
async def list_tasks(
    runtime: RuntimeDep,
    _: Viewer,
    device_id: str | None = None,
    status: Annotated[str | None, Query(description=", ".join(tasks.STATUSES))] = None,
    name: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    if status is not None and status not in tasks.STATUSES:
        raise HTTPException(422, f"status must be one of {list(tasks.STATUSES)}")
    data, count = await tasks.list_tasks(
        runtime.db, device_id=device_id, status=status, name=name, limit=limit, offset=offset
    )
    return {"data": data, "count": count}


@router.get("/{task_id}", response_model=TaskPublic)
async def get_task(task_id: int, runtime: RuntimeDep, _: Viewer) -> dict[str, Any]:
    return await tasks.get(runtime.db, task_id)


@router.delete("/{task_id}", response_model=TaskPublic)
async def cancel_task(
    task_id: int, request: Request, runtime: RuntimeDep, _: OperatorRole
) -> dict[str, Any]:
    """Cancel a task that has not finished."""
    audit(request, task=task_id)
    return await tasks.cancel(runtime.db, task_id, now())


@router.post("/{task_id}/retry", response_model=TaskPublic)
async def retry_task(
    task_id: int, request: Request, runtime: RuntimeDep, _: OperatorRole
) -> dict[str, Any]:
    """Queue a failed, expired or cancelled task again."""
    audit(request, task=task_id)
    result = await tasks.retry(runtime.db, task_id, now(), runtime.settings.task_default_ttl)
    runtime.notifier.pulse()
    return result
