"""The task queue as operators see it: queue, list, cancel, retry, wait.

How a task's status moves is ``acs.services.task_lifecycle``; how it runs inside sessions,
``acs.services.policy.task_queue``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from acs import logs
from acs.cwmp import datamodel, xsd
from acs.db import hot, tables
from acs.db.engine import Database
from acs.db.types import JSONDoc, UTCDateTime
from acs.services import task_lifecycle as lifecycle
from acs.services import task_specs
from acs.services.devices import DeviceNotFound
from acs.services.errors import Conflict, Invalid, NotFound
from acs.services.inform import is_secret
from acs.services.notify import Notifier
from acs.services.task_lifecycle import Move, TaskStatus

STATUSES = tuple(s.value for s in TaskStatus)
FINISHED = frozenset(s.value for s in lifecycle.FINISHED)
REDACTED = "********"

t = tables.tasks


class TaskNotFound(NotFound):
    """No task with this id (``task_id``)."""

    def __init__(self, task_id: int) -> None:
        super().__init__(f"no task {task_id}")
        self.task_id = task_id


class TaskStateError(Conflict):
    """The task's status refuses the change: cancelling a finished task, retrying one that
    is neither failed, expired nor cancelled."""


def new_command_key() -> str:
    return "acs-" + secrets.token_hex(8)


def redact_arguments(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    out = dict(arguments)
    if out.get("password"):
        out["password"] = REDACTED
    if name == "SetParameterValues":
        out["parameter_values"] = [
            {**pv, "value": REDACTED} if is_secret(pv["name"]) else pv
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
            hot.over(conn),
            device_id,
            specs,
            created_by=created_by,
            now=now,
            default_ttl=default_ttl,
            priority=priority,
        )


_DEVICE_PARAMETERS = hot.Statement(
    "SELECT parameters FROM devices WHERE id = :id",
    columns=("parameters",),
    types={"parameters": JSONDoc},
)
_DEVICE_MAC = hot.Statement("SELECT mac FROM devices WHERE id = :id", columns=("mac",))
_FILE_TYPE = hot.Statement("SELECT file_type FROM files WHERE name = :name", columns=("file_type",))
_PHONE = hot.Statement("SELECT mac FROM phones WHERE mac = :mac", columns=("mac",))
_INSERT = hot.Statement(
    "INSERT INTO tasks (device_id, name, arguments, status, priority, command_key, created, "
    "created_by, expires, attempts) VALUES (:device_id, :name, :arguments, "
    f"'{TaskStatus.QUEUED.value}', :priority, :command_key, :created, :created_by, :expires, 0) "
    f"RETURNING {', '.join(lifecycle.COLUMNS)}",
    columns=lifecycle.COLUMNS,
    binds={"arguments": JSONDoc, "created": UTCDateTime(), "expires": UTCDateTime()},
    types=lifecycle.TYPES,
)


async def queue_in(
    tx: hot.Transaction,
    device_id: str,
    specs: Sequence[Any],
    *,
    created_by: str | None,
    now: datetime,
    default_ttl: int,
    priority: int = 0,
) -> list[dict[str, Any]]:
    """``queue`` inside the caller's transaction (a session binding a work order...)."""
    device = await tx.first(_DEVICE_PARAMETERS, id=device_id)
    if device is None:
        raise DeviceNotFound(device_id)
    out = []
    for spec in specs:
        spec = _with_known_types(spec, device.parameters or {})
        await _check_sources(tx, device_id, spec)
        command_key = None
        if spec.uses_command_key:
            command_key = getattr(spec, "command_key", None) or new_command_key()
        arguments = spec.arguments()
        if "command_key" in arguments and spec.uses_command_key:
            arguments["command_key"] = command_key
        row = await tx.first(
            _INSERT,
            device_id=device_id,
            name=spec.name,
            arguments=arguments,
            priority=priority,
            command_key=command_key,
            created=now,
            created_by=created_by,
            expires=spec.expires or now + timedelta(seconds=default_ttl),
        )
        out.append(task_view(row))
    return out


async def _check_sources(tx: hot.Transaction, device_id: str, spec: Any) -> None:
    """A Download of a stored file, or of the device's configuration, must be possible."""
    if not isinstance(spec, task_specs.DownloadTask):
        return
    if spec.file is not None:
        row = await tx.first(_FILE_TYPE, name=spec.file)
        if row is None:
            raise TaskValidationError(f"file: no stored file {spec.file!r}")
        kind = row.file_type
        if spec.file_type is None and not (kind[0].isdigit() or kind.startswith("X ")):
            raise TaskValidationError(
                f"file: {spec.file!r} is a {kind}, not a TR-069 FileType; give file_type"
            )
    if spec.config:
        device = await tx.first(_DEVICE_MAC, id=device_id)
        mac = device.mac if device is not None else None
        if mac is None:
            raise TaskValidationError("config: the device has reported no MAC address")
        if await tx.first(_PHONE, mac=mac.replace(":", "")) is None:
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


class TaskValidationError(Invalid):
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


async def count_by_status(db: Database) -> dict[str, int]:
    """How many tasks are in each status (every status, in the lifecycle's order)."""
    async with db.read() as conn:
        rows = await conn.execute(select(t.c.status, func.count()).group_by(t.c.status))
        counted = {str(status): int(n) for status, n in rows}
    return {status: counted.get(status, 0) for status in STATUSES}


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
    with logs.deferred():
        async with db.write() as conn:
            tx = hot.over(conn)
            row = await lifecycle.move_returning(tx, task_id, Move.CANCEL, now)
            if row is None:
                status = await _status(tx, task_id)
                raise TaskStateError(f"task {task_id} is already {status}")
    return task_view(row)


_STATUS = hot.Statement("SELECT status FROM tasks WHERE id = :id", columns=("status",))


async def _status(tx: hot.Transaction, task_id: int) -> str:
    """The status of a task a move did not apply to; ``TaskNotFound`` if there is none."""
    row = await tx.first(_STATUS, id=task_id)
    if row is None:
        raise TaskNotFound(task_id)
    return str(row.status)


async def retry(db: Database, task_id: int, now: datetime, default_ttl: int) -> dict[str, Any]:
    """Queue a failed, expired or cancelled task again (attempts start over)."""
    async with db.write() as conn:
        tx = hot.over(conn)
        row = await lifecycle.move_returning(
            tx,
            task_id,
            Move.RETRY,
            now,
            attempts=0,
            next_attempt=None,
            finished=None,
            fault=None,
            expires=now + timedelta(seconds=default_ttl),
        )
        if row is None:
            status = await _status(tx, task_id)
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
