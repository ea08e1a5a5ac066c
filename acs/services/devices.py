"""Device use cases outside the CWMP hot path: search, view, tags, deletion, credentials."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Select,
    bindparam,
    case,
    delete,
    func,
    literal_column,
    not_,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.sql.expression import Grouping

from acs.cwmp import datamodel
from acs.cwmp.messages import DeviceIdStruct
from acs.db import param_index, tables
from acs.db.engine import Database
from acs.db.tables import insert_for
from acs.db.types import JSONDoc
from acs.services import monitoring
from acs.services.cpe_auth import hash_credentials
from acs.services.device_credentials import credentials_view
from acs.services.errors import Conflict, Invalid, NotFound

d = tables.devices

SORTABLE = (
    "id",
    "last_inform",
    "first_seen",
    "serial_number",
    "product_class",
    "software_version",
    "oui",
    "ip",
    "mac",
)
# Statuses a search may ask for (monitoring.Status, and the aliases of one release).
STATUSES = (*(st.value for st in monitoring.Status), *monitoring.ALIASES)
_TAG_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")


class DeviceNotFound(NotFound):
    """No device with this id (``device_id``). Raised by every service that takes one."""

    def __init__(self, device_id: str) -> None:
        super().__init__(f"no device {device_id!r}")
        self.device_id = device_id


class BadFilter(Invalid):
    """A search filter or sort, a tag or an ACS mode the devices service refuses."""


@dataclass
class DeviceFilter:
    ids: list[str] = field(default_factory=list)
    serial_number: str | None = None
    oui: str | None = None
    product_class: str | None = None
    software_version: str | None = None
    mac: str | None = None
    ip: str | None = None
    tag: str | None = None
    status: str | None = None
    last_inform_after: datetime | None = None
    last_inform_before: datetime | None = None
    parameters: list[tuple[str, str]] = field(default_factory=list)


_SUMMARY = (
    d.c.id,
    d.c.manufacturer,
    d.c.oui,
    d.c.product_class,
    d.c.serial_number,
    d.c.mac,
    d.c.software_version,
    d.c.hardware_version,
    d.c.ip,
    d.c.connection_request_url,
    d.c.udp_connection_request_address,
    d.c.periodic_inform_interval,
    d.c.cwmp_version,
    d.c.first_seen,
    d.c.last_inform,
    d.c.last_boot,
    d.c.last_bootstrap,
    d.c.last_events,
    d.c.tags,
    d.c.status,
    d.c.status_since,
    d.c.inform_deadline,
    d.c.cr_result,
    d.c.rpc_methods,
    d.c.cr_username,
    d.c.cwmp_username,
    d.c.cwmp_credentials,
    d.c.mode,
)


def device_view(row: Any, now: datetime) -> dict[str, Any]:
    status = monitoring.effective(row.status, row.inform_deadline, now)
    return {
        "id": row.id,
        "manufacturer": row.manufacturer,
        "oui": row.oui,
        "product_class": row.product_class,
        "serial_number": row.serial_number,
        "mac": row.mac,
        "software_version": row.software_version,
        "hardware_version": row.hardware_version,
        "ip": row.ip,
        "connection_request_url": row.connection_request_url,
        "udp_connection_request_address": row.udp_connection_request_address,
        "periodic_inform_interval": row.periodic_inform_interval,
        "cwmp_version": row.cwmp_version,
        "first_seen": row.first_seen,
        "last_inform": row.last_inform,
        "last_boot": row.last_boot,
        "last_bootstrap": row.last_bootstrap,
        "last_events": row.last_events or [],
        "tags": row.tags or [],
        "status": status.value,
        "status_since": row.status_since,
        "next_deadline": row.inform_deadline,
        "silent_since": row.status_since if status in monitoring.ALIASES["silent"] else None,
        "connection_request": row.cr_result,
        "connection_request_credentials_set": bool(row.cr_username),
        "own_cwmp_credentials": bool(row.cwmp_username),
        **credentials_view(row.cwmp_username, row.cwmp_credentials),
        "rpc_methods": row.rpc_methods,
        "mode": row.mode,
    }


def _typed_candidates(value: str) -> list[Any]:
    """A filter value may match a stored string, number or boolean."""
    out: list[Any] = [value]
    if re.fullmatch(r"-?[0-9]+", value):
        out.append(int(value))
    if value.lower() in ("true", "false"):
        out.append(value.lower() == "true")
    return out


def conditions(conn_dialect: str, f: DeviceFilter, now: datetime) -> list[Any]:
    c: list[Any] = []
    if f.ids:
        c.append(d.c.id.in_(f.ids))
    for column in ("serial_number", "oui", "product_class", "software_version", "ip"):
        value = getattr(f, column)
        if value is not None:
            c.append(d.c[column] == value)
    if f.mac is not None:
        from acs.services.inform import normalize_mac

        c.append(d.c.mac == (normalize_mac(f.mac) or f.mac))
    if f.last_inform_after is not None:
        c.append(d.c.last_inform >= f.last_inform_after)
    if f.last_inform_before is not None:
        c.append(d.c.last_inform < f.last_inform_before)
    if f.status is not None:
        if f.status not in STATUSES:
            raise BadFilter(f"status must be one of {list(STATUSES)}")
        c.append(monitoring.status_filter([f.status], now))
    if f.tag is not None:
        if conn_dialect == "postgresql":
            c.append(
                text("devices.tags @> CAST(:tag_doc AS jsonb)").bindparams(
                    bindparam("tag_doc", [f.tag], type_=JSONDoc)
                )
            )
        else:
            c.append(
                text(
                    "EXISTS (SELECT 1 FROM json_each(devices.tags) WHERE json_each.value = :tag)"
                ).bindparams(tag=f.tag)
            )
    for i, (path, value) in enumerate(f.parameters):
        # a path under no root ("DeviceInfo.ModelName") is under the device's, either one
        full = [path] if path.partition(".")[0] in datamodel.ROOTS else datamodel.under_roots(path)
        either = []
        for j, one in enumerate(full):
            try:
                expression = param_index.value_expression(conn_dialect, one)
            except ValueError as exc:
                raise BadFilter(str(exc)) from None
            name = f"pv{i}_{j}"
            if conn_dialect == "postgresql":
                # ->> gives every JSON scalar as text: "42" matches 42 and "42" alike
                either.append(text(f"{expression} = :{name}").bindparams(**{name: value}))
            else:
                candidates = [
                    int(v) if isinstance(v, bool) else v for v in _typed_candidates(value)
                ]
                either.append(
                    text(f"{expression} IN :{name}").bindparams(
                        bindparam(name, candidates, expanding=True)
                    )
                )
        c.append(or_(*either) if len(either) > 1 else either[0])
    return c


async def search(
    db: Database,
    f: DeviceFilter,
    *,
    now: datetime,
    sort: str = "id",
    limit: int = 100,
    offset: int = 0,
    count_limit: int | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of the devices ``f`` matches, in ``sort`` order (ties by id, in the same
    direction, so that an index on ``(column, id)`` serves the page), and how many match.

    With ``count_limit`` the count stops there: ``count_limit + 1`` means "more than
    ``count_limit``", which costs a few milliseconds where an exact count of a large fleet
    scans a whole index (a console page at 1,000,000 devices)."""
    descending = sort.startswith("-")
    column = sort.lstrip("-+")
    if column not in SORTABLE:
        raise BadFilter(f"sort must be one of {list(SORTABLE)}, optionally prefixed with '-'")
    keys = [d.c[column]] if column == "id" else [d.c[column], d.c.id]
    order = [k.desc() for k in keys] if descending else [k.asc() for k in keys]
    conditions_ = conditions(db.dialect, f, now)
    stmt: Select[Any] = select(*_SUMMARY).where(*conditions_).order_by(*order)
    matching: Select[Any] = select(literal_column("1")).select_from(d).where(*conditions_)
    if count_limit is not None:
        matching = matching.limit(count_limit + 1)
    async with db.read() as conn:
        total = await conn.scalar(select(func.count()).select_from(matching.subquery()))
        rows = await conn.execute(stmt.limit(limit).offset(offset))
        return [device_view(r, now) for r in rows], int(total or 0)


async def batches(
    db: Database, f: DeviceFilter, *, now: datetime, size: int = 1000
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every device ``f`` matches, ``size`` at a time in id order, each batch found by the
    last id of the one before (a keyset: the thousandth batch costs what the first does,
    and a device added meanwhile neither repeats nor shifts a batch)."""
    conditions_ = conditions(db.dialect, f, now)
    after: str | None = None
    while True:
        stmt = select(*_SUMMARY).where(*conditions_).order_by(d.c.id).limit(size)
        if after is not None:
            stmt = stmt.where(d.c.id > after)
        async with db.read() as conn:
            found = [device_view(r, now) for r in await conn.execute(stmt)]
        if found:
            yield found
        if len(found) < size:
            return
        after = found[-1]["id"]


async def count_by_status(db: Database, now: datetime) -> dict[str, int]:
    """How many devices are in each status, as ``monitoring.effective`` says it now."""
    passed = case((d.c.inform_deadline <= now, 1), else_=0)
    query = select(d.c.status, passed, func.count()).group_by(d.c.status, passed)
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    counts = dict.fromkeys((st.value for st in monitoring.Status), 0)
    for status, is_passed, n in rows:
        deadline = now if is_passed else None  # passed: as if it were due now
        counts[monitoring.effective(status, deadline, now).value] += int(n)
    return counts


async def get_device(
    db: Database, device_id: str, *, now: datetime, path: str | None = None
) -> dict[str, Any]:
    """A device with its parameter tree, or only the subtree under ``path``."""
    async with db.read() as conn:
        row = (
            await conn.execute(select(*_SUMMARY, d.c.parameters).where(d.c.id == device_id))
        ).first()
    if row is None:
        raise DeviceNotFound(device_id)
    view = device_view(row, now)
    params: dict[str, Any] = row.parameters or {}
    if path:
        params = {
            k: v
            for k, v in params.items()
            if k == path or k.startswith(path if path.endswith(".") else path + ".")
        }
    view["parameters"] = dict(sorted(params.items()))
    return view


class DeviceExists(Conflict):
    def __init__(self, device_id: str) -> None:
        super().__init__(f"device {device_id!r} exists already")


async def register(
    db: Database,
    *,
    oui: str,
    product_class: str,
    serial_number: str,
    tags: list[str],
    mode: str | None,
    now: datetime,
) -> dict[str, Any]:
    """A device the ACS is to expect (``never_seen`` until its first Inform), so that tags,
    mode and presets apply from its first session; its id is the one its Inform will give."""
    if not oui.strip() or not serial_number.strip():
        raise BadFilter("a device needs an OUI and a serial number")
    for tag in tags:
        if not _TAG_RE.fullmatch(tag):
            raise BadFilter("tags are 1-64 of A-Z a-z 0-9 _ . : @ -")
    if mode is not None and mode not in ("common", "ctc"):
        raise BadFilter("mode must be common, ctc or null")
    device_id = DeviceIdStruct(
        oui=oui, product_class=product_class, serial_number=serial_number
    ).device_id
    async with db.write() as conn:
        result = await conn.execute(
            insert_for(conn, d)
            .values(
                id=device_id,
                oui=oui,
                product_class=product_class,
                serial_number=serial_number,
                tags=sorted(set(tags)),
                mode=mode,
                parameters={},
                last_events=[],
                status=monitoring.Status.NEVER_SEEN.value,
                status_since=now,
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )
        if not result.rowcount:
            raise DeviceExists(device_id)
    return await get_device(db, device_id, now=now)


async def delete_device(db: Database, device_id: str) -> None:
    """Forget a device: its sessions, tasks, inform history and faults go with it."""
    async with db.write() as conn:
        result = await conn.execute(delete(d).where(d.c.id == device_id))
        if not result.rowcount:
            raise DeviceNotFound(device_id)


async def set_tag(db: Database, device_id: str, tag: str, present: bool) -> list[str]:
    if not _TAG_RE.fullmatch(tag):
        raise BadFilter("tags are 1-64 of A-Z a-z 0-9 _ . : @ -")
    async with db.write() as conn:
        tags = await conn.scalar(select(d.c.tags).where(d.c.id == device_id))
        if tags is None:
            raise DeviceNotFound(device_id)
        new = sorted(set(tags) | {tag}) if present else [t for t in tags if t != tag]
        if new != tags:
            await conn.execute(
                update(d).where(d.c.id == device_id).values(tags=new, presets_mark=None)
            )  # presets may filter on tags
        return list(new)


async def set_cwmp_credentials(
    db: Database, device_id: str, username: str, password: str | None, realm: str
) -> None:
    """Give a device its own CWMP credentials (stored as HA1), or clear them (``None``): the
    device is then ``new`` again (the shared pair admits it; in common mode it gets a pair
    of its own in its next session, when the server gives devices theirs)."""
    if password is None:
        values: dict[str, Any] = {
            "cwmp_username": None,
            "cwmp_ha1_md5": None,
            "cwmp_ha1_sha256": None,
            "cwmp_credentials": None,
        }
    else:
        ha1 = hash_credentials(username, password, realm)
        values = {
            "cwmp_username": username,
            "cwmp_ha1_md5": ha1["MD5"],
            "cwmp_ha1_sha256": ha1["SHA-256"],
        }
    async with db.write() as conn:
        result = await conn.execute(update(d).where(d.c.id == device_id).values(**values))
        if not result.rowcount:
            raise DeviceNotFound(device_id)


async def set_mode(db: Database, device_id: str, mode: str | None) -> None:
    """Override the ACS mode for one device (``None``: follow the server default)."""
    if mode is not None and mode not in ("common", "ctc"):
        raise BadFilter("mode must be common, ctc or null")
    async with db.write() as conn:
        result = await conn.execute(update(d).where(d.c.id == device_id).values(mode=mode))
        if not result.rowcount:
            raise DeviceNotFound(device_id)


async def parameters_of(db: Database, device_id: str) -> dict[str, Any]:
    async with db.read() as conn:
        params = await conn.scalar(select(d.c.parameters).where(d.c.id == device_id))
    if params is None:
        raise DeviceNotFound(device_id)
    return dict(params)


async def set_tag_matching(
    db: Database, f: DeviceFilter, tag: str, present: bool, *, now: datetime
) -> int:
    """Add (``present``) or remove a tag on every device matching ``f``, in one statement;
    how many devices changed."""
    if not _TAG_RE.fullmatch(tag):
        raise BadFilter("tags are 1-64 of A-Z a-z 0-9 _ . : @ -")
    has_tag = DeviceFilter(tag=tag)
    async with db.write() as conn:
        dialect = conn.dialect.name
        tagged = conditions(dialect, has_tag, now)[0]
        # the tag's condition is SQL text: grouped, so that it can be negated
        where = [*conditions(dialect, f, now), not_(Grouping(tagged)) if present else tagged]
        if dialect == "postgresql":
            new = (
                "devices.tags || CAST(:tag_doc AS jsonb)" if present else "devices.tags - :tag_text"
            )
        elif present:
            new = "json_insert(devices.tags, '$[#]', :tag_text)"
        else:
            new = (
                "(SELECT json_group_array(value) FROM json_each(devices.tags) "
                "WHERE value != :tag_text)"
            )
        value = text(new).bindparams(
            *(
                [bindparam("tag_doc", [tag], type_=JSONDoc)]
                if present and dialect == "postgresql"
                else [bindparam("tag_text", tag)]
            )
        )
        result = await conn.execute(update(d).where(*where).values(tags=value, presets_mark=None))
        return int(result.rowcount or 0)


async def delete_matching(
    db: Database, f: DeviceFilter, *, now: datetime, batch: int = 1000
) -> int:
    """Forget every device matching ``f`` (as ``delete_device``), ``batch`` devices per
    transaction so that CPE sessions are not held up; how many went."""
    gone = 0
    while True:
        async with db.write() as conn:
            ids = (
                (
                    await conn.execute(
                        select(d.c.id).where(*conditions(db.dialect, f, now)).limit(batch)
                    )
                )
                .scalars()
                .all()
            )
            if not ids:
                return gone
            result = await conn.execute(delete(d).where(d.c.id.in_(ids)))
            gone += int(result.rowcount or 0)


async def inform_history(db: Database, device_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """A device's latest Informs, newest first: when, the event codes, from where."""
    i = tables.informs
    async with db.read() as conn:
        rows = await conn.execute(
            select(i.c.received, i.c.events, i.c.peer_host)
            .where(i.c.device_id == device_id)
            .order_by(i.c.received.desc())
            .limit(limit)
        )
        return [
            {"received": r.received, "events": [e[0] for e in r.events], "peer": r.peer_host}
            for r in rows
        ]
