"""Indexes on chosen parameter values, so device searches by those parameters stay fast.

Any parameter can be searched (``GET /api/v1/devices?parameter=PATH=VALUE``); without an
index that is a scan of every device's parameter tree. An operator names the paths worth
indexing (``ACS_INDEXED_PARAMETERS``); each gets an expression index on exactly the SQL the
search uses, so the planner picks it. (A GIN index over whole trees would serve every path,
but would be rewritten on every Inform of every device: too dear for the hot path.)
"""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from acs.config import INDEXABLE_PATH_RE
from acs.db.engine import Database


def value_expression(dialect: str, path: str, column: str = "devices.parameters") -> str:
    """SQL for "the value of parameter ``path``" (a literal path, so indexes match)."""
    if not INDEXABLE_PATH_RE.fullmatch(path):
        raise ValueError(f"bad parameter path {path!r}")
    if dialect == "postgresql":
        return f"(({column} -> '{path}') ->> 'value')"
    return f"json_extract({column}, '$.\"{path}\".value')"


def index_name(path: str) -> str:
    return "ix_devices_param_" + hashlib.sha256(path.encode()).hexdigest()[:16]


async def ensure_indexes(db: Database, paths: list[str]) -> None:
    """Create the missing indexes (idempotent; several nodes may run it at once)."""
    if not paths:
        return
    async with db.engine.connect() as conn:
        if db.is_postgresql:
            await conn.execute(text("SELECT pg_advisory_lock(754702)"))
        try:
            for path in paths:
                await _ensure(conn, db.dialect, path)
                await conn.commit()
        finally:
            if db.is_postgresql:
                await conn.execute(text("SELECT pg_advisory_unlock(754702)"))
                await conn.commit()


async def _ensure(conn: AsyncConnection, dialect: str, path: str) -> None:
    expression = value_expression(dialect, path, column="parameters")
    await conn.execute(
        text(f"CREATE INDEX IF NOT EXISTS {index_name(path)} ON devices ({expression})")
    )
