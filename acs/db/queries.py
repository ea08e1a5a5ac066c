"""Named queries of the CWMP hot path. Each is one statement; none depends on fleet size.

They run on a ``hot.Transaction`` (the driver inside ``Database.hot_write``, or SQLAlchemy
through ``hot.over``). Both backends get the same semantics; where SQL differs (JSON merge),
a statement carries one text per dialect. JSON documents are always typed binds (``JSONDoc``):
the type's processor serialises them on every path, and PostgreSQL types the parameter from
its column (or a CAST where no column does).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from acs.db import hot
from acs.db.types import JSONDoc, UTCDateTime

# --- devices on Inform ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceAuth:
    """What authenticating a device's Inform needs, and its open session if any."""

    cwmp_username: str | None = None
    cwmp_ha1_md5: str | None = None
    cwmp_ha1_sha256: str | None = None
    cwmp_credentials: dict[str, Any] | None = None  # the lifecycle of the device's own pair
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
    status: str | None = None  # as stored (services/monitoring.py)
    presets_mark: str | None = None  # services/presets.py: converged as of this mark
    presets_version: str | None = None  # the presets' version (meta), read with the row
    inform_digest: str | None = None  # of the last Inform's parameters, while the tree holds them
    exists: bool = False  # the device has a row (tasks, faults... can only exist if so)


_DEVICE_AUTH_COLUMNS = (
    "cwmp_username",
    "cwmp_ha1_md5",
    "cwmp_ha1_sha256",
    "cwmp_credentials",
    "cr_username",
    "periodic_inform_interval",
    "mode",
    "session_id",
    "session_peer_host",
    "session_expires",
    "ip",
    "mac",
    "software_version",
    "status",
    "presets_mark",
    "presets_version",
    "inform_digest",
)
_DEVICE_AUTH_SQL = (
    "SELECT d.cwmp_username, d.cwmp_ha1_md5, d.cwmp_ha1_sha256, d.cwmp_credentials, "
    "d.cr_username, "
    "d.periodic_inform_interval, d.mode, s.id AS session_id, s.peer_host AS session_peer_host, "
    "s.expires AS session_expires, d.ip, d.mac, d.software_version, d.status, "
    "d.presets_mark, (SELECT value FROM meta WHERE key = 'presets_version'), d.inform_digest "
    "FROM devices AS d LEFT OUTER JOIN cwmp_sessions AS s ON s.device_id = d.id "
    "WHERE d.id = :device_id"
)
_DEVICE_AUTH = hot.Statement(
    {
        "sqlite": _DEVICE_AUTH_SQL,  # the write lock is already held (BEGIN IMMEDIATE)
        # The row is the Inform's to update: locked now, so the status job cannot move the
        # device between this read (its status before) and the upsert (monitoring.py).
        "postgresql": _DEVICE_AUTH_SQL + " FOR NO KEY UPDATE OF d",
    },
    columns=_DEVICE_AUTH_COLUMNS,
    types={"session_expires": UTCDateTime(), "cwmp_credentials": JSONDoc},
)


async def device_auth(tx: hot.Transaction, device_id: str) -> DeviceAuth:
    row = await tx.first(_DEVICE_AUTH, device_id=device_id)
    if row is None:
        return DeviceAuth()  # a device seen for the first time
    return DeviceAuth(**row._asdict(), exists=True)


_DEVICE_PAIRS = hot.Statement(
    "SELECT cwmp_username, cwmp_ha1_md5, cwmp_ha1_sha256, cwmp_credentials FROM devices "
    "WHERE id = :device_id",
    columns=("cwmp_username", "cwmp_ha1_md5", "cwmp_ha1_sha256", "cwmp_credentials"),
    types={"cwmp_credentials": JSONDoc},
)


async def device_pairs(tx: hot.Transaction, device_id: str) -> DeviceAuth:
    """The device's own pair and its credentials lifecycle as they are now (written by this
    session perhaps): what ``device_auth`` reads of them, without the rest or a lock."""
    row = await tx.first(_DEVICE_PAIRS, device_id=device_id)
    return DeviceAuth() if row is None else DeviceAuth(**row._asdict(), exists=True)


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
    "status",
    "status_since",
    "parameters",
    "inform_digest",
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
_RARELY_CHANGED = ("ip", "mac", "software_version", "status")
_UPSERTS: dict[tuple[bool, frozenset[str]], hot.Statement] = {}
_UPSERT_BINDS: dict[str, Any] = {
    **{c: UTCDateTime() for c in ("last_inform", "last_boot", "last_bootstrap")},
    **{c: UTCDateTime() for c in ("inform_deadline", "status_since")},
    "parameters": JSONDoc,
    "last_events": JSONDoc,
}


def _upsert_sql(dialect: str, bootstrap: bool, unchanged: frozenset[str]) -> str:
    sets = []
    for column in _UPSERT_COLUMNS[1:]:
        if column in _IDENTITY or column in unchanged:
            continue
        if column == "parameters":
            if bootstrap:
                merged = "excluded.parameters"
            elif dialect == "postgresql":
                merged = _PG_MERGE.format(patch="excluded.parameters")
            else:
                merged = "json_patch(devices.parameters, excluded.parameters)"
            sets.append(f"parameters = {merged}")
        elif column in _KEEP_KNOWN:
            sets.append(f"{column} = COALESCE(excluded.{column}, devices.{column})")
        else:
            sets.append(f"{column} = excluded.{column}")
    if "status" not in unchanged:  # a device registered by an operator informs at last
        sets.append("first_seen = COALESCE(devices.first_seen, excluded.first_seen)")
    return (
        f"INSERT INTO devices ({', '.join(_UPSERT_COLUMNS)}, first_seen, tags) "
        f"VALUES ({', '.join(':' + c for c in _UPSERT_COLUMNS)}, :last_inform, '[]') "
        f"ON CONFLICT (id) DO UPDATE SET {', '.join(sets)}"
    )


def _upsert_statement(bootstrap: bool, unchanged: frozenset[str]) -> hot.Statement:
    key = (bootstrap, unchanged)
    stmt = _UPSERTS.get(key)
    if stmt is None:
        stmt = _UPSERTS[key] = hot.Statement(
            {d: _upsert_sql(d, bootstrap, unchanged) for d in ("sqlite", "postgresql")},
            binds=_UPSERT_BINDS,
            fusable=True,
        )
    return stmt


async def upsert_device_on_inform(
    tx: hot.Transaction,
    values: dict[str, Any],
    parameters: dict[str, dict[str, Any]],
    *,
    digest: str,
    bootstrap: bool,
    known: DeviceAuth | None = None,
) -> None:
    """Insert or update a device from an Inform in one statement.

    ``parameters`` merge into the stored tree key by key (keeping what an Inform does not
    carry, such as ``writable``); on ``0 BOOTSTRAP`` the tree is replaced instead, since
    a bootstrapped device's data model is not the one we knew (TR-069 3.7.1.5). ``known``,
    the row as read in this transaction, lets the update skip indexed columns it would not
    change, and the tree when ``digest`` (of the Inform's parameters) is the stored one: the
    tree still holds what the last Inform carried, and this one carries the same.
    """
    params = {c: values.get(c) for c in _UPSERT_COLUMNS}
    params["parameters"] = parameters
    params["inform_digest"] = digest
    unchanged: frozenset[str] = frozenset()
    if known is not None and known.exists:
        unchanged = frozenset(
            c
            for c in _RARELY_CHANGED
            if params[c] == getattr(known, c) or (params[c] is None and c in _KEEP_KNOWN)
        )
        if "status" in unchanged:
            unchanged |= {"status_since"}  # since when: only a move changes it
        if not bootstrap and digest == known.inform_digest:
            unchanged |= {"parameters", "inform_digest"}
    await tx.defer(_upsert_statement(bootstrap, unchanged), **params)


_PG_MERGE = (
    "devices.parameters || COALESCE((SELECT jsonb_object_agg(e.key, "
    "COALESCE(devices.parameters -> e.key, '{{}}'::jsonb) || e.value) "
    "FROM jsonb_each({patch}) AS e), '{{}}'::jsonb)"
)


# On PostgreSQL the document is read once (a MATERIALIZED copy): each "parameters -> key" of
# the Inform's form above reads a TOASTed document whole again, which for a large tree and
# a patch of hundreds of keys is seconds (the Inform's few keys cost less its way).
_MERGE = hot.Statement(
    {
        "postgresql": "UPDATE devices SET parameters = (WITH c AS MATERIALIZED "
        "(SELECT devices.parameters || '{}'::jsonb AS doc) "
        "SELECT c.doc || COALESCE((SELECT jsonb_object_agg(e.key, "
        "COALESCE(c.doc -> e.key, '{}'::jsonb) || e.value) "
        "FROM jsonb_each(CAST(:patch AS jsonb)) AS e), '{}'::jsonb) FROM c), "
        "presets_mark = NULL, inform_digest = NULL WHERE id = :id",
        "sqlite": "UPDATE devices SET parameters = json_patch(parameters, :patch), "
        "presets_mark = NULL, inform_digest = NULL WHERE id = :id",
    },
    binds={"patch": JSONDoc},
)
_DELETE_SUBTREE = hot.Statement(
    {
        "postgresql": "UPDATE devices SET parameters = COALESCE((SELECT jsonb_object_agg(e.key, "
        "e.value) FROM jsonb_each(devices.parameters) AS e WHERE NOT starts_with(e.key, :prefix)), "
        "'{}'::jsonb), presets_mark = NULL, inform_digest = NULL WHERE id = :id",
        "sqlite": "UPDATE devices SET parameters = COALESCE((SELECT json_group_object(e.key, "
        "json(e.value)) FROM json_each(devices.parameters) AS e WHERE substr(e.key, 1, "
        "length(:prefix)) <> :prefix), '{}'), presets_mark = NULL, inform_digest = NULL "
        "WHERE id = :id",
    }
)


# Past this many keys SQLite merges key by key by a join: its json_patch looks each key of
# the patch up by scanning the document, quadratic for a whole tree (a GetParameterValues of
# "Device.": 16,000 keys took 3.5 s, 83,000 minutes). The join is linear-logarithmic and runs
# in SQLite's C code, in a thread, which leaves the event loop (and the GIL) free: merging in
# Python held the GIL for the JSON decoding and encoding of the whole tree, stalling every
# other request of the worker for hundreds of milliseconds.
LARGE_PATCH = 1000
_MERGE_LARGE = hot.Statement(
    {
        "sqlite": "WITH p(k, v) AS MATERIALIZED (SELECT key, value FROM json_each(:patch)), "
        "o(k, v) AS MATERIALIZED (SELECT key, value FROM json_each((SELECT parameters FROM "
        "devices WHERE id = :id))) "
        "UPDATE devices SET parameters = (SELECT json_group_object(k, json(v)) FROM ("
        "SELECT o.k AS k, CASE WHEN p.k IS NULL THEN o.v ELSE json_patch(o.v, p.v) END AS v "
        "FROM o LEFT JOIN p ON p.k = o.k "
        "UNION ALL SELECT p.k, p.v FROM p WHERE p.k NOT IN (SELECT k FROM o))), "
        "presets_mark = NULL, inform_digest = NULL WHERE id = :id",
    },
    binds={"patch": JSONDoc},
    slow=True,
)


async def merge_parameters(
    tx: hot.Transaction, device_id: str, patch: dict[str, dict[str, Any]]
) -> None:
    """Merge ``{path: {key: value}}`` into a device's parameter tree: the entries of a path
    are updated key by key, other paths kept. One statement."""
    if not patch:
        return
    if tx.dialect == "sqlite" and len(patch) > LARGE_PATCH:
        await tx.execute(_MERGE_LARGE, patch=patch, id=device_id)
    else:
        await tx.execute(_MERGE, patch=patch, id=device_id)


async def delete_parameter_subtree(tx: hot.Transaction, device_id: str, prefix: str) -> None:
    """Forget every parameter under ``prefix`` (a deleted object instance)."""
    await tx.execute(_DELETE_SUBTREE, prefix=prefix, id=device_id)


_INSERT_INFORM = hot.Statement(
    "INSERT INTO informs (device_id, received, events, retry_count, peer_host) "
    "VALUES (:device_id, :received, :events, :retry_count, :peer_host)",
    binds={"received": UTCDateTime(), "events": JSONDoc},
    fusable=True,
)


async def insert_inform(
    tx: hot.Transaction,
    *,
    device_id: str,
    received: datetime,
    events: list[list[str]],
    retry_count: int,
    peer_host: str | None,
) -> None:
    await tx.defer(
        _INSERT_INFORM,
        device_id=device_id,
        received=received,
        events=events,
        retry_count=retry_count,
        peer_host=peer_host,
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


# Each lookup of ``acs.cwmp.http.lookups`` is its own indexed query (``has_tasks``: whether the
# device has queued tasks, so an empty session never queries the task queue).
SESSION_BY_COOKIE = _session_lookup("WHERE s.id = :id AND s.expires > :now")
SESSION_BY_CONNECTION = _session_lookup(
    "WHERE s.peer_host = :host AND s.peer_port = :port AND s.expires > :now"
)
SESSIONS_BY_ADDRESS = _session_lookup(
    "WHERE s.peer_host = :host AND s.expires > :now ORDER BY s.updated DESC LIMIT 50"
)
_SESSION_BINDS: dict[str, Any] = {"now": UTCDateTime(), "expires": UTCDateTime(), "state": JSONDoc}
_INSERT_SESSION = hot.Statement(
    "INSERT INTO cwmp_sessions (id, device_id, state, peer_host, peer_port, started, updated, "
    "expires) VALUES (:id, :device_id, :state, :peer_host, :peer_port, :now, :now, :expires) "
    "ON CONFLICT DO NOTHING",
    binds=_SESSION_BINDS,
    fusable=True,
)
_SAVE_SESSION = hot.Statement(
    "UPDATE cwmp_sessions SET state = :state, peer_host = :peer_host, peer_port = :peer_port, "
    "updated = :now, expires = :expires WHERE id = :id",
    binds=_SESSION_BINDS,
)
_END_SESSION = hot.Statement("DELETE FROM cwmp_sessions WHERE id = :id")
_DELETE_SESSION = hot.Statement(
    "DELETE FROM cwmp_sessions WHERE id = :id RETURNING state",
    columns=("state",),
    types={"state": JSONDoc},
)
_EXPIRED_SESSIONS = hot.Statement(
    "SELECT id, device_id FROM cwmp_sessions WHERE expires <= :now LIMIT :limit",
    columns=("id", "device_id"),
    binds={"now": UTCDateTime()},
)


async def insert_session(
    tx: hot.Transaction,
    *,
    session_id: str,
    device_id: str,
    state: dict[str, Any],
    peer_host: str,
    peer_port: int,
    now: datetime,
    expires: datetime,
) -> bool:
    """Claim the device's one session slot; ``False`` if another session holds it. The last
    statement of the Inform's transaction."""
    count = await tx.execute_last(
        _INSERT_SESSION,
        id=session_id,
        device_id=device_id,
        state=state,
        peer_host=peer_host,
        peer_port=peer_port,
        now=now,
        expires=expires,
    )
    return bool(count)


async def save_session(
    tx: hot.Transaction,
    session_id: str,
    *,
    state: dict[str, Any],
    peer_host: str,
    peer_port: int,
    now: datetime,
    expires: datetime,
) -> bool:
    """Store a session's state after a request: its transaction's last statement."""
    count = await tx.execute_last(
        _SAVE_SESSION,
        id=session_id,
        state=state,
        peer_host=peer_host,
        peer_port=peer_port,
        now=now,
        expires=expires,
    )
    return bool(count)


async def end_session(tx: hot.Transaction, session_id: str) -> bool:
    """Delete a session that ended by its 204 (its transaction's last statement); ``False`` if
    it was gone already."""
    return bool(await tx.execute_last(_END_SESSION, id=session_id))


async def delete_session(tx: hot.Transaction, session_id: str) -> dict[str, Any] | None:
    """Delete a session that ended otherwise; its last state (what it left unanswered may
    still be answered), or ``None`` if it was gone already."""
    row = await tx.first(_DELETE_SESSION, id=session_id)
    return None if row is None else dict(row.state or {})


async def expired_sessions(tx: hot.Transaction, now: datetime, limit: int = 500) -> list[Any]:
    """Ids and devices of sessions past their expiry (their state is not needed to close them)."""
    return await tx.fetch(_EXPIRED_SESSIONS, now=now, limit=limit)


# --- digest nonce counts (strict mode) ----------------------------------------------------

_ADVANCE_NONCE = hot.Statement(
    "INSERT INTO digest_nonces (nonce, last_nc, expires) VALUES (:nonce, :nc, :expires) "
    "ON CONFLICT (nonce) DO UPDATE SET last_nc = excluded.last_nc "
    "WHERE digest_nonces.last_nc < excluded.last_nc",
    binds={"expires": UTCDateTime()},
)
_PRUNE_NONCES = hot.Statement(
    "DELETE FROM digest_nonces WHERE expires <= :now", binds={"now": UTCDateTime()}
)


async def advance_nonce_count(tx: hot.Transaction, nonce: str, nc: int, expires: datetime) -> bool:
    """Record ``nc`` for ``nonce``; ``False`` if it is not higher than one seen before."""
    return bool(await tx.execute(_ADVANCE_NONCE, nonce=nonce, nc=nc, expires=expires))


async def prune_nonces(tx: hot.Transaction, now: datetime) -> int:
    return await tx.execute(_PRUNE_NONCES, now=now)
