"""Leases: a role that one worker of the whole cluster holds at a time (the XMPP session).

A lease is a row (``leases``): its holder and when it expires. Taking it and renewing it are
the same guarded UPDATE (``WHERE holder = me OR expires <= now``), so of several workers
asking at once exactly one gets it, and a holder that stops renewing (it died, or lost the
database) loses it ``ttl`` seconds after its last renewal. No clock is shared but the
database's rows: every node compares its own clock with ``expires``, so clocks must agree to
well within the ttl (NTP).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update

from acs.db import tables
from acs.db.engine import Database

_l = tables.leases


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    holder: str
    expires: datetime
    detail: dict[str, Any] | None

    def held(self, now: datetime) -> bool:
        return self.expires > now


async def take(
    db: Database,
    name: str,
    holder: str,
    now: datetime,
    ttl: float,
    detail: dict[str, Any] | None = None,
) -> bool:
    """Take the lease, or renew it if ``holder`` has it; False: another holds it."""
    expires = now + timedelta(seconds=ttl)
    async with db.write() as conn:
        renewed = await conn.execute(
            update(_l)
            .where(_l.c.name == name, or_(_l.c.holder == holder, _l.c.expires <= now))
            .values(holder=holder, expires=expires, detail=detail)
        )
        if renewed.rowcount:
            return True
        created = await conn.execute(
            tables.insert_for(conn, _l)
            .values(name=name, holder=holder, expires=expires, detail=detail)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        return bool(created.rowcount)


async def release(db: Database, name: str, holder: str, now: datetime) -> None:
    """Give the lease up now (a worker stopping), if ``holder`` has it."""
    async with db.write() as conn:
        await conn.execute(
            update(_l)
            .where(_l.c.name == name, _l.c.holder == holder)
            .values(expires=now, detail=None)
        )


async def read(db: Database, name: str) -> Lease | None:
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(_l.c.name, _l.c.holder, _l.c.expires, _l.c.detail).where(_l.c.name == name)
            )
        ).first()
    return Lease(row.name, row.holder, row.expires, row.detail) if row is not None else None
