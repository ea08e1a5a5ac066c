"""CTC (China Telecom ITMS) mode: LOID binding against work orders.

A subscriber's gateway is shipped blank. The installer types the subscriber's LOID (logical
id) and password into it; the gateway then informs with ``X CT-COM BIND`` and carries them in
``InternetGatewayDevice.X_CT-COM_UserInfo.UserName`` (the LOID) and ``.UserId`` (its
password). The operator created a work order for that LOID beforehand: the tasks to apply
(service provisioning) and optionally a phone profile. Binding matches the two, queues the
work order's tasks for the device, and tells the device the outcome by writing
``X_CT-COM_UserInfo.Status`` and ``.Result``:

=========================  ======  ======
outcome                    Status  Result
=========================  ======  ======
bound (or already bound)   0       1
no work order for the LOID 1       0
wrong LOID password        2       0
=========================  ======  ======
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from acs.db import hot, tables
from acs.db.engine import Database
from acs.db.types import JSONDoc, UTCDateTime
from acs.services import task_specs, tasks
from acs.services.errors import Invalid, NotFound

w = tables.work_orders

STATUS_BOUND: Final = 0
STATUS_UNKNOWN_LOID: Final = 1
STATUS_BAD_PASSWORD: Final = 2
RESULT_NONE: Final = 0
RESULT_OK: Final = 1

USERINFO: Final = "X_CT-COM_UserInfo."


class WorkOrderError(Invalid):
    """A work order the service refuses: a malformed LOID, or one that has an order already."""


class WorkOrderNotFound(NotFound):
    """No work order with this id (``order_id``)."""

    def __init__(self, order_id: int) -> None:
        super().__init__(f"no work order {order_id}")
        self.order_id = order_id


@dataclass(frozen=True, slots=True)
class BindOutcome:
    status: int
    result: int
    work_order: int | None
    detail: str


def order_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "loid": row.loid,
        "has_password": bool(row.password),
        "tasks": [
            {
                "name": t["name"],
                **tasks.redact_arguments(t["name"], {k: v for k, v in t.items() if k != "name"}),
            }
            for t in row.tasks
        ],
        "profile": row.profile,
        "status": row.status,
        "device_id": row.device_id,
        "created": row.created,
        "created_by": row.created_by,
        "bound": row.bound,
    }


async def create_order(
    db: Database,
    *,
    loid: str,
    password: str | None,
    task_list: Sequence[dict[str, Any]],
    profile: str | None,
    created_by: str | None,
    now: datetime,
) -> dict[str, Any]:
    if not loid or len(loid) > 128:
        raise WorkOrderError("loid: 1-128 characters")
    stored = []
    for spec_data in task_list:
        spec = task_specs.TASK_ADAPTER.validate_python(spec_data)
        stored.append({"name": spec.name, **spec.arguments()})
    try:
        async with db.write() as conn:
            row = (
                await conn.execute(
                    w.insert()
                    .values(
                        loid=loid,
                        password=password or None,
                        tasks=stored,
                        profile=profile,
                        status="pending",
                        created=now,
                        created_by=created_by,
                    )
                    .returning(*w.c)
                )
            ).one()
    except IntegrityError:
        raise WorkOrderError(f"a work order for LOID {loid!r} exists already") from None
    return order_view(row)


async def list_orders(
    db: Database, *, status: str | None = None, limit: int = 100, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    conditions = [w.c.status == status] if status else []
    async with db.read() as conn:
        total = await conn.scalar(select(func.count()).select_from(w).where(*conditions))
        rows = await conn.execute(
            select(w).where(*conditions).order_by(w.c.id.desc()).limit(limit).offset(offset)
        )
        return [order_view(r) for r in rows], int(total or 0)


async def order_of_device(db: Database, device_id: str) -> dict[str, Any] | None:
    """The work order bound to this device, if any (the console's device page)."""
    async with db.read() as conn:
        row = (
            await conn.execute(select(w).where(w.c.device_id == device_id).order_by(w.c.id.desc()))
        ).first()
    return order_view(row) if row is not None else None


async def delete_order(db: Database, order_id: int) -> None:
    async with db.write() as conn:
        if not (await conn.execute(delete(w).where(w.c.id == order_id))).rowcount:
            raise WorkOrderNotFound(order_id)


def userinfo_from(parameters: Sequence[Any]) -> tuple[str | None, str | None]:
    """LOID and password from ParameterValueStructs (an Inform's, or a GPV answer's)."""
    loid = password = None
    for p in parameters:
        name = p.name
        if name.endswith(USERINFO + "UserName"):
            loid = str(p.value).strip() or None
        elif name.endswith(USERINFO + "UserId"):
            password = str(p.value)
    return loid, password


_ORDER_BY_LOID = hot.Statement(
    "SELECT id, password, status, device_id, tasks, profile FROM work_orders WHERE loid = :loid",
    columns=("id", "password", "status", "device_id", "tasks", "profile"),
    types={"tasks": JSONDoc},
)
_BOUND = hot.Statement(
    "UPDATE work_orders SET status = 'bound', device_id = :device_id, bound = :now WHERE id = :id",
    binds={"now": UTCDateTime()},
)
_DEVICE_MAC = hot.Statement("SELECT mac FROM devices WHERE id = :id", columns=("mac",))
_PHONE_PROFILE = hot.Statement("UPDATE phones SET profile = :profile WHERE mac = :mac")


async def bind(
    tx: hot.Transaction,
    *,
    device_id: str,
    loid: str | None,
    password: str | None,
    now: datetime,
    task_ttl: int,
) -> BindOutcome:
    """Match a device's LOID with its work order; queue the order's tasks on success."""
    if not loid:
        return BindOutcome(STATUS_UNKNOWN_LOID, RESULT_NONE, None, "the device sent no LOID")
    row = await tx.first(_ORDER_BY_LOID, loid=loid)
    if row is None:
        return BindOutcome(STATUS_UNKNOWN_LOID, RESULT_NONE, None, f"no work order for {loid}")
    if row.password and row.password != (password or ""):
        return BindOutcome(STATUS_BAD_PASSWORD, RESULT_NONE, row.id, "wrong LOID password")
    if row.status == "bound":
        if row.device_id == device_id:  # the device says BIND again: already done
            return BindOutcome(STATUS_BOUND, RESULT_OK, row.id, "already bound")
        return BindOutcome(
            STATUS_BAD_PASSWORD, RESULT_NONE, row.id, f"LOID {loid} is bound to {row.device_id}"
        )
    specs = [task_specs.TASK_ADAPTER.validate_python(t) for t in row.tasks]
    await tasks.queue_in(
        tx, device_id, specs, created_by=f"work-order:{row.id}", now=now, default_ttl=task_ttl
    )
    await tx.execute(_BOUND, id=row.id, device_id=device_id, now=now)
    if row.profile:
        device = await tx.first(_DEVICE_MAC, id=device_id)
        if device is not None and device.mac:
            await tx.execute(_PHONE_PROFILE, profile=row.profile, mac=device.mac.replace(":", ""))
    return BindOutcome(STATUS_BOUND, RESULT_OK, row.id, "bound")
