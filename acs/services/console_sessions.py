"""Sign-in sessions of the web console.

A session is a row (``console_sessions``) keyed by the SHA-256 of a 256-bit random token the
browser keeps in a cookie: any worker of any node finds it, and logout or an operator's
disabling ends it everywhere. It ends after ``idle`` seconds without a request and
``max_age`` seconds after sign-in, whichever comes first. The operator's role is read with
the session on every request, so a changed role applies at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, select, update

from acs.db import tables
from acs.db.engine import Database
from acs.services.operators import OperatorNotFound, Principal

cs = tables.console_sessions
o = tables.operators

TOUCH_EVERY: Final = timedelta(seconds=60)  # last_seen is moved at most this often


@dataclass(frozen=True, slots=True)
class Lifetime:
    idle: int  # seconds without a request
    max_age: int  # seconds after sign-in


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A live console session: who, and the session's own id (the token's hash)."""

    principal: Principal
    session_id: str


def session_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(db: Database, operator: str, now: datetime, lifetime: Lifetime) -> str:
    """A new session for ``operator`` (already authenticated): the token for the cookie."""
    token = secrets.token_urlsafe(32)
    async with db.write() as conn:
        operator_id = await conn.scalar(select(o.c.id).where(o.c.name == operator))
        if operator_id is None:
            raise OperatorNotFound(operator)
        await conn.execute(delete(cs).where(cs.c.expires <= now))  # the ended ones, by index
        await conn.execute(
            cs.insert().values(
                id=session_id(token),
                operator_id=operator_id,
                created=now,
                last_seen=now,
                expires=now + timedelta(seconds=lifetime.max_age),
            )
        )
    return token


async def resume(db: Database, token: str, now: datetime, lifetime: Lifetime) -> SignedIn | None:
    """The session this token opened, if it is still alive and its operator enabled."""
    sid = session_id(token)
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(cs.c.last_seen, cs.c.expires, o.c.name, o.c.role, o.c.disabled)
                .join(o, o.c.id == cs.c.operator_id)
                .where(cs.c.id == sid)
            )
        ).first()
    if row is None or row.disabled:
        return None
    if row.expires <= now or row.last_seen + timedelta(seconds=lifetime.idle) <= now:
        await close(db, token)
        return None
    # coarse, so that reads do not all become writes; often enough for a short idle timeout
    if now - row.last_seen >= min(TOUCH_EVERY, timedelta(seconds=lifetime.idle / 4)):
        async with db.write() as conn:
            await conn.execute(update(cs).where(cs.c.id == sid).values(last_seen=now))
    return SignedIn(Principal(row.name, row.role, "console"), sid)


async def close(db: Database, token: str) -> None:
    async with db.write() as conn:
        await conn.execute(delete(cs).where(cs.c.id == session_id(token)))
