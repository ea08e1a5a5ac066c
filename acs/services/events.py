"""Events: facts about devices and the fleet, kept as rows for the API, the console's live
views and webhooks.

An event is written in the transaction of the change it records (an Inform's, a task's, a
status move's, a rollout's), so it exists exactly when the change does, once. Readers page by
id (ids grow with time); webhooks (``services/webhooks.py``) follow the same ids from a cursor
of their own. Old events are deleted after ``ACS_EVENT_RETENTION_DAYS``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import delete, func, select

from acs.db import hot, tables
from acs.db.engine import Database
from acs.db.types import JSONDoc, UTCDateTime
from acs.services.errors import Invalid


class EventType(StrEnum):
    DEVICE_REGISTERED = "device.registered"  # its first Inform
    DEVICE_BOOTSTRAPPED = "device.bootstrapped"  # 0 BOOTSTRAP
    DEVICE_BOOTED = "device.booted"  # 1 BOOT
    DEVICE_LATE = "device.late"  # missed a periodic Inform
    DEVICE_OFFLINE = "device.offline"  # missed several
    DEVICE_BACK = "device.back"  # informed again after late or offline
    DEVICE_VERSION_CHANGED = "device.version_changed"  # SoftwareVersion
    DEVICE_PARAMETERS_CHANGED = "device.parameters_changed"  # ACS_WATCHED_PARAMETERS
    TASK_DONE = "task.done"
    TASK_FAULT = "task.fault"
    ROLLOUT_STARTED = "rollout.started"
    ROLLOUT_WAVE = "rollout.wave"
    ROLLOUT_STOPPED = "rollout.stopped"
    ROLLOUT_RESUMED = "rollout.resumed"
    ROLLOUT_FINISHED = "rollout.finished"
    PRESET_FAULT = "preset.fault"  # a preset's work failed on a device (backed off)
    PRESET_LOOP = "preset.loop"  # presets undo each other on a device


TYPES: Final = tuple(t.value for t in EventType)


class BadEventFilter(Invalid):
    """An event type that does not exist, or a cursor out of range."""


@dataclass(frozen=True, slots=True)
class NewEvent:
    type: EventType
    device_id: str | None
    details: Mapping[str, Any]


_INSERTS: dict[int, hot.Statement] = {}


def _insert(count: int) -> hot.Statement:
    """One INSERT of ``count`` rows (a boot Inform records several events in one trip)."""
    statement = _INSERTS.get(count)
    if statement is None:
        rows = ", ".join(f"(:time, :type{n}, :device{n}, :details{n})" for n in range(count))
        binds: dict[str, Any] = {"time": UTCDateTime()}
        binds.update({f"details{n}": JSONDoc for n in range(count)})
        statement = _INSERTS[count] = hot.Statement(
            f"INSERT INTO events (time, type, device_id, details) VALUES {rows}", binds=binds
        )
    return statement


_CHUNK: Final = 8  # rows per INSERT at most: a few prepared statements serve every count


async def record(tx: hot.Transaction, now: datetime, events: Sequence[NewEvent]) -> None:
    """Write ``events`` in the transaction ``tx`` (nothing when there are none)."""
    for start in range(0, len(events), _CHUNK):
        chunk = events[start : start + _CHUNK]
        params: dict[str, Any] = {"time": now}
        for n, event in enumerate(chunk):
            params[f"type{n}"] = event.type.value
            params[f"device{n}"] = event.device_id
            params[f"details{n}"] = dict(event.details)
        await tx.execute(_insert(len(chunk)), **params)


def event_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "time": row.time,
        "type": row.type,
        "device_id": row.device_id,
        "details": row.details or {},
    }


def check_types(types: Sequence[str]) -> list[str]:
    unknown = [t for t in types if t not in TYPES]
    if unknown:
        raise BadEventFilter(f"unknown event type {unknown[0]!r}; the types are {', '.join(TYPES)}")
    return list(dict.fromkeys(types))


async def list_events(
    db: Database,
    *,
    after: int = 0,
    types: Sequence[str] = (),
    device_id: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Events with an id above ``after``, oldest first (a cursor: pass the last id seen)."""
    e = tables.events
    query = select(e).where(e.c.id > after).order_by(e.c.id).limit(limit)
    if types:
        query = query.where(e.c.type.in_(check_types(types)))
    if device_id is not None:
        query = query.where(e.c.device_id == device_id)
    if since is not None:
        query = query.where(e.c.time >= since)
    async with db.read() as conn:
        return [event_view(row) for row in (await conn.execute(query)).all()]


async def recent(db: Database, *, device_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """A device's latest events, newest first (the console's history)."""
    e = tables.events
    query = select(e).where(e.c.device_id == device_id).order_by(e.c.id.desc()).limit(limit)
    async with db.read() as conn:
        return [event_view(row) for row in (await conn.execute(query)).all()]


async def last_id(db: Database) -> int:
    e = tables.events
    async with db.read() as conn:
        return int(await conn.scalar(select(func.coalesce(func.max(e.c.id), 0))) or 0)


async def prune(db: Database, now: datetime, retention_days: int, batch: int = 10_000) -> int:
    """Delete events older than the retention, a batch at a time (the scheduler's job)."""
    e = tables.events
    cutoff = now - timedelta(days=retention_days)
    async with db.write() as conn:
        oldest = select(e.c.id).where(e.c.time < cutoff).order_by(e.c.id).limit(batch)
        result = await conn.execute(delete(e).where(e.c.id.in_(oldest.scalar_subquery())))
        return int(result.rowcount or 0)
