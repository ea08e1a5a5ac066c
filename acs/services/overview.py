"""The fleet at a glance (the console's overview): devices by status, model and software
version, Informs per minute over a day, the last hour's sessions, faults and connection
requests, the task queue and the rollouts in progress.

Theory of operation
-------------------
Nothing here may cost a scan of the fleet's history per page view. Informs are counted per
*closed* minute into ``inform_minutes`` by whoever reads the chart first (any worker, any
node: the rows are keyed by the minute, a second writer's insert is ignored); a view then
reads at most a day of those rows plus the last two minutes of ``informs`` through the index
on ``received``. A minute is closed two minutes after it began, so an Inform whose
transaction was still open when its minute ended is counted anyway. The device counts are
group-bys over ``devices`` (by the status index, and by product class and software
version): cheap enough for a view every few seconds, and cached by the console.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Text as SqlText
from sqlalchemy import case, cast, delete, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection

from acs.db import tables
from acs.db.engine import Database
from acs.services import metrics

WINDOW: Final = timedelta(hours=24)
MINUTE: Final = timedelta(minutes=1)
CLOSED_AFTER: Final = timedelta(minutes=2)  # a minute is counted for good this long after it began
KEEP: Final = timedelta(hours=48)  # inform_minutes rows older than this are deleted
TOP: Final = 12  # models and software versions listed

im = tables.inform_minutes
i = tables.informs
d = tables.devices
r = tables.rollouts


@dataclass(frozen=True, slots=True)
class Overview:
    devices: dict[str, int]  # effective status -> devices
    total: int
    models: list[tuple[str, str, int]]  # (manufacturer, product class, devices), most first
    versions: list[tuple[str, int]]  # (software version, devices), most first
    informs: list[tuple[datetime, int]]  # per minute, the last 24 h, oldest first
    sessions_last_hour: int
    connection_requests_last_hour: int  # Informs with 6 CONNECTION REQUEST
    faults_last_hour: int
    tasks: dict[str, int]  # status -> tasks
    rollouts: list[dict[str, Any]]  # running: id, name, current_wave, waves, targets
    at: datetime


def floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def _minute_expression(dialect: str) -> Any:
    if dialect == "postgresql":
        return func.date_trunc("minute", i.c.received)
    # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff": the minute is its first 16 characters
    return func.substr(cast(i.c.received, SqlText), 1, 16)


def _as_minute(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def _cr_count() -> Any:
    answered = cast(i.c.events, SqlText).like('%"6 CONNECTION REQUEST"%')
    return func.coalesce(func.sum(case((answered, 1), else_=0)), 0)


async def _uncounted(conn: AsyncConnection, now: datetime) -> datetime | None:
    """The first closed minute of the window that ``inform_minutes`` lacks, if any."""
    start = floor_minute(now - WINDOW)
    newest = await conn.scalar(select(func.max(im.c.minute)))
    if newest is not None:
        start = max(start, _as_minute(newest) + MINUTE)
    return start if start <= floor_minute(now - CLOSED_AFTER) else None


async def _roll_up(conn: AsyncConnection, dialect: str, now: datetime) -> None:
    """Count the closed minutes of the window not counted yet into ``inform_minutes``."""
    start = await _uncounted(conn, now)
    if start is None:  # another worker did it meanwhile
        return
    last_closed = floor_minute(now - CLOSED_AFTER)
    minute = _minute_expression(dialect)
    rows = await conn.execute(
        select(minute, func.count(), _cr_count())
        .where(i.c.received >= start, i.c.received < last_closed + MINUTE)
        .group_by(minute)
    )
    counted = {_as_minute(m): (int(n), int(cr)) for m, n, cr in rows}
    values = []
    at = start
    while at <= last_closed:  # every minute gets a row, an empty one too: the marker moves on
        n, cr = counted.get(at, (0, 0))
        values.append({"minute": at, "count": n, "connection_requests": cr})
        at += MINUTE
    insert = tables.insert_for(conn, im)
    await conn.execute(insert.on_conflict_do_nothing(index_elements=["minute"]), values)
    await conn.execute(delete(im).where(im.c.minute < now - KEEP))


async def informs_per_minute(
    db: Database, now: datetime
) -> tuple[list[tuple[datetime, int]], int, int]:
    """Informs per minute over the last 24 h (oldest first, every minute present), and the
    Informs and connection-request Informs of the last hour."""
    async with db.read() as conn:
        behind = await _uncounted(conn, now) is not None
    if behind:  # about once a minute: the write lock is not taken on every view
        async with db.write() as conn:
            await _roll_up(conn, db.dialect, now)
    start = floor_minute(now - WINDOW) + MINUTE
    open_from = floor_minute(now - CLOSED_AFTER) + MINUTE
    async with db.read() as conn:
        rows = await conn.execute(
            select(im.c.minute, im.c.count, im.c.connection_requests).where(
                im.c.minute >= start, im.c.minute < open_from
            )
        )
        closed = {_as_minute(m): (int(n), int(cr)) for m, n, cr in rows}
        minute = _minute_expression(db.dialect)
        live = await conn.execute(
            select(minute, func.count(), _cr_count())
            .where(i.c.received >= open_from)
            .group_by(minute)
        )
        counted = {**closed, **{_as_minute(m): (int(n), int(cr)) for m, n, cr in live}}
    series = []
    at = start
    last = floor_minute(now)
    while at <= last:
        series.append((at, counted.get(at, (0, 0))[0]))
        at += MINUTE
    hour_ago = now - timedelta(hours=1)
    last_hour = [v for m, v in counted.items() if m >= floor_minute(hour_ago)]
    return series, sum(n for n, _ in last_hour), sum(cr for _, cr in last_hour)


async def overview(db: Database, now: datetime) -> Overview:
    fleet = await metrics.fleet(db, now)
    series, sessions, crs = await informs_per_minute(db, now)
    model = (d.c.manufacturer, d.c.product_class)
    async with db.read() as conn:
        models = (
            await conn.execute(
                select(*model, func.count().label("n"))
                .group_by(*model)
                .order_by(literal_column("n").desc(), *model)
                .limit(TOP)
            )
        ).all()
        versions = (
            await conn.execute(
                select(d.c.software_version, func.count().label("n"))
                .where(d.c.software_version.is_not(None))
                .group_by(d.c.software_version)
                .order_by(literal_column("n").desc(), d.c.software_version)
                .limit(TOP)
            )
        ).all()
        running = (
            await conn.execute(
                select(r.c.id, r.c.name, r.c.current_wave, r.c.waves, r.c.targets)
                .where(r.c.status == "running")
                .order_by(r.c.id)
                .limit(20)
            )
        ).all()
    return Overview(
        devices=fleet.devices,
        total=sum(fleet.devices.values()),
        models=[(str(m or ""), str(p or ""), int(n)) for m, p, n in models],
        versions=[(str(v), int(n)) for v, n in versions],
        informs=series,
        sessions_last_hour=sessions,
        connection_requests_last_hour=crs,
        faults_last_hour=fleet.faults_last_hour,
        tasks=fleet.tasks,
        rollouts=[dict(row._mapping) for row in running],
        at=now,
    )
