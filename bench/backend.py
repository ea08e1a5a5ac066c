"""A fresh database of one kind (SQLite or PostgreSQL) for one bench run, `acs serve`
processes on it, and the set-based fill to a large fleet."""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from acs.db.engine import Database
from bench.serve import Process, acs_cli, add_operator, free_port, serve_acs

PASSWORD = "bench-cpe-secret"
PG_ADMIN = os.environ.get(
    "ACS_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
INDEXED = "InternetGatewayDevice.DeviceInfo.ProvisioningCode"
OPERATOR = ("bench", "bench-password")  # the API scenarios' Basic credentials


class Backend:
    """A fresh database of one kind, and `acs serve` processes on it."""

    def __init__(self, kind: str, work: Path):
        self.kind = kind
        self.work = work / kind
        self.work.mkdir(parents=True, exist_ok=True)
        if kind == "sqlite":
            self.url = f"sqlite+aiosqlite:///{self.work / 'acs.db'}"
            self.dbname = None
        else:
            self.dbname = f"acs_bench_{secrets.token_hex(4)}"
            self.url = (
                make_url(PG_ADMIN).set(database=self.dbname).render_as_string(hide_password=False)
            )
        self.tftp_port: int | None = None  # of the `acs serve` running now
        self.env = {
            **os.environ,
            "ACS_DATABASE_URL": self.url,
            "ACS_DATA_DIR": str(self.work),
            "ACS_CWMP_PASSWORD": PASSWORD,
            "ACS_SECRET_KEY": "bench-secret",
            "ACS_LOG_LEVEL": "warning",
            "ACS_INDEXED_PARAMETERS": INDEXED,
            "ACS_CWMP_MAX_BODY_BYTES": str(32 << 20),  # scenario 7's answer: about 10 MB
            # the simulated fleet is one address standing for thousands: past the cap per
            # source (256) the guard closed a storm's connections, failing its sessions
            "ACS_HTTP_MAX_CONNECTIONS_PER_SOURCE": "1000000",
        }

    async def create(self) -> None:
        """The database, migrated, with an operator ``bench`` for the API scenarios."""
        if self.dbname is not None:
            await _admin(f'CREATE DATABASE "{self.dbname}"')
        acs_cli(self.env, "db", "upgrade")
        add_operator(self.env, OPERATOR[0], "operator", OPERATOR[1])

    async def drop(self) -> None:
        if self.dbname is not None:
            await _admin(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')

    def serve(self, workers: int) -> tuple[Process, str, str]:
        """`acs serve` with ``workers`` workers: the process, the CWMP URL, the API URL.
        TFTP serves on ``tftp_port`` too (scenario 6)."""
        self.tftp_port = free_port(kind=socket.SOCK_DGRAM)
        env = {
            **self.env,
            "ACS_WORKERS": str(workers),
            "ACS_TFTP_PORT": str(self.tftp_port),
            "ACS_TFTP_ALLOW": "127.0.0.0/8",
        }
        server, cwmp, api = serve_acs(env, self.work / f"serve-{workers}.log")
        return server, cwmp + "/acs", api

    @asynccontextmanager
    async def database(self) -> AsyncIterator[Database]:
        """A `Database` on it in this process (the bench's own, not the server's)."""
        db = Database(self.url)
        try:
            yield db
        finally:
            await db.dispose()

    async def sql(self, statement: str, **params: Any) -> Any:
        async with self.database() as db, db.write() as conn:
            return await conn.execute(text(statement), params)

    async def settle(self) -> None:
        """After a bulk fill, what the database would have done on its own before long
        (autovacuum, checkpoints), so the next scenario measures the ACS and not that:
        statistics, the visibility map (index-only counts), a flushed WAL."""
        if self.kind == "sqlite":
            lite = sqlite3.connect(self.work / "acs.db")
            try:
                lite.execute("ANALYZE")
                lite.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                lite.close()
            return
        async with self.database() as db, db.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM (ANALYZE)"))
            await conn.execute(text("CHECKPOINT"))

    async def scalar(self, statement: str) -> Any:
        async with self.database() as db, db.read() as conn:
            return await conn.scalar(text(statement))


async def _admin(statement: str) -> None:
    """CREATE or DROP DATABASE on the PostgreSQL server (outside a transaction)."""
    admin = Database(PG_ADMIN)
    try:
        async with admin.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as c:
            await c.execute(text(statement))
    finally:
        await admin.dispose()


async def fill(backend: Backend, total: int) -> float:
    """Insert synthetic devices until the table holds ``total``, in one set-based INSERT.

    The one set-up step that bypasses the ACS: a million bootstrap sessions would take over an
    hour here (a storm drains at a few hundred a second) and are not what scenarios 4 and 5
    measure. The rows are shaped as an Inform stores a device (columns, parameter tree with
    the indexed parameter; one in ten past its inform deadline, so late): keep them so.
    """
    have = int(await backend.scalar("SELECT count(*) FROM devices"))
    missing = total - have
    if missing <= 0:
        return 0.0
    started = time.monotonic()
    now = datetime.now(UTC)
    if backend.kind == "postgresql":
        params = (
            "jsonb_build_object("
            "'InternetGatewayDevice.DeviceInfo.SoftwareVersion', jsonb_build_object("
            "'value', 'v' || (g % 100), 'type', 'xsd:string'), "
            f"'{INDEXED}', jsonb_build_object('value', 'site-' || (g % 1000), "
            "'type', 'xsd:string'), "
            "'InternetGatewayDevice.ManagementServer.PeriodicInformInterval', "
            "jsonb_build_object('value', 3600, 'type', 'xsd:unsignedInt'))"
        )
        source = f"generate_series(1, {missing}) AS s(g)"
        pad = "lpad(g::text, 9, '0')"
        deadline = (
            "CASE WHEN g % 10 = 0 THEN CAST(:past AS timestamptz) "
            "ELSE CAST(:future AS timestamptz) END"
        )
        statement = (
            "INSERT INTO devices (id, manufacturer, oui, product_class, serial_number, "
            "software_version, ip, cwmp_version, first_seen, last_inform, inform_deadline, "
            "periodic_inform_interval, last_events, tags, parameters) "
            f"SELECT '00D09E-IGD-FILL' || {pad}, 'Acme', '00D09E', 'IGD', 'FILL' || {pad}, "
            "'v' || (g % 100), '10.0.0.1', '1.2', :now, :now, "
            f"{deadline}, 3600, '[]', '[]', {params} FROM {source}"
        )
    else:
        params = (
            "json_object("
            "'InternetGatewayDevice.DeviceInfo.SoftwareVersion', json_object("
            "'value', 'v' || (g % 100), 'type', 'xsd:string'), "
            f"'{INDEXED}', json_object('value', 'site-' || (g % 1000), 'type', 'xsd:string'), "
            "'InternetGatewayDevice.ManagementServer.PeriodicInformInterval', "
            "json_object('value', 3600, 'type', 'xsd:unsignedInt'))"
        )
        pad = "printf('%09d', g)"
        deadline = "CASE WHEN g % 10 = 0 THEN :past ELSE :future END"
        statement = (
            f"WITH RECURSIVE n(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM n WHERE g < {missing}) "
            "INSERT INTO devices (id, manufacturer, oui, product_class, serial_number, "
            "software_version, ip, cwmp_version, first_seen, last_inform, inform_deadline, "
            "periodic_inform_interval, last_events, tags, parameters) "
            f"SELECT '00D09E-IGD-FILL' || {pad}, 'Acme', '00D09E', 'IGD', 'FILL' || {pad}, "
            "'v' || (g % 100), '10.0.0.1', '1.2', :now, :now, "
            f"{deadline}, 3600, '[]', '[]', {params} FROM n"
        )
    past = now.replace(year=now.year - 1)
    future = now.replace(year=now.year + 1)
    if backend.kind == "sqlite":  # the UTC column type stores naive ISO text on SQLite
        now_p, past_p, future_p = (d.replace(tzinfo=None) for d in (now, past, future))
    else:
        now_p, past_p, future_p = now, past, future
    await backend.sql(statement, now=now_p, past=past_p, future=future_p)
    filled = round(time.monotonic() - started, 1)
    await backend.settle()
    return filled
