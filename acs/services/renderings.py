"""Configurations kept as the file server sends them, so that a phone's fetch is one read.

A rendering (``provisioning_renderings``) is made on the first request for a name after its
inputs changed, in a write transaction, and kept until the next change. Every write of an
input drops what it may change, in its own transaction: a phone (``forget(conn, mac=...)``:
its MAC files and the named ones, since an ``$input`` id names a phone), or everything (a
profile, an assignment, a stored file: the AUTOUPDATE URLs carry its digest, an import).

A rendering made from inputs read before a change must not be kept after it: on PostgreSQL
the render takes a shared transaction-level advisory lock before it reads, and every
``forget`` the exclusive one, so a change waits for renders in flight and a render for the
change (then reads what it wrote). SQLite runs one write transaction at a time.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import delete, or_, text
from sqlalchemy.ext.asyncio import AsyncConnection

from acs.db import hot, tables
from acs.provisioning import models as phone_models

r = tables.renderings

# pg_advisory_xact_lock key of the renderings ("rndr" in ASCII): any other user picks another
LOCK: Final = 0x726E6472


def key(request: phone_models.ProvisioningRequest) -> str:
    """The kept rendering's key for what a name asks for (``general:X6:text``,
    ``mac:001565113af8:xml``, ``name:desk42:text``)."""
    if isinstance(request, phone_models.GeneralFile):
        return f"general:{request.model}:{request.fmt}"
    if isinstance(request, phone_models.MacFile):
        return f"mac:{request.mac}:{request.fmt}"
    return f"name:{request.name}:{request.fmt}"


async def forget(conn: AsyncConnection, *, mac: str | None = None) -> None:
    """Drop the kept renderings an input change may alter: one phone's (``mac``), or all."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK})
    if mac is None:
        await conn.execute(delete(r))
    else:
        await conn.execute(
            delete(r).where(or_(r.c.key.like(f"mac:{mac}:%"), r.c.key.like("name:%")))
        )


async def before_render(tx: hot.Transaction) -> None:
    """Wait for changes in flight (PostgreSQL), in the render's write transaction."""
    if tx.dialect == "postgresql":
        await tx.execute(_RENDER_LOCK, key=LOCK)


_RENDER_LOCK: Final = hot.Statement("SELECT pg_advisory_xact_lock_shared(:key)")

# Where the file server is reached (the Host a phone sent, without ACS_PUBLIC_URL) is part of
# a kept rendering's key: its URLs point there. A key is kept for this many at most, so
# clients sending made-up Hosts cannot grow the table without bound (beyond: render only).
BASES_PER_KEY: Final = 8
#: How many other bases a key is kept for.
OTHER_BASES: Final = hot.Statement(
    "SELECT count(*) FROM provisioning_renderings WHERE key = :key AND base_url <> :base_url",
    columns=("n",),
)
#: Keep a rendering (``key``, ``base_url``) made in this transaction, replacing an older one.
KEEP: Final = hot.Statement(
    "INSERT INTO provisioning_renderings "
    "(key, base_url, file_name, content_type, version, mac, content) "
    "VALUES (:key, :base_url, :file_name, :content_type, :version, :mac, :content) "
    "ON CONFLICT (key, base_url) DO UPDATE SET file_name = excluded.file_name, "
    "content_type = excluded.content_type, version = excluded.version, mac = excluded.mac, "
    "content = excluded.content"
)
