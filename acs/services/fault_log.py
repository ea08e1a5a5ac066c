"""The fault log: CPE faults and ACS-side failures, per device and task."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select

from acs import logs
from acs.cwmp import faults
from acs.db import hot, tables
from acs.db.engine import Database
from acs.db.types import JSONDoc, UTCDateTime
from acs.services import metrics
from acs.services.errors import NotFound

f = tables.fault_records


_RECORD = hot.Statement(
    "INSERT INTO faults (device_id, task_id, time, source, code, string, detail) "
    "VALUES (:device_id, :task_id, :time, :source, :code, :string, :detail)",
    binds={"time": UTCDateTime(), "detail": JSONDoc},
)


async def record(
    tx: hot.Transaction,
    *,
    device_id: str,
    task_id: int | None,
    now: datetime,
    source: str,
    code: int,
    string: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """Record a fault (``source``: ``cpe`` for one a CPE reported, counted in
    ``metrics.CPE_FAULTS``; ``acs`` for the ACS's own)."""
    if source == "cpe":
        logs.on_commit(metrics.CPE_FAULTS.labels(metrics.fault_label(code)).inc)
    await tx.execute(
        _RECORD,
        device_id=device_id,
        task_id=task_id,
        time=now,
        source=source,
        code=code,
        string=string or faults.describe(code),
        detail=detail,
    )


async def from_cpe(
    tx: hot.Transaction,
    *,
    device_id: str,
    now: datetime,
    code: int,
    string: str,
    detail: dict[str, Any] | None,
    task_id: int | None = None,
) -> None:
    """``record`` a fault the CPE reported (a Fault, a FaultStruct)."""
    await record(
        tx,
        device_id=device_id,
        task_id=task_id,
        now=now,
        source="cpe",
        code=code,
        string=string,
        detail=detail,
    )


def fault_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "device_id": row.device_id,
        "task_id": row.task_id,
        "time": row.time,
        "source": row.source,
        "code": row.code,
        "string": row.string,
        "meaning": faults.describe(row.code),
        "detail": row.detail,
    }


async def list_faults(
    db: Database,
    *,
    device_id: str | None = None,
    task_id: int | None = None,
    code: int | None = None,
    source: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    conditions = []
    if device_id is not None:
        conditions.append(f.c.device_id == device_id)
    if task_id is not None:
        conditions.append(f.c.task_id == task_id)
    if code is not None:
        conditions.append(f.c.code == code)
    if source is not None:
        conditions.append(f.c.source == source)
    if since is not None:
        conditions.append(f.c.time >= since)
    async with db.read() as conn:
        total = await conn.scalar(select(func.count()).select_from(f).where(*conditions))
        rows = await conn.execute(
            select(f).where(*conditions).order_by(f.c.id.desc()).limit(limit).offset(offset)
        )
        return [fault_view(r) for r in rows], int(total or 0)


class FaultNotFound(NotFound):
    """No fault record with this id (``fault_id``)."""

    def __init__(self, fault_id: int) -> None:
        super().__init__(f"no fault {fault_id}")
        self.fault_id = fault_id


async def get_fault(db: Database, fault_id: int) -> dict[str, Any]:
    async with db.read() as conn:
        row = (await conn.execute(select(f).where(f.c.id == fault_id))).first()
    if row is None:
        raise FaultNotFound(fault_id)
    return fault_view(row)


async def dismiss(db: Database, fault_id: int) -> None:
    """Forget a fault an operator has dealt with (its task, if any, keeps its outcome)."""
    async with db.write() as conn:
        result = await conn.execute(delete(f).where(f.c.id == fault_id))
    if not result.rowcount:
        raise FaultNotFound(fault_id)
