"""Device status from its periodic Informs, as data: states, the moves between them, the
deadline of each state, and the job that moves devices whose deadline passed.

Theory of operation
-------------------
A device row keeps ``status`` (as of its last move), ``status_since`` and
``inform_deadline``: when the status moves on if no Inform comes. An Inform moves any device
to ``online`` (``unknown`` when no periodic interval is known: there is nothing to watch) and
sets the deadline one interval and the grace ahead (``ACS_INFORM_GRACE``: clocks drift,
sessions retry). The status job (every worker, every scheduler run) finds the devices whose
deadline passed through the index on ``inform_deadline`` (the work is the devices that moved,
not the fleet) and moves each with ``UPDATE ... WHERE id = :id AND status = :from AND
inform_deadline <= :now``: a device that informed meanwhile, or that another worker or node
moved first, does not match, so each move (and its event) happens once. On PostgreSQL the
job locks the rows it takes (``FOR UPDATE SKIP LOCKED``) and an Inform locks its device row
when it reads it, so the two wait for each other instead of interleaving.

States and moves::

    never_seen --inform--> online | unknown                 (device.registered)
    online --missed (one interval + grace)--> late           (device.late)
    late --missed (ACS_OFFLINE_AFTER_MISSED intervals + grace)--> offline (device.offline)
    late, offline --inform--> online | unknown              (device.back)

Between the deadline and the job's next run the stored status lags; ``effective`` says what it
is now, and the API's views and filters use it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import and_, or_
from sqlalchemy.sql.elements import ColumnElement

from acs import logs
from acs.cwmp import messages as m
from acs.db import hot, tables
from acs.db.engine import Database
from acs.db.types import JSONDoc, UTCDateTime
from acs.services import events
from acs.services.events import EventType, NewEvent
from acs.services.inform import inform_deadline

log = logging.getLogger("acs.monitoring")


class Status(StrEnum):
    NEVER_SEEN = "never_seen"  # registered by an operator, no Inform yet
    ONLINE = "online"
    LATE = "late"  # missed one periodic Inform
    OFFLINE = "offline"  # missed several
    UNKNOWN = "unknown"  # informs, but no periodic interval is known


S = Status
# What the job does when a deadline passes: (from, to, the event it records).
MISSED: Final[dict[Status, tuple[Status, EventType]]] = {
    S.ONLINE: (S.LATE, EventType.DEVICE_LATE),
    S.LATE: (S.OFFLINE, EventType.DEVICE_OFFLINE),
}
# Names the API accepted before these states, kept for one release: the states they cover.
ALIASES: Final[dict[str, tuple[Status, ...]]] = {"silent": (S.LATE, S.OFFLINE)}


@dataclass(frozen=True, slots=True)
class Watch:
    """How devices are watched (settings)."""

    grace: int  # seconds past a missed periodic Inform before it counts as missed
    offline_after: int  # missed Informs that make a device offline


def deadline(
    status: Status, last_inform: datetime | None, interval: int | None, watch: Watch
) -> datetime | None:
    """When a device in ``status`` moves on if no Inform comes; ``None``: never."""
    if last_inform is None or not interval:
        return None
    if status is S.ONLINE:
        return inform_deadline(last_inform, interval, watch.grace)
    if status is S.LATE:
        return last_inform + timedelta(seconds=watch.offline_after * interval + watch.grace)
    return None


# SQL for a statement that may give a device a periodic interval (``:watched``, a boolean:
# it does; ``:now``): an ``unknown`` device is watched from now on.
WATCHED_NOW: Final = (
    "status_since = CASE WHEN status = 'unknown' AND :watched THEN :now ELSE status_since END, "
    "status = CASE WHEN status = 'unknown' AND :watched THEN 'online' ELSE status END"
)


def effective(status: str, inform_deadline: datetime | None, now: datetime) -> Status:
    """The status now: the stored one, moved on once if its deadline passed before the job
    ran (an online device past its deadline is late; a late one, offline)."""
    stored = Status(status)
    moved = MISSED.get(stored)
    if moved is not None and inform_deadline is not None and inform_deadline <= now:
        return moved[0]
    return stored


def inform_events(
    device_id: str,
    *,
    known: bool,
    before: str | None,
    event_codes: Sequence[str],
    old_version: str | None,
    new_version: str | None,
) -> list[NewEvent]:
    """What an Inform tells about its device, beyond its parameters: first seen, booted,
    back after a silence, a new software version."""
    out: list[NewEvent] = []
    if not known or before == S.NEVER_SEEN:
        out.append(NewEvent(EventType.DEVICE_REGISTERED, device_id, {}))
    elif before in (S.LATE, S.OFFLINE):
        out.append(NewEvent(EventType.DEVICE_BACK, device_id, {"was": before}))
    if "0 BOOTSTRAP" in event_codes:
        out.append(NewEvent(EventType.DEVICE_BOOTSTRAPPED, device_id, {}))
    if "1 BOOT" in event_codes:
        out.append(NewEvent(EventType.DEVICE_BOOTED, device_id, {}))
    if known and old_version and new_version and old_version != new_version:
        details = {"from": old_version, "to": new_version}
        out.append(NewEvent(EventType.DEVICE_VERSION_CHANGED, device_id, details))
    return out


_WATCH_READS: dict[tuple[str, ...], hot.Statement] = {}


def _watch_read(paths: tuple[str, ...]) -> hot.Statement:
    """The stored entries of ``paths`` (validated parameter paths: ACS_WATCHED_PARAMETERS)."""
    statement = _WATCH_READS.get(paths)
    if statement is None:
        names = tuple(f"v{n}" for n in range(len(paths)))
        pg = ", ".join(f"parameters -> '{p}' AS {v}" for p, v in zip(paths, names, strict=True))
        lite = ", ".join(
            f"json_extract(parameters, '$.\"{p}\"') AS {v}"
            for p, v in zip(paths, names, strict=True)
        )
        where = " FROM devices WHERE id = :id"
        statement = _WATCH_READS[paths] = hot.Statement(
            {"postgresql": f"SELECT {pg}{where}", "sqlite": f"SELECT {lite}{where}"},
            columns=names,
            types=dict.fromkeys(names, JSONDoc),
        )
    return statement


async def watched_changes(
    tx: hot.Transaction,
    device_id: str,
    params: Sequence[m.ParameterValueStruct],
    watched: Sequence[str],
) -> list[NewEvent]:
    """A ``device.parameters_changed`` event if ``params`` (about to be merged into the
    device's tree) change the value of a watched path; reads the device's tree only when they
    carry one."""
    wanted = set(watched)
    new = {p.name: p.value for p in params if p.name in wanted}
    if not new:
        return []
    paths = tuple(sorted(new))
    row = await tx.first(_watch_read(paths), id=device_id)
    changes: dict[str, dict[str, Any]] = {}
    for n, path in enumerate(paths):
        entry = row[n] if row is not None else None
        old = entry.get("value") if isinstance(entry, dict) else None
        if old != new[path]:
            changes[path] = {"from": old, "to": new[path]}
    if not changes:
        return []
    return [NewEvent(EventType.DEVICE_PARAMETERS_CHANGED, device_id, {"changes": changes})]


def status_filter(wanted: Sequence[str], now: datetime) -> ColumnElement[bool]:
    """Devices whose ``effective`` status is one of ``wanted`` (names or aliases), by the
    indexes on ``status`` and ``inform_deadline``."""
    d = tables.devices
    states: set[Status] = set()
    for name in wanted:
        states.update(ALIASES.get(name, ()) or (Status(name),))
    passed = and_(d.c.inform_deadline.is_not(None), d.c.inform_deadline <= now)
    not_passed = or_(d.c.inform_deadline.is_(None), d.c.inform_deadline > now)
    clauses: list[ColumnElement[bool]] = []
    for state in states:
        clauses.append(
            and_(d.c.status == state.value, not_passed)
            if state in MISSED
            else d.c.status == state.value
        )
        for source, (target, _) in MISSED.items():
            if target is state:
                clauses.append(and_(d.c.status == source.value, passed))
    return or_(*clauses)


# --- the status job ---------------------------------------------------------------------------

_DUE = hot.Statement(
    {
        "sqlite": "SELECT id, last_inform, periodic_inform_interval FROM devices "
        "WHERE inform_deadline <= :now AND status = :status ORDER BY inform_deadline "
        "LIMIT :batch",
        "postgresql": "SELECT id, last_inform, periodic_inform_interval FROM devices "
        "WHERE inform_deadline <= :now AND status = :status ORDER BY inform_deadline "
        "LIMIT :batch FOR UPDATE SKIP LOCKED",
    },
    columns=("id", "last_inform", "periodic_inform_interval"),
    binds={"now": UTCDateTime()},
    types={"last_inform": UTCDateTime()},
)
_MOVE = hot.Statement(
    "UPDATE devices SET status = :to, status_since = :now, inform_deadline = :deadline "
    "WHERE id = :id AND status = :was AND inform_deadline <= :now",
    binds={"now": UTCDateTime(), "deadline": UTCDateTime()},
)


async def move_overdue(db: Database, now: datetime, watch: Watch, batch: int = 1000) -> int:
    """Move every device whose deadline passed on (``MISSED``), recording each move once;
    how many moved."""
    moved = 0
    for source, (target, event_type) in MISSED.items():
        while True:
            with logs.deferred():
                async with db.write() as conn:  # off the event loop on SQLite
                    tx = hot.over(conn)
                    done, seen = await _move_batch(
                        tx, now, watch, batch, source, target, event_type
                    )
            moved += done
            if seen < batch:
                break
    return moved


async def _move_batch(
    tx: hot.Transaction,
    now: datetime,
    watch: Watch,
    batch: int,
    source: Status,
    target: Status,
    event_type: EventType,
) -> tuple[int, int]:
    rows: list[Any] = await tx.fetch(_DUE, now=now, status=source.value, batch=batch)
    recorded: list[NewEvent] = []
    for row in rows:
        due = deadline(target, row.last_inform, row.periodic_inform_interval, watch)
        applied = await tx.execute(
            _MOVE, id=row.id, to=target.value, now=now, deadline=due, was=source.value
        )
        if applied:
            details = {"last_inform": row.last_inform.isoformat() if row.last_inform else None}
            recorded.append(NewEvent(event_type, row.id, details))
    await events.record(tx, now, recorded)
    if recorded:
        logs.after_commit(
            log, logging.INFO, f"devices {target.value}", devices=len(recorded), was=source.value
        )
    return len(recorded), len(rows)
