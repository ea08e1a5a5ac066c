"""Periodic jobs: task timeouts and expiry.

Each job is a bounded batch of idempotent statements, safe to run on every worker of every
node at once.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from acs import logs
from acs.cwmp import faults, xsd
from acs.db import hot, tables
from acs.db.engine import Database
from acs.db.types import UTCDateTime
from acs.services import fault_log
from acs.services import task_lifecycle as lifecycle
from acs.services.inform import BOOT_EVENTS
from acs.services.task_lifecycle import Move, TaskStatus

log = logging.getLogger("acs.maintenance")
d = tables.devices

_TIMEOUTS = {
    TaskStatus.AWAITING_TRANSFER: (faults.ACS_TRANSFER_TIMEOUT, "TransferComplete"),
    TaskStatus.AWAITING_BOOT: (faults.ACS_BOOT_TIMEOUT, "boot Inform"),
}
_DUE = hot.Statement(
    "SELECT id, device_id, name, started FROM tasks WHERE status = :status AND expires <= :now "
    "ORDER BY id LIMIT :batch",
    columns=("id", "device_id", "name", "started"),
    binds={"now": UTCDateTime()},
    types={"started": UTCDateTime()},
)
_INFORMS_SINCE = hot.Statement(
    "SELECT received, events FROM informs WHERE device_id = :device_id AND received > :since "
    "ORDER BY received DESC LIMIT 20",
    columns=("received", "events"),
    binds={"since": UTCDateTime()},
    types={"received": UTCDateTime(), "events": lifecycle.TYPES["result"]},
)


async def expire_tasks(db: Database, now: datetime, batch: int = 1000) -> int:
    """Queued tasks past ``expires`` become ``expired``; tasks waiting for a
    TransferComplete or a boot Inform past their deadline fault, saying what the device did
    meanwhile."""
    with logs.deferred():
        async with db.write() as conn:
            tx = hot.over(conn)
            changed = await lifecycle.move_all(tx, Move.EXPIRE, now, where="expires <= :now")
            assert isinstance(changed, int)
            for status, (code, awaited) in _TIMEOUTS.items():
                for task in await tx.fetch(_DUE, status=status.value, now=now, batch=batch):
                    string = await _what_was_seen(tx, task, awaited)
                    fault = {"code": code, "string": string}
                    if await lifecycle.move(tx, task.id, Move.TIME_OUT, now, fault=fault):
                        await fault_log.record(
                            tx,
                            device_id=task.device_id,
                            task_id=task.id,
                            now=now,
                            source="acs",
                            code=code,
                            string=string,
                        )
                        changed += 1
    return changed


async def _what_was_seen(tx: hot.Transaction, task: Any, awaited: str) -> str:
    """The timeout, and the Informs the device sent since the task was sent: "no boot
    Inform" is a different story when the device came back with events nobody expected."""
    if task.started is None:
        return f"no {awaited} in time"
    informs = await tx.fetch(_INFORMS_SINCE, device_id=task.device_id, since=task.started)
    sent = xsd.format_datetime(task.started)
    if not informs:
        return f"{task.name} sent {sent}: no {awaited} in time; no Inform since"
    last = informs[0]
    events = ", ".join(e[0] for e in last.events) or "no events"
    booted = sum(1 for i in informs if BOOT_EVENTS.intersection(e[0] for e in i.events))
    more = "20 or more" if len(informs) == 20 else str(len(informs))
    return (
        f"{task.name} sent {sent}: no {awaited} in time; "
        f"{more} Inform(s) since ({booted} with a boot event), "
        f"the last at {xsd.format_datetime(last.received)} with {events}"
    )
