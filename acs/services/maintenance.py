"""Periodic jobs: task timeouts and expiry, silent-device flagging.

Each job is a bounded batch of idempotent statements, safe to run on every worker of every
node at once.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update

from acs.cwmp import faults
from acs.db import tables
from acs.db.engine import Database
from acs.services import fault_log

log = logging.getLogger("acs.maintenance")
t = tables.tasks
d = tables.devices

_TIMEOUTS = {
    "awaiting_transfer": faults.ACS_TRANSFER_TIMEOUT,
    "awaiting_boot": faults.ACS_BOOT_TIMEOUT,
}


async def expire_tasks(db: Database, now: datetime, batch: int = 1000) -> int:
    """Queued tasks past ``expires`` become ``expired``; tasks waiting for a
    TransferComplete or a boot Inform past their deadline fault."""
    changed = 0
    async with db.write() as conn:
        result = await conn.execute(
            update(t)
            .where(t.c.status == "queued", t.c.expires <= now)
            .values(status="expired", finished=now)
        )
        changed += result.rowcount or 0
        for status, code in _TIMEOUTS.items():
            due = (
                select(t.c.id)
                .where(t.c.status == status, t.c.expires <= now)
                .limit(batch)
                .scalar_subquery()
            )
            fault = {"code": code, "string": faults.describe(code)}
            rows = (
                await conn.execute(
                    update(t)
                    .where(t.c.id.in_(due), t.c.status == status)
                    .values(status="fault", finished=now, fault=fault)
                    .returning(t.c.id, t.c.device_id)
                )
            ).all()
            await fault_log.record_many(
                conn,
                [(row.device_id, row.id) for row in rows],
                now=now,
                source="acs",
                code=code,
            )
            changed += len(rows)
    return changed


async def flag_silent_devices(db: Database, now: datetime) -> int:
    """Mark devices that missed their periodic Informs (``silent_since``); an Inform
    clears the flag. Returns how many went silent since the last run."""
    async with db.write() as conn:
        result = await conn.execute(
            update(d)
            .where(d.c.inform_deadline <= now, d.c.silent_since.is_(None))
            .values(silent_since=d.c.inform_deadline)
        )
    flagged = int(result.rowcount or 0)
    if flagged:
        log.warning("%d device(s) went silent (missed their periodic Informs)", flagged)
    return flagged
