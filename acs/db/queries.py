"""Named queries of the CWMP hot path. Each is one statement; none depends on fleet size.

Both backends get the same semantics; where SQL differs (JSON merge), the dialect picks.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Table,
    delete,
    func,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from acs.db.models import (
    ApiToken,
    AuditEntry,
    ConfigProfile,
    CwmpSession,
    Device,
    DigestNonce,
    FaultRecord,
    FileAssignment,
    InformRecord,
    Meta,
    Operator,
    Phone,
    RenderedConfig,
    Rollout,
    RolloutTarget,
    StoredFile,
    Task,
    WorkOrder,
)

devices = cast(Table, Device.__table__)
sessions = cast(Table, CwmpSession.__table__)
informs = cast(Table, InformRecord.__table__)
meta = cast(Table, Meta.__table__)
nonces = cast(Table, DigestNonce.__table__)
tasks = cast(Table, Task.__table__)
fault_records = cast(Table, FaultRecord.__table__)
operators = cast(Table, Operator.__table__)
api_tokens = cast(Table, ApiToken.__table__)
audit_log = cast(Table, AuditEntry.__table__)
files = cast(Table, StoredFile.__table__)
profiles = cast(Table, ConfigProfile.__table__)
phones = cast(Table, Phone.__table__)
assignments = cast(Table, FileAssignment.__table__)
rendered = cast(Table, RenderedConfig.__table__)
rollouts = cast(Table, Rollout.__table__)
rollout_targets = cast(Table, RolloutTarget.__table__)
work_orders = cast(Table, WorkOrder.__table__)

AnyRow = Row[*tuple[Any, ...]]


def insert_for(conn: AsyncConnection, table: Any) -> Any:
    """An INSERT with ``on_conflict_do_*`` for the connection's backend."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


# --- meta -----------------------------------------------------------------------------


async def meta_get_or_create(conn: AsyncConnection, key: str, make: str) -> str:
    """The value of ``key``; ``make`` is stored first if there is none (first node wins)."""
    await conn.execute(insert_for(conn, meta).values(key=key, value=make).on_conflict_do_nothing())
    value = await conn.scalar(select(meta.c.value).where(meta.c.key == key))
    assert value is not None
    return str(value)


# --- devices on Inform ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceAuth:
    """What authenticating a device's Inform needs, and its open session if any."""

    exists: bool
    cwmp_username: str | None = None
    cwmp_ha1_md5: str | None = None
    cwmp_ha1_sha256: str | None = None
    cr_username: str | None = None
    periodic_inform_interval: int | None = None
    mode: str | None = None
    session_id: str | None = None
    session_peer_host: str | None = None
    session_peer_port: int | None = None
    session_expires: datetime | None = None


async def device_auth(conn: AsyncConnection, device_id: str) -> DeviceAuth:
    stmt = (
        select(
            devices.c.cwmp_username,
            devices.c.cwmp_ha1_md5,
            devices.c.cwmp_ha1_sha256,
            devices.c.cr_username,
            devices.c.periodic_inform_interval,
            devices.c.mode,
            sessions.c.id.label("session_id"),
            sessions.c.peer_host.label("session_peer_host"),
            sessions.c.peer_port.label("session_peer_port"),
            sessions.c.expires.label("session_expires"),
        )
        .select_from(devices.outerjoin(sessions, sessions.c.device_id == devices.c.id))
        .where(devices.c.id == device_id)
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        return DeviceAuth(False)
    return DeviceAuth(True, **row._mapping)


async def upsert_device_on_inform(
    conn: AsyncConnection,
    values: dict[str, Any],
    parameters: dict[str, dict[str, Any]],
    *,
    bootstrap: bool,
) -> None:
    """Insert or update a device from an Inform in one statement.

    ``parameters`` merge into the stored tree key by key (keeping what an Inform does not
    carry, such as ``writable``); on ``0 BOOTSTRAP`` the tree is replaced instead, since
    a bootstrapped device's data model is not the one we knew (TR-069 3.7.1.5).
    """
    stmt = insert_for(conn, devices).values(
        **values, parameters=parameters, first_seen=values["last_inform"]
    )
    excluded = stmt.excluded
    merged: Any = excluded.parameters if bootstrap else _merge_expression(conn, excluded)
    update_values: dict[str, Any] = {
        name: excluded[name] for name in values if name not in ("id", "last_boot")
    }
    update_values["parameters"] = merged
    update_values["last_boot"] = func.coalesce(excluded.last_boot, devices.c.last_boot)
    update_values["last_bootstrap"] = func.coalesce(
        excluded.last_bootstrap, devices.c.last_bootstrap
    )
    for optional in (
        "mac",
        "software_version",
        "hardware_version",
        "connection_request_url",
        "udp_connection_request_address",
        "periodic_inform_interval",
    ):
        # An Inform that does not carry a value must not erase the one we know.
        update_values[optional] = func.coalesce(excluded[optional], devices.c[optional])
    await conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=update_values))


_PG_MERGE = (
    "devices.parameters || COALESCE((SELECT jsonb_object_agg(e.key, "
    "COALESCE(devices.parameters -> e.key, '{{}}'::jsonb) || e.value) "
    "FROM jsonb_each({patch}) AS e), '{{}}'::jsonb)"
)


def _merge_expression(conn: AsyncConnection, excluded: Any) -> Any:
    """SQL for "the stored tree with the proposed row's parameters merged in, key by key".

    Each parameter keeps the keys the patch does not carry (``writable`` survives an
    Inform's value update). SQLite: RFC 7396 ``json_patch``. PostgreSQL: a per-key ``||``.
    """
    if conn.dialect.name == "postgresql":
        return literal_column(_PG_MERGE.format(patch="excluded.parameters"))
    return func.json_patch(devices.c.parameters, excluded.parameters)


_PG_MERGE_PATCH = _PG_MERGE.format(patch="CAST(:patch AS jsonb)")
_MERGE_SQL = {
    "postgresql": f"UPDATE devices SET parameters = {_PG_MERGE_PATCH} WHERE id = :id",  # noqa: S608
    "sqlite": "UPDATE devices SET parameters = json_patch(parameters, :patch) WHERE id = :id",
}
_DELETE_SUBTREE_SQL = {
    "postgresql": "UPDATE devices SET parameters = COALESCE((SELECT jsonb_object_agg(e.key, "
    "e.value) FROM jsonb_each(devices.parameters) AS e WHERE NOT starts_with(e.key, :prefix)), "
    "'{}'::jsonb) WHERE id = :id",
    "sqlite": "UPDATE devices SET parameters = COALESCE((SELECT json_group_object(e.key, "
    "json(e.value)) FROM json_each(devices.parameters) AS e WHERE substr(e.key, 1, "
    "length(:prefix)) <> :prefix), '{}') WHERE id = :id",
}


async def merge_parameters(
    conn: AsyncConnection, device_id: str, patch: dict[str, dict[str, Any]]
) -> None:
    """Merge ``{path: {key: value}}`` into a device's parameter tree (one statement)."""
    if patch:
        await conn.execute(
            text(_MERGE_SQL[conn.dialect.name]), {"patch": json.dumps(patch), "id": device_id}
        )


async def delete_parameter_subtree(conn: AsyncConnection, device_id: str, prefix: str) -> None:
    """Forget every parameter under ``prefix`` (a deleted object instance)."""
    await conn.execute(
        text(_DELETE_SUBTREE_SQL[conn.dialect.name]), {"prefix": prefix, "id": device_id}
    )


async def insert_inform(
    conn: AsyncConnection,
    *,
    device_id: str,
    received: datetime,
    events: list[list[str]],
    retry_count: int,
    peer_host: str | None,
) -> None:
    await conn.execute(
        informs.insert().values(
            device_id=device_id,
            received=received,
            events=events,
            retry_count=retry_count,
            peer_host=peer_host,
        )
    )


# --- sessions ---------------------------------------------------------------------------

_SESSION_COLUMNS = (
    sessions.c.id,
    sessions.c.device_id,
    sessions.c.state,
    sessions.c.peer_host,
    sessions.c.peer_port,
    sessions.c.expires,
)


def new_session_id() -> str:
    return secrets.token_urlsafe(18)


async def delete_device_session(
    conn: AsyncConnection, device_id: str, session_id: str | None
) -> None:
    """Remove the device's session ``session_id`` (one we decided to replace)."""
    if session_id is None:
        return
    await conn.execute(
        delete(sessions).where(sessions.c.device_id == device_id, sessions.c.id == session_id)
    )


async def delete_expired_session(conn: AsyncConnection, device_id: str, now: datetime) -> None:
    await conn.execute(
        delete(sessions).where(sessions.c.device_id == device_id, sessions.c.expires <= now)
    )


async def insert_session(
    conn: AsyncConnection,
    *,
    session_id: str,
    device_id: str,
    state: dict[str, Any],
    peer_host: str,
    peer_port: int,
    now: datetime,
    expires: datetime,
) -> bool:
    """Claim the device's one session slot; ``False`` if another session holds it."""
    stmt = (
        insert_for(conn, sessions)
        .values(
            id=session_id,
            device_id=device_id,
            state=state,
            peer_host=peer_host,
            peer_port=peer_port,
            started=now,
            updated=now,
            expires=expires,
        )
        .on_conflict_do_nothing()
    )
    result = await conn.execute(stmt)
    return bool(result.rowcount)


async def find_sessions(
    conn: AsyncConnection,
    *,
    now: datetime,
    session_ids: Sequence[str] = (),
    peer_host: str | None = None,
    peer_port: int | None = None,
) -> list[AnyRow]:
    """Open sessions by cookie, else by connection, else by peer address.

    Each is its own indexed lookup, tried in that order: a cookie settles it at once, and
    thousands of cookie-less sessions behind one address cannot crowd it out.
    """
    base = select(*_SESSION_COLUMNS).where(sessions.c.expires > now)
    if session_ids:
        rows = (await conn.execute(base.where(sessions.c.id.in_(list(session_ids))))).all()
        if rows:
            return list(rows)
    if peer_host is None:
        return []
    if peer_port is not None:
        rows = (
            await conn.execute(
                base.where(sessions.c.peer_host == peer_host, sessions.c.peer_port == peer_port)
            )
        ).all()
        if rows:
            return list(rows)
    stmt = base.where(sessions.c.peer_host == peer_host).order_by(sessions.c.updated.desc())
    return list((await conn.execute(stmt.limit(50))).all())


async def get_session(conn: AsyncConnection, session_id: str) -> AnyRow | None:
    stmt = select(*_SESSION_COLUMNS).where(sessions.c.id == session_id)
    return (await conn.execute(stmt)).first()


async def save_session(
    conn: AsyncConnection,
    session_id: str,
    *,
    state: dict[str, Any],
    peer_host: str,
    peer_port: int,
    now: datetime,
    expires: datetime,
) -> bool:
    result = await conn.execute(
        update(sessions)
        .where(sessions.c.id == session_id)
        .values(
            state=state,
            peer_host=peer_host,
            peer_port=peer_port,
            updated=now,
            expires=expires,
        )
    )
    return bool(result.rowcount)


async def delete_session(conn: AsyncConnection, session_id: str) -> bool:
    result = await conn.execute(delete(sessions).where(sessions.c.id == session_id))
    return bool(result.rowcount)


async def expired_sessions(conn: AsyncConnection, now: datetime, limit: int = 500) -> list[AnyRow]:
    stmt = select(*_SESSION_COLUMNS).where(sessions.c.expires <= now).limit(limit)
    return list((await conn.execute(stmt)).all())


# --- digest nonce counts (strict mode) ----------------------------------------------------


async def advance_nonce_count(
    conn: AsyncConnection, nonce: str, nc: int, expires: datetime
) -> bool:
    """Record ``nc`` for ``nonce``; ``False`` if it is not higher than one seen before."""
    stmt = insert_for(conn, nonces).values(nonce=nonce, last_nc=nc, expires=expires)
    stmt = stmt.on_conflict_do_update(
        index_elements=["nonce"],
        set_={"last_nc": stmt.excluded.last_nc},
        where=nonces.c.last_nc < stmt.excluded.last_nc,
    )
    result = await conn.execute(stmt)
    return bool(result.rowcount)


async def prune_nonces(conn: AsyncConnection, now: datetime) -> int:
    result = await conn.execute(delete(nonces).where(nonces.c.expires <= now))
    return int(result.rowcount or 0)
