"""/api/v1/faults: CPE faults and ACS-side failures."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from acs.services import fault_log
from acs.web.api.deps import Offset, RuntimeDep, Viewer
from acs.web.api.schemas import FaultsPublic

router = APIRouter(prefix="/faults", tags=["faults"])


@router.get("", response_model=FaultsPublic)
async def list_faults(
    runtime: RuntimeDep,
    _: Viewer,
    device_id: str | None = None,
    task_id: int | None = None,
    code: int | None = None,
    source: Annotated[str | None, Query(description="cpe or acs")] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    data, count = await fault_log.list_faults(
        runtime.db,
        device_id=device_id,
        task_id=task_id,
        code=code,
        source=source,
        since=since,
        limit=limit,
        offset=offset,
    )
    return {"data": data, "count": count}
