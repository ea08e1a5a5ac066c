"""Named queries of the CWMP hot path. Each is one statement; none depends on fleet size.

Both backends get the same semantics; where SQL differs (JSON merge), the dialect picks.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from acs.db import hot
from acs.db.tables import AnyRow, insert_for, meta, nonces, sessions
from acs.db.types import JSONDoc, UTCDateTime

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

    cwmp_username: str | None = None
    cwmp_ha1_md5: str | None = None
    cwmp_ha1_sha256: str | None = None
    cr_username: str | None = None
    periodic_inform_interval: int | None = None
    mode: str | None = None
    session_id: str | None = None
    session_peer_host: str | None = None
    session_expires: datetime | None = None
    # indexed columns an Inform rarely changes (the upsert leaves them alone when unchanged)
    ip: str | None = None
    mac: str | None = None
    software_version: str | None = None
    exists: bool = False  # the device has a row (tasks, faults... can only exist if so)


_DEVICE_AUTH_COLUMNS = (
    "cwmp_username",
    "cwmp_ha1_md5",
    "cwmp_ha1_sha256",
    "cr_username",
    "periodic_inform_interval",
    "mode",
    "session_id",
    "session_peer_host",
    "session_expires",
    "ip",
    "mac",
    "software_version",
)
_DEVICE_AUTH = hot.Statement(
    "SELECT d.cwmp_username, d.cwmp_ha1_md5, d.cwmp_ha1_sha256, d.cr_username, "
    "d.periodic_inform_interval, d.mode, s.id AS session_id, s.peer_host AS session_peer_host, "
    "s.expires AS session_expires, d.ip, d.mac, d.software_version "
    "FROM devices AS d LEFT OUTER JOIN cwmp_sessions AS s ON s.device_id = d.id "
    "WHERE d.id = :device_id",
    columns=_DEVICE_AUTH_COLUMNS,
    types={"session_expires": UTCDateTime()},
)


async def device_auth(conn: AsyncConnection, device_id: str) -> DeviceAuth:
    row = await _DEVICE_AUTH.first(conn, {"device_id": device_id})
    if row is None:
        return DeviceAuth()  # a device seen for the first time
    return DeviceAuth(**row._asdict(), exists=True)


_UPSERT_COLUMNS = (
    "id",
    "manufacturer",
    "oui",
    "product_class",
    "serial_number",
    "ip",
    "cwmp_version",
    "last_inform",
    "last_boot",
    "last_bootstrap",
    "last_events",
    "mac",
    "software_version",
    "hardware_version",
    "connection_request_url",
    "udp_connection_request_address",
    "periodic_inform_interval",
    "inform_deadline",
    "silent_since",
    "parameters",
)
_KEEP_KNOWN = (  # an Inform that does not carry these must not erase what we know
    "mac",
    "software_version",
    "hardware_version",
    "connection_request_url",
    "udp_connection_request_address",
    "periodic_inform_interval",
    "last_boot",
    "last_bootstrap",
)
# Part of the id, so never changed by an update.
_IDENTITY = ("oui", "product_class", "serial_number")
# Indexed columns that an Inform rarely changes: SQLite rewrites an index entry for every
# indexed column named in an UPDATE's SET, changed or not (a WAL page each, measured), so the
# upsert names these only when the Inform changes them.
_RARELY_CHANGED = ("ip", "mac", "software_version")
_UPSERTS: dict[tuple[str, bool, frozenset[str]], hot.Statement] = {}


def _json_param(dialect: str, name: str) -> str:
    return f"CAST(:{name} AS jsonb)" if dialect == "postgresql" else f":{name}"


def _upsert_statement(dialect: str, bootstrap: bool, unchanged: frozenset[str]) -> hot.Statement:
    key = (dialect, bootstrap, unchanged)
    stmt = _UPSERTS.get(key)
    if stmt is not None:
        return stmt
    values = [
        _json_param(dialect, c) if c in ("parameters", "last_events") else f":{c}"
        for c in _UPSERT_COLUMNS
    ]
    sets = []
    for column in _UPSERT_COLUMNS[1:]:
        if column in _IDENTITY or column in unchanged:
            continue
        if column == "parameters":
            merged = (
                "excluded.parameters"
                if bootstrap
                else (
                    _PG_MERGE.format(patch="excluded.parameters")
                    if dialect == "postgresql"
                    else "json_patch(devices.parameters, excluded.parameters)"
                )
            )
            sets.append(f"parameters = {merged}")
        elif column in _KEEP_KNOWN:
            sets.append(f"{column} = COALESCE(excluded.{column}, devices.{column})")
        else:
            sets.append(f"{column} = excluded.{column}")
    sql = (
        f"INSERT INTO devices ({', '.join(_UPSERT_COLUMNS)}, first_seen, tags) "
        f"VALUES ({', '.join(values)}, :last_inform, '[]') "
        f"ON CONFLICT (id) DO UPDATE SET {', '.join(sets)}"
    )
    typed = ("last_inform", "last_boot", "last_bootstrap", "inform_deadline", "silent_since")
    stmt = _UPSERTS[key] = hot.Statement(sql, binds={c: UTCDateTime() for c in typed})
    return stmt


async def upsert_device_on_inform(
    conn: AsyncConnection,
    values: dict[str, Any],
    parameters: dict[str, dict[str, Any]],
    *,
    bootstrap: bool,
    known: DeviceAuth | None = None,
) -> None:
    """Insert or update a device from an Inform in one statement.

    ``parameters`` merge into the stored tree key by key (keeping what an Inform does not
    carry, such as ``writable``); on ``0 BOOTSTRAP`` the tree is replaced instead, since
    a bootstrapped device's data model is not the one we knew (TR-069 3.7.1.5). ``known``,
    the row as read in this transaction, lets the update skip indexed columns it would not
    change.
    """
    params = {c: values.get(c) for c in _UPSERT_COLUMNS}
    params["parameters"] = json.dumps(parameters)
    params["last_events"] = json.dumps(values["last_events"])
    unchanged: frozenset[str] = frozenset()
    if known is not None and known.exists:
        unchanged = frozenset(
            c
            for c in _RARELY_CHANGED
            if params[c] == getattr(known, c) or (params[c] is None and c in _KEEP_KNOWN)
        )
    await _upsert_statement(conn.dialect.name, bootstrap, unchanged).execute(conn, params)


_PG_MERGE = (
    "devices.parameters || COALESCE((SELECT jsonb_object_agg(e.key, "
    "COALESCE(devices.parameters -> e.key, '{{}}'::jsonb) || e.value) "
    "FROM jsonb_each({patch}) AS e), '{{}}'::jsonb)"
)


_PG_MERGE_PATCH = _PG_MERGE.format(patch="CAST(:patch AS jsonb)")
_MERGE_SQL = {
    "postgresql": f"UPDATE devices SET parameters = {_PG_MERGE_PATCH} WHERE id = :id",
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


_MERGE = {dialect: text(sql) for dialect, sql in _MERGE_SQL.items()}
_DELETE_SUBTREE = {dialect: text(sql) for dialect, sql in _DELETE_SUBTREE_SQL.items()}


async def merge_parameters(
    conn: AsyncConnection, device_id: str, patch: dict[str, dict[str, Any]]
) -> None:
    """Merge ``{path: {key: value}}`` into a device's parameter tree (one statement)."""
    if patch:
        await conn.execute(_MERGE[conn.dialect.name], {"patch": json.dumps(patch), "id": device_id})


async def delete_parameter_subtree(conn: AsyncConnection, device_id: str, prefix: str) -> None:
    """Forget every parameter under ``prefix`` (a deleted object instance)."""
    await conn.execute(_DELETE_SUBTREE[conn.dialect.name], {"prefix": prefix, "id": device_id})


_INSERT_INFORM = hot.Statement(
    "INSERT INTO informs (device_id, received, events, retry_count, peer_host) "
    "VALUES (:device_id, :received, :events, :retry_count, :peer_host)",
    binds={"received": UTCDateTime(), "events": JSONDoc},
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
    await _INSERT_INFORM.execute(
        conn,
        {
            "device_id": device_id,
            "received": received,
            "events": events,
            "retry_count": retry_count,
            "peer_host": peer_host,
        },
    )


# --- sessions ---------------------------------------------------------------------------


def new_session_id() -> str:
    return secrets.token_urlsafe(18)


_SESSION_SQL = (
    "SELECT s.id, s.device_id, s.state, s.peer_host, s.peer_port, s.expires, "
    "EXISTS (SELECT 1 FROM tasks AS t WHERE t.device_id = s.device_id "
    "AND t.status = 'queued') AS has_tasks FROM cwmp_sessions AS s "
)
_SESSION_COLUMNS = ("id", "device_id", "state", "peer_host", "peer_port", "expires", "has_tasks")
_SESSION_TYPES: dict[str, Any] = {"state": JSONDoc, "expires": UTCDateTime()}


def _session_lookup(where: str) -> hot.Statement:
    return hot.Statement(
        _SESSION_SQL + where,
        columns=_SESSION_COLUMNS,
        binds={"now": UTCDateTime()},
        types=_SESSION_TYPES,
    )


_SESSION_BY_ID = _session_lookup("WHERE s.id = :id AND s.expires > :now")
_SESSION_BY_CONNECTION = _session_lookup(
    "WHERE s.peer_host = :host AND s.peer_port = :port AND s.expires > :now"
)
_SESSION_BY_HOST = _session_lookup(
    "WHERE s.peer_host = :host AND s.expires > :now ORDER BY s.updated DESC LIMIT 50"
)
# JSON documents are typed binds: the type's processor serialises them on either path, and
# PostgreSQL takes the parameter's type (jsonb) from the column it is assigned to.
_SESSION_BINDS: dict[str, Any] = {"now": UTCDateTime(), "expires": UTCDateTime(), "state": JSONDoc}
_INSERT_SESSION = hot.Statement(
    "INSERT INTO cwmp_sessions (id, device_id, state, peer_host, peer_port, started, updated, "
    "expires) VALUES (:id, :device_id, :state, :peer_host, :peer_port, :now, :now, :expires) "
    "ON CONFLICT DO NOTHING",
    binds=_SESSION_BINDS,
)
_SAVE_SESSION = hot.Statement(
    "UPDATE cwmp_sessions SET state = :state, peer_host = :peer_host, peer_port = :peer_port, "
    "updated = :now, expires = :expires WHERE id = :id",
    binds=_SESSION_BINDS,
)
_DELETE_SESSION = hot.Statement("DELETE FROM cwmp_sessions WHERE id = :id")


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
    count = await _INSERT_SESSION.execute(
        conn,
        {
            "id": session_id,
            "device_id": device_id,
            "state": state,
            "peer_host": peer_host,
            "peer_port": peer_port,
            "now": now,
            "expires": expires,
        },
    )
    return bool(count)


async def find_sessions(
    conn: AsyncConnection,
    *,
    now: datetime,
    session_ids: Sequence[str] = (),
    peer_host: str | None = None,
    peer_port: int | None = None,
) -> list[Any]:
    """Open sessions by cookie, else by connection, else (for a CPE that sends no cookie of
    ours) by peer address, each with ``has_tasks`` (does its device have queued tasks).

    Each is its own indexed lookup, tried in that order: a cookie settles it at once, and
    thousands of cookie-less sessions behind one address cannot crowd it out.
    """
    rows: list[Any] = []
    for session_id in dict.fromkeys(session_ids):  # usually one cookie
        rows += await _SESSION_BY_ID.fetch(conn, {"id": session_id, "now": now})
    if rows or peer_host is None:
        return rows
    if peer_port is not None:
        rows = await _SESSION_BY_CONNECTION.fetch(
            conn, {"host": peer_host, "port": peer_port, "now": now}
        )
        if rows:
            return rows
    if session_ids:
        # A CPE that keeps our cookie and whose session is gone (expired): the address alone
        # would hand it another device's session behind the same NAT (seen in a storm: that
        # session's credentials then refused it, 401 after 401).
        return []
    return await _SESSION_BY_HOST.fetch(conn, {"host": peer_host, "now": now})


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
    count = await _SAVE_SESSION.execute(
        conn,
        {
            "id": session_id,
            "state": state,
            "peer_host": peer_host,
            "peer_port": peer_port,
            "now": now,
            "expires": expires,
        },
    )
    return bool(count)


async def delete_session(conn: AsyncConnection, session_id: str) -> bool:
    return bool(await _DELETE_SESSION.execute(conn, {"id": session_id}))


async def expired_sessions(conn: AsyncConnection, now: datetime, limit: int = 500) -> list[AnyRow]:
    """Ids and devices of sessions past their expiry (their state is not needed to close them)."""
    stmt = select(sessions.c.id, sessions.c.device_id).where(sessions.c.expires <= now).limit(limit)
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
