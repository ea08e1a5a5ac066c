"""The task queue as operators see it: queue, list, cancel, retry, wait.

Task statuses::

    queued -> sent -> done | fault
                   -> awaiting_transfer -> done | fault    (Download, Upload, ScheduleDownload)
                   -> awaiting_boot -> done | fault        (Reboot, FactoryReset)
                   -> queued (transient fault or lost answer: retried with backoff)
    queued -> expired | cancelled

``sent`` means "in flight in the device's current session"; a session that dies leaves its
``sent`` task ``queued`` again (``acs.services.task_runner``).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from acs.cwmp import datamodel, xsd
from acs.db import queries
from acs.db.engine import Database
from acs.services import task_specs
from acs.services.devices import DeviceNotFound
from acs.services.notify import Notifier

STATUSES = (
    "queued",
    "sent",
    "awaiting_transfer",
    "awaiting_boot",
    "done",
    "fault",
    "expired",
    "cancelled",
)
FINISHED = frozenset({"done", "fault", "expired", "cancelled"})
REDACTED = "********"
# Parameters whose values are secrets (TR-098/TR-181/TR-104 names), masked in task views.
_SECRET_NAME = re.compile(r"(password|passphrase|presharedkey|wepkey|secret)$", re.IGNORECASE)

t = queries.tasks


class TaskNotFound(LookupError):
    pass


class TaskStateError(ValueError):
    pass


def new_command_key() -> str:
    return "acs-" + secrets.token_hex(8)


def redact_arguments(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    out = dict(arguments)
    if out.get("password"):
        out["password"] = REDACTED
    if name == "SetParameterValues":
        out["parameter_values"] = [
            {**pv, "value": REDACTED} if _SECRET_NAME.search(pv["name"]) else pv
            for pv in out.get("parameter_values", [])
        ]
    return out


def task_view(row: Any) -> dict[str, Any]:
    """A task as the API shows it (secrets in its arguments masked)."""
    return {
        "id": row.id,
        "device_id": row.device_id,
        "name": row.name,
        "arguments": redact_arguments(row.name, row.arguments),
        "status": row.status,
        "command_key": row.command_key,
        "created": row.created,
        "created_by": row.created_by,
        "started": row.started,
        "finished": row.finished,
        "next_attempt": row.next_attempt,
        "expires": row.expires,
        "attempts": row.attempts,
        "result": row.result,
        "fault": row.fault,
    }


async def queue(
    db: Database,
    device_id: str,
    specs: Sequence[Any],
    *,
    created_by: str | None,
    now: datetime,
    default_ttl: int,
    priority: int = 0,
) -> list[dict[str, Any]]:
    """Queue tasks for one device, in order, in one transaction."""
    async with db.write() as conn:
        return await queue_in(
            conn,
            device_id,
            specs,
            created_by=created_by,
            now=now,
            default_ttl=default_ttl,
            priority=priority,
        )


async def queue_in(
    conn: AsyncConnection,
    device_id: str,
    specs: Sequence[Any],
    *,
    created_by: str | None,
    now: datetime,
    default_ttl: int,
    priority: int = 0,
) -> list[dict[str, Any]]:
    """``queue`` inside the caller's transaction (a session binding a work order...)."""
    params = await conn.scalar(
        select(queries.devices.c.parameters).where(queries.devices.c.id == device_id)
    )
    if params is None:
        raise DeviceNotFound(device_id)
    out = []
    for spec in specs:
        spec = _with_known_types(spec, params)
        await _check_sources(conn, device_id, spec)
        command_key = None
        if spec.uses_command_key:
            command_key = getattr(spec, "command_key", None) or new_command_key()
        arguments = spec.arguments()
        if "command_key" in arguments and spec.uses_command_key:
            arguments["command_key"] = command_key
        expires = spec.expires or now + timedelta(seconds=default_ttl)
        row = (
            await conn.execute(
                t.insert()
                .values(
                    device_id=device_id,
                    name=spec.name,
                    arguments=arguments,
                    status="queued",
                    priority=priority,
                    command_key=command_key,
                    created=now,
                    created_by=created_by,
                    expires=expires,
                    attempts=0,
                )
                .returning(*t.c)
            )
        ).one()
        out.append(task_view(row))
    return out


async def _check_sources(conn: AsyncConnection, device_id: str, spec: Any) -> None:
    """A Download of a stored file, or of the device's configuration, must be possible."""
    if not isinstance(spec, task_specs.DownloadTask):
        return
    if spec.file is not None:
        kind = await conn.scalar(
            select(queries.files.c.file_type).where(queries.files.c.name == spec.file)
        )
        if kind is None:
            raise TaskValidationError(f"file: no stored file {spec.file!r}")
        if spec.file_type is None and not (kind[0].isdigit() or kind.startswith("X ")):
            raise TaskValidationError(
                f"file: {spec.file!r} is a {kind}, not a TR-069 FileType; give file_type"
            )
    if spec.config:
        mac = await conn.scalar(
            select(queries.devices.c.mac).where(queries.devices.c.id == device_id)
        )
        if mac is None:
            raise TaskValidationError("config: the device has reported no MAC address")
        known = await conn.scalar(
            select(queries.phones.c.mac).where(queries.phones.c.mac == mac.replace(":", ""))
        )
        if known is None:
            raise TaskValidationError(f"config: no phone configuration for MAC {mac}")


def _with_known_types(spec: Any, params: dict[str, Any]) -> Any:
    """SetParameterValues without an xsi:type takes the type the device reported, else the
    one its standard data model gives (TR-098, TR-181, TR-104); the stored task keeps it."""
    if not isinstance(spec, task_specs.SetParameterValuesTask):
        return spec
    values = []
    for pv in spec.parameter_values:
        if pv.type is None:
            known = (params.get(pv.name) or {}).get("type")
            source = "the device reports"
            if not known:
                known = datamodel.standard_type(pv.name)
                source = "the standard data model has"
            if known:
                try:
                    value = xsd.check(pv.value, xsd.normalize_type(known))
                except ValueError as exc:
                    raise TaskValidationError(
                        f"parameter_values: {pv.name}: {exc} ({source} {known})"
                    ) from None
                pv = task_specs.ParameterValue(name=pv.name, value=value, type=known)
        values.append(pv)
    return spec.model_copy(update={"parameter_values": values})


class TaskValidationError(ValueError):
    """A task that is well-formed but does not fit the device."""


async def list_tasks(
    db: Database,
    *,
    device_id: str | None = None,
    status: str | None = None,
    name: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    conditions = []
    if device_id is not None:
        conditions.append(t.c.device_id == device_id)
    if status is not None:
        conditions.append(t.c.status == status)
    if name is not None:
        conditions.append(t.c.name == name)
    async with db.read() as conn:
        total = await conn.scalar(select(func.count()).select_from(t).where(*conditions))
        result = await conn.execute(
            select(t).where(*conditions).order_by(t.c.id.desc()).limit(limit).offset(offset)
        )
        return [task_view(r) for r in result], int(total or 0)


async def get(db: Database, task_id: int) -> dict[str, Any]:
    async with db.read() as conn:
        row = (await conn.execute(select(t).where(t.c.id == task_id))).first()
    if row is None:
        raise TaskNotFound(task_id)
    return task_view(row)


async def get_many(db: Database, ids: Sequence[int]) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = (await conn.execute(select(t).where(t.c.id.in_(list(ids))).order_by(t.c.id))).all()
    return [task_view(r) for r in rows]


async def cancel(db: Database, task_id: int, now: datetime) -> dict[str, Any]:
    """Cancel a task that has not finished. One in flight is cancelled too: its answer, if
    it ever comes, is recorded in the result but changes nothing."""
    async with db.write() as conn:
        row = (
            await conn.execute(
                update(t)
                .where(t.c.id == task_id, t.c.status.not_in(FINISHED))
                .values(status="cancelled", finished=now)
                .returning(*t.c)
            )
        ).first()
        if row is None:
            status = await _status(conn, task_id)
            raise TaskStateError(f"task {task_id} is already {status}")
    return task_view(row)


async def _status(conn: Any, task_id: int) -> str:
    """The status of a task an update did not match; ``TaskNotFound`` if there is none."""
    status = await conn.scalar(select(t.c.status).where(t.c.id == task_id))
    if status is None:
        raise TaskNotFound(task_id)
    return str(status)


async def retry(db: Database, task_id: int, now: datetime, default_ttl: int) -> dict[str, Any]:
    """Queue a failed, expired or cancelled task again (attempts start over)."""
    async with db.write() as conn:
        row = (
            await conn.execute(
                update(t)
                .where(t.c.id == task_id, t.c.status.in_(("fault", "expired", "cancelled")))
                .values(
                    status="queued",
                    attempts=0,
                    next_attempt=None,
                    finished=None,
                    fault=None,
                    session_id=None,
                    expires=now + timedelta(seconds=default_ttl),
                )
                .returning(*t.c)
            )
        ).first()
        if row is None:
            status = await _status(conn, task_id)
            raise TaskStateError(
                f"task {task_id} is {status}; only fault, expired or cancelled tasks can be retried"
            )
    return task_view(row)


async def wait_finished(
    db: Database,
    ids: Sequence[int],
    max_wait: float,
    notifier: Notifier,
    *,
    poll: float = 0.25,
) -> tuple[bool, list[dict[str, Any]]]:
    """Wait until every task is finished or ``max_wait`` seconds pass; (all finished, tasks).

    Woken at once by sessions in this process, and polls for sessions in other processes.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait
    while True:
        version = notifier.version
        current = await get_many(db, ids)
        if all(task["status"] in FINISHED for task in current):
            return True, current
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False, current
        await notifier.wait(version, min(poll, remaining))
