"""Bulk rollouts: one task for every device matching a filter, in waves.

The matching devices are fixed when the rollout is created (a snapshot, so devices that
appear later do not join a half-done rollout) and numbered into waves of ``wave_size``.
Wave 1 is queued at once; each later wave is queued by the scheduler when every task of
the previous wave has finished, unless the failed share of that wave (faulted, expired,
cancelled, or whose device was forgotten) exceeds ``failure_threshold``: then the rollout
stops and says why. Everything is set-based SQL, so a rollout over a million devices costs
a few statements per wave, not one per device.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from acs.db import hot, tables
from acs.db.engine import Database
from acs.db.types import JSONDoc
from acs.services import devices, events, task_specs, tasks
from acs.services import task_lifecycle as lifecycle
from acs.services.errors import Conflict, Invalid, NotFound
from acs.services.events import EventType, NewEvent
from acs.services.task_lifecycle import Move, TaskStatus

r = tables.rollouts
rt = tables.rollout_targets
t = tables.tasks
d = tables.devices

# "waiting": the wave is not queued yet; the others are the tasks' unfinished statuses
PENDING = ("waiting", *(s.value for s in TaskStatus if s not in lifecycle.FINISHED))


class RolloutNotFound(NotFound):
    """No rollout with this id (``rollout_id``)."""

    def __init__(self, rollout_id: int) -> None:
        super().__init__(f"no rollout {rollout_id}")
        self.rollout_id = rollout_id


class RolloutError(Exception):
    """Any refusal of the rollout service; never raised itself: its subclass says which kind
    (creating one the API answers 422, stopping one that is not running 409)."""


class RolloutValidationError(RolloutError, Invalid):
    """A rollout that cannot be created as given: an unknown or malformed filter, a wave
    size or failure threshold out of range."""


class RolloutStateError(RolloutError, Conflict):
    """The rollout is not running (done, or stopped already): it cannot be stopped."""


def _filter(data: dict[str, Any]) -> devices.DeviceFilter:
    allowed = {
        "ids",
        "serial_number",
        "oui",
        "product_class",
        "software_version",
        "mac",
        "ip",
        "tag",
        "status",
        "parameters",
    }
    unknown = set(data) - allowed
    if unknown:
        raise RolloutValidationError(
            f"unknown filter fields {sorted(unknown)}; use {sorted(allowed)}"
        )
    values = dict(data)
    values["parameters"] = [tuple(p) for p in values.get("parameters", [])]
    return devices.DeviceFilter(**values)


async def create(
    db: Database,
    *,
    name: str,
    filter: dict[str, Any],
    task: dict[str, Any],
    wave_size: int,
    failure_threshold: float,
    connection_request: bool,
    created_by: str | None,
    now: datetime,
    task_ttl: int,
) -> tuple[dict[str, Any], list[str]]:
    """Create a rollout and queue its first wave; (the rollout, devices to poke now)."""
    if wave_size < 1:
        raise RolloutValidationError("wave_size must be at least 1")
    if not 0 <= failure_threshold <= 1:
        raise RolloutValidationError("failure_threshold is a share between 0 and 1")
    spec = task_specs.TASK_ADAPTER.validate_python(task)  # 422 before anything is written
    device_filter = _filter(filter)
    try:
        conditions = devices.conditions(db.dialect, device_filter, now)
    except ValueError as exc:  # BadFilter, or a parameter that is no [path, value] pair
        raise RolloutValidationError(str(exc)) from None
    async with db.write() as conn:
        rollout_id = (
            await conn.execute(
                r.insert()
                .values(
                    name=name,
                    filter=filter,
                    task={"name": spec.name, **spec.arguments()},
                    wave_size=wave_size,
                    failure_threshold=failure_threshold,
                    connection_request=connection_request,
                    status="running",
                    current_wave=0,
                    waves=0,
                    targets=0,
                    created=now,
                    created_by=created_by,
                )
                .returning(r.c.id)
            )
        ).scalar_one()
        number = func.row_number().over(order_by=d.c.id)
        await conn.execute(
            rt.insert().from_select(
                ["rollout_id", "device_id", "wave"],
                select(literal(rollout_id), d.c.id, (number - 1) // wave_size + 1).where(
                    *conditions
                ),
            )
        )
        count = int(
            await conn.scalar(
                select(func.count()).select_from(rt).where(rt.c.rollout_id == rollout_id)
            )
            or 0
        )
        waves = (count + wave_size - 1) // wave_size
        await conn.execute(update(r).where(r.c.id == rollout_id).values(targets=count, waves=waves))
        poke: list[str] = []
        started = {"rollout": rollout_id, "name": name, "targets": count, "waves": waves}
        await events.record(
            hot.over(conn), now, [NewEvent(EventType.ROLLOUT_STARTED, None, started)]
        )
        if count == 0:
            reason = "no device matched the filter"
            await conn.execute(
                update(r)
                .where(r.c.id == rollout_id)
                .values(status="done", finished=now, reason=reason)
            )
            finished = {"rollout": rollout_id, "name": name, "reason": reason}
            await events.record(
                hot.over(conn), now, [NewEvent(EventType.ROLLOUT_FINISHED, None, finished)]
            )
        else:
            poke = await _queue_wave(conn, rollout_id, 1, now, task_ttl)
    return await get(db, rollout_id), poke


async def _queue_wave(
    conn: AsyncConnection, rollout_id: int, wave: int, now: datetime, task_ttl: int
) -> list[str]:
    rollout = (await conn.execute(select(r).where(r.c.id == rollout_id))).one()
    spec = task_specs.load(
        rollout.task["name"], {k: v for k, v in rollout.task.items() if k != "name"}
    )
    arguments = spec.arguments()
    command_key = None
    if spec.uses_command_key:
        # one key for the whole rollout: TransferComplete is matched per device anyway
        command_key = getattr(spec, "command_key", None) or f"r{rollout_id}-{secrets.token_hex(4)}"
        if "command_key" in arguments:
            arguments["command_key"] = command_key
    creator = f"rollout:{rollout_id}"
    await conn.execute(
        t.insert().from_select(
            [
                "device_id",
                "name",
                "arguments",
                "status",
                "priority",
                "command_key",
                "created",
                "created_by",
                "expires",
                "attempts",
            ],
            select(
                rt.c.device_id,
                literal(spec.name),
                literal(arguments, JSONDoc),
                literal(TaskStatus.QUEUED.value),
                literal(0),
                literal(command_key),
                literal(now, t.c.created.type),
                literal(creator),
                literal(now + timedelta(seconds=task_ttl), t.c.expires.type),
                literal(0),
            ).where(rt.c.rollout_id == rollout_id, rt.c.wave == wave),
        )
    )
    latest = (
        select(func.max(t.c.id))
        .where(t.c.device_id == rt.c.device_id, t.c.created_by == creator)
        .scalar_subquery()
    )
    await conn.execute(
        update(rt).where(rt.c.rollout_id == rollout_id, rt.c.wave == wave).values(task_id=latest)
    )
    await conn.execute(update(r).where(r.c.id == rollout_id).values(current_wave=wave))
    details = {"rollout": rollout_id, "name": rollout.name, "wave": wave, "waves": rollout.waves}
    await events.record(hot.over(conn), now, [NewEvent(EventType.ROLLOUT_WAVE, None, details)])
    if not rollout.connection_request:
        return []
    return list(
        (
            await conn.execute(
                select(rt.c.device_id).where(rt.c.rollout_id == rollout_id, rt.c.wave == wave)
            )
        ).scalars()
    )


async def _wave_counts(conn: AsyncConnection, rollout_id: int) -> dict[int, dict[str, int]]:
    # "waiting": the wave is not queued yet; "gone": its task went with a forgotten device
    status = case((rt.c.task_id.is_(None), "waiting"), else_=func.coalesce(t.c.status, "gone"))
    rows = await conn.execute(
        select(rt.c.wave, status, func.count())
        .select_from(rt.outerjoin(t, t.c.id == rt.c.task_id))
        .where(rt.c.rollout_id == rollout_id)
        .group_by(rt.c.wave, status)
    )
    out: dict[int, dict[str, int]] = {}
    for wave, st, n in rows:
        out.setdefault(int(wave), {})[str(st)] = int(n)
    return out


def _summary(counts: dict[str, int]) -> dict[str, int]:
    pending = sum(counts.get(s, 0) for s in PENDING)
    done = counts.get("done", 0)
    total = sum(counts.values())
    return {"targets": total, "done": done, "failed": total - pending - done, "pending": pending}


async def advance(db: Database, now: datetime, task_ttl: int) -> list[str]:
    """Move running rollouts on; returns devices to poke for newly queued waves."""
    poke: list[str] = []
    async with db.write() as conn:
        running = (await conn.execute(select(r).where(r.c.status == "running"))).all()
        for rollout in running:
            counts = (await _wave_counts(conn, rollout.id)).get(rollout.current_wave, {})
            wave = _summary(counts)
            if wave["pending"]:
                continue
            # Several workers and nodes run this: the one whose update finds the rollout still
            # at this wave moves it on; the others leave it.
            at_this_wave = (
                r.c.id == rollout.id,
                r.c.status == "running",
                r.c.current_wave == rollout.current_wave,
            )
            share = wave["failed"] / wave["targets"] if wave["targets"] else 0.0
            details: dict[str, Any] = {"rollout": rollout.id, "name": rollout.name, **wave}
            if share > rollout.failure_threshold:
                reason = (
                    f"wave {rollout.current_wave}: {wave['failed']} of "
                    f"{wave['targets']} failed ({share:.0%} > "
                    f"{rollout.failure_threshold:.0%})"
                )
                moved = await conn.execute(
                    update(r)
                    .where(*at_this_wave)
                    .values(status="stopped", finished=now, reason=reason)
                )
                event = NewEvent(EventType.ROLLOUT_STOPPED, None, {**details, "reason": reason})
            elif rollout.current_wave >= rollout.waves:
                moved = await conn.execute(
                    update(r).where(*at_this_wave).values(status="done", finished=now)
                )
                event = NewEvent(EventType.ROLLOUT_FINISHED, None, details)
            else:
                moved = await conn.execute(
                    update(r).where(*at_this_wave).values(current_wave=rollout.current_wave + 1)
                )
                if moved.rowcount:
                    poke += await _queue_wave(
                        conn, rollout.id, rollout.current_wave + 1, now, task_ttl
                    )
                continue
            if moved.rowcount:
                await events.record(hot.over(conn), now, [event])
    return poke


async def stop(db: Database, rollout_id: int, now: datetime, reason: str) -> dict[str, Any]:
    """Stop a running rollout: no further wave is queued; queued tasks are cancelled."""
    async with db.write() as conn:
        result = await conn.execute(
            update(r)
            .where(r.c.id == rollout_id, r.c.status == "running")
            .values(status="stopped", finished=now, reason=reason)
        )
        if not result.rowcount:
            status = await conn.scalar(select(r.c.status).where(r.c.id == rollout_id))
            if status is None:
                raise RolloutNotFound(rollout_id)
            raise RolloutStateError(f"rollout {rollout_id} is {status}")
        stopped = {"rollout": rollout_id, "reason": reason}
        await events.record(
            hot.over(conn), now, [NewEvent(EventType.ROLLOUT_STOPPED, None, stopped)]
        )
        await lifecycle.move_all(
            hot.over(conn),
            Move.CANCEL,
            now,
            where="created_by = :creator AND status = 'queued'",
            params={"creator": f"rollout:{rollout_id}"},
        )
    return await get(db, rollout_id)


async def resume(db: Database, rollout_id: int, now: datetime, task_ttl: int) -> list[str]:
    """Resume a stopped rollout: the tasks its stop cancelled are queued again, and the
    failures that stopped it are accepted (a finished wave moves on to the next at once).
    Returns the devices to poke, as ``create`` does."""
    async with db.write() as conn:
        result = await conn.execute(
            update(r)
            .where(r.c.id == rollout_id, r.c.status == "stopped")
            .values(status="running", finished=None, reason=None)
        )
        if not result.rowcount:
            status = await conn.scalar(select(r.c.status).where(r.c.id == rollout_id))
            if status is None:
                raise RolloutNotFound(rollout_id)
            raise RolloutStateError(f"rollout {rollout_id} is {status}, not stopped")
        rollout = (await conn.execute(select(r).where(r.c.id == rollout_id))).one()
        await lifecycle.move_all(
            hot.over(conn),
            Move.RETRY,
            now,
            where="created_by = :creator AND status = 'cancelled'",
            params={"creator": f"rollout:{rollout_id}"},
            attempts=0,
            next_attempt=None,
            finished=None,
            fault=None,
            expires=now + timedelta(seconds=task_ttl),
        )
        details: dict[str, Any] = {"rollout": rollout_id, "name": rollout.name}
        await events.record(
            hot.over(conn), now, [NewEvent(EventType.ROLLOUT_RESUMED, None, details)]
        )
        wave = _summary((await _wave_counts(conn, rollout_id)).get(rollout.current_wave, {}))
        if wave["pending"]:
            poke: list[str] = []
            if rollout.connection_request:
                poke = list(
                    (
                        await conn.execute(
                            select(t.c.device_id).where(
                                t.c.created_by == f"rollout:{rollout_id}",
                                t.c.status == TaskStatus.QUEUED.value,
                            )
                        )
                    ).scalars()
                )
            return poke
        if rollout.current_wave >= rollout.waves:
            await conn.execute(
                update(r).where(r.c.id == rollout_id).values(status="done", finished=now)
            )
            finished = {**details, **wave}
            await events.record(
                hot.over(conn), now, [NewEvent(EventType.ROLLOUT_FINISHED, None, finished)]
            )
            return []
        await conn.execute(
            update(r).where(r.c.id == rollout_id).values(current_wave=rollout.current_wave + 1)
        )
        return await _queue_wave(conn, rollout_id, rollout.current_wave + 1, now, task_ttl)


def _view(row: Any, waves: dict[int, dict[str, int]]) -> dict[str, Any]:
    per_wave = [{"wave": w, **_summary(c)} for w, c in sorted(waves.items())]
    totals = {k: sum(w[k] for w in per_wave) for k in ("done", "failed", "pending")}
    return {
        "id": row.id,
        "name": row.name,
        "filter": row.filter,
        "task": {
            "name": row.task["name"],
            **tasks.redact_arguments(
                row.task["name"], {k: v for k, v in row.task.items() if k != "name"}
            ),
        },
        "wave_size": row.wave_size,
        "failure_threshold": row.failure_threshold,
        "connection_request": row.connection_request,
        "status": row.status,
        "current_wave": row.current_wave,
        "waves": row.waves,
        "targets": row.targets,
        "reason": row.reason,
        "created": row.created,
        "created_by": row.created_by,
        "finished": row.finished,
        "progress": totals,
        "wave_progress": per_wave,
    }


async def get(db: Database, rollout_id: int) -> dict[str, Any]:
    async with db.read() as conn:
        row = (await conn.execute(select(r).where(r.c.id == rollout_id))).first()
        if row is None:
            raise RolloutNotFound(rollout_id)
        return _view(row, await _wave_counts(conn, rollout_id))


async def list_rollouts(db: Database, limit: int = 100, offset: int = 0) -> tuple[list[Any], int]:
    async with db.read() as conn:
        total = await conn.scalar(select(func.count()).select_from(r))
        rows = (
            await conn.execute(select(r).order_by(r.c.id.desc()).limit(limit).offset(offset))
        ).all()
        return [_view(row, await _wave_counts(conn, row.id)) for row in rows], int(total or 0)
