"""Drive the CWMP service as a CPE would, without HTTP: HttpRequest in, HttpReply out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from acs.cwmp import soap
from acs.cwmp.http import HttpReply, HttpRequest
from acs.db import hot
from acs.db.engine import Database
from acs.services import task_specs, tasks
from acs.services.runtime import Runtime
from tests.cpe_auth_client import digest_header
from tests.fake_cpe import FakeCpe


class ServiceCpe:
    """A FakeCpe talking to ``runtime.cwmp.handle`` with auth and (optional) cookies."""

    def __init__(
        self,
        runtime: Runtime,
        fake: FakeCpe | None = None,
        *,
        host: str = "192.0.2.10",
        port: int = 40000,
        username: str = "acs",
        password: str = "cpe-secret",
        cookies: bool = True,
        path: str = "/acs",
    ):
        self.runtime = runtime
        self.fake = fake or FakeCpe()
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.use_cookies = cookies
        self.path = path
        self.cookie: str | None = None
        self.challenge: str | None = None
        self.nc = 0
        self.send_auth_every_time = True
        self.use_model_credentials = True
        # CPEs take their credentials at the start of a session: a change the ACS makes
        # during the session applies from the next one.
        self.session_credentials: tuple[str, str] | None = None
        self.answered: list[Any] = []  # ACS requests answered by empty()

    def _credentials(self) -> tuple[str, str]:
        """ManagementServer.Username/Password once the ACS set them (CTC rotates them on
        bootstrap), else what the CPE was shipped with, as a real CPE does."""
        model = self.fake.model
        user = model.get(f"{model.root}.ManagementServer.Username")
        password = model.get(f"{model.root}.ManagementServer.Password")
        if user and password and self.use_model_credentials:
            return str(user), str(password)
        return self.username, self.password

    def _auth(self) -> str | None:
        if self.challenge is None:
            return None
        self.nc += 1
        username, password = self.session_credentials or self._credentials()
        return digest_header(self.challenge, username, password, uri=self.path, nc=self.nc)

    async def raw(self, body: bytes, headers: dict[str, str] | None = None) -> HttpReply:
        hdrs = {"content-type": "text/xml"}
        if self.use_cookies and self.cookie:
            hdrs["cookie"] = self.cookie
        hdrs.update(headers or {})
        reply = await self.runtime.cwmp.handle(
            HttpRequest("POST", self.path, hdrs, body, self.host, self.port)
        )
        for name, value in reply.headers:
            if name == "set-cookie":
                self.cookie = value.split(";")[0]
        return reply

    async def post(self, body: bytes, **headers: str) -> HttpReply:
        """POST with Digest auth, answering one 401 challenge like a CPE does."""
        extra = {k.replace("_", "-"): v for k, v in headers.items()}
        auth = self._auth() if self.send_auth_every_time or body.lstrip()[:1] else None
        if auth:
            extra.setdefault("authorization", auth)
        reply = await self.raw(body, extra)
        if reply.status == 401 and "authorization" not in {k.lower() for k in headers}:
            self.challenge = dict(reply.headers)["www-authenticate"]
            self.nc = 0
            extra["authorization"] = self._auth() or ""
            reply = await self.raw(body, extra)
        return reply

    async def inform(self, *events: str, **headers: str) -> HttpReply:
        self.session_credentials = self._credentials()
        return await self.post(self.fake.inform(*events), **headers)

    async def empty(self) -> HttpReply:
        """The empty POST, then answer every ACS request like a CPE until the 204."""
        reply = await self.post(b"")
        for _ in range(100):
            if reply.status != 200:
                return reply
            self.answered.append(soap.parse_envelope(reply.body).message)
            reply = await self.post(self.fake.answer(reply.body))
        raise AssertionError("the ACS kept sending requests")


class Clock:
    """The service's clock, moved by hand (``clock.now += 31``)."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    @property
    def dt(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


async def session(cpe: ServiceCpe, *events: str, before_empty: Sequence[bytes] = ()) -> list[Any]:
    """A whole session (its own requests in ``before_empty``); the ACS requests the CPE
    answered."""
    start = len(cpe.answered)
    reply = await cpe.inform(*events)
    assert reply.status == 200, reply.body
    for body in before_empty:
        assert (await cpe.post(body)).status == 200
    final = await cpe.empty()
    assert final.status == 204, final.body
    return cpe.answered[start:]


async def rows(db: Database, sql: str, **params: Any) -> list[Any]:
    async with db.read() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def count(db: Database, table: str) -> int:
    [(n,)] = await rows(db, f"SELECT count(*) FROM {table}")
    return int(n)


async def device_columns(db: Database, *names: str) -> Any:
    """Typed columns of the one device (Core select: dates come back as datetimes)."""
    from sqlalchemy import select

    from acs.db import tables

    async with db.read() as conn:
        return (await conn.execute(select(*(tables.devices.c[n] for n in names)))).one()


def spec(data: dict[str, Any]) -> Any:
    """A task as an operator queues it (validated)."""
    return task_specs.TASK_ADAPTER.validate_python(data)


async def queue(
    runtime: Runtime,
    clock: Clock,
    *specs: dict[str, Any],
    device: str = "00D09E-IGD-SN0001",
    ttl: int = 3600,
) -> list[int]:
    """Queue tasks for ``device`` now; their ids."""
    queued = await tasks.queue(
        runtime.db,
        device,
        [spec(s) for s in specs],
        created_by="test",
        now=clock.dt,
        default_ttl=ttl,
    )
    return [t["id"] for t in queued]


@contextmanager
def counted() -> Iterator[list[str]]:
    """The hot path's statements run meanwhile (their SQL)."""
    seen: list[str] = []
    fetch, execute = hot.DriverTransaction.fetch, hot.DriverTransaction.execute

    async def counting_fetch(self: Any, statement: hot.Statement, /, **params: Any) -> Any:
        seen.append(statement.text_for(self.dialect))
        return await fetch(self, statement, **params)

    async def counting_execute(self: Any, statement: hot.Statement, /, **params: Any) -> Any:
        seen.append(statement.text_for(self.dialect))
        return await execute(self, statement, **params)

    hot.DriverTransaction.fetch = counting_fetch  # type: ignore[method-assign]
    hot.DriverTransaction.execute = counting_execute  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        hot.DriverTransaction.fetch = fetch  # type: ignore[method-assign]
        hot.DriverTransaction.execute = execute  # type: ignore[method-assign]
