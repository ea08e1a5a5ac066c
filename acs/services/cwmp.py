"""The CWMP exchange: one HTTP POST from a CPE in, one HTTP response out.

This is where the sans-I/O session machine (``acs.cwmp.session``) meets the database.
Each request runs in one transaction: find the session, advance the machine, let the
hooks (tasks, provisioning) act, store the new state. Nothing lives in process memory
between requests, so any worker of any node can serve any request of a session.

How a request finds its session (CPEs differ, TR-069 3.4.1 only says "SHOULD"):
cookie, else the TCP connection (peer address and port), else the peer address alone.
An Inform always starts a new session. If the device still has an open session, the new
Inform replaces it when it plainly comes from the same CPE (it carries that session's
cookie, or comes from the same address: a connection request raced the session, or the
CPE gave up on it); otherwise the CPE is told to come back later (503, Retry-After).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from acs.config import Settings
from acs.cwmp import faults, soap
from acs.cwmp import messages as m
from acs.cwmp import session as cs
from acs.db import queries
from acs.db.engine import Database
from acs.services import inform as inform_values
from acs.services.admission import SessionAdmission
from acs.services.cpe_auth import (
    AuthOutcome,
    CpeAuthenticator,
    DeviceCredentials,
    device_credentials,
)

log = logging.getLogger("acs.cwmp")

COOKIE_NAME = "acs_session"
MAX_CPE_SESSION_TIMEOUT = 300  # honour a CPE's SessionTimeout header up to this


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """What the web layer hands us: no framework types below this line."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    peer_host: str
    peer_port: int
    tls: bool = False


@dataclass(slots=True)
class HttpReply:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def text(cls, status: int, message: str, **headers: str) -> HttpReply:
        reply = cls(status, message.encode() + b"\n", [("content-type", "text/plain")])
        reply.headers.extend((k.replace("_", "-"), v) for k, v in headers.items())
        return reply


@dataclass(slots=True)
class SessionContext:
    """One request's view of its session, handed to the hooks."""

    session_id: str
    device_id: str
    machine: cs.CwmpSession
    now: datetime
    peer_host: str
    base_url: str = ""  # how this CPE reaches us, for URLs we hand it (Download)
    inform: m.Inform | None = None
    known: queries.DeviceAuth | None = None  # the device row as it was before this Inform
    # Set by a hook to end the session after the current exchange (e.g. after Reboot).
    end_after_answer: bool = False
    # Hook state that must survive to the session's later requests (JSON, stored with it).
    extra: dict[str, Any] = field(default_factory=dict)
    # Whether the device has queued tasks right now (None: unknown, look).
    has_queued_tasks: bool | None = None


class SessionHooks:
    """What the ACS does inside a session beyond the protocol itself.

    The defaults answer every CPE request correctly and send no ACS requests; the task
    queue and provisioning services override them. Every hook runs inside the request's
    transaction (``conn``): what it writes commits or rolls back with the session state.
    """

    async def on_inform(self, conn: AsyncConnection, ctx: SessionContext) -> None:
        """The device row is up to date; act on the Inform's events."""

    async def on_cpe_request(self, conn: AsyncConnection, ctx: SessionContext, request: Any) -> Any:
        """Return the response (or an ``m.Fault``) to a CPE request other than Inform."""
        if isinstance(request, m.GetRPCMethods):
            return m.GetRPCMethodsResponse(method_list=m.ACS_METHODS)
        if isinstance(request, m.TransferComplete):
            return m.TransferCompleteResponse()
        if isinstance(request, m.AutonomousTransferComplete):
            return m.AutonomousTransferCompleteResponse()
        if isinstance(request, m.RequestDownload):
            return m.RequestDownloadResponse()
        if isinstance(request, m.Kicked):
            return m.KickedResponse(next_url=request.next)
        return m.Fault(faults.ACS_METHOD_NOT_SUPPORTED)

    async def next_request(
        self, conn: AsyncConnection, ctx: SessionContext
    ) -> tuple[Any, str | None] | None:
        """The next ACS request to send, with a reference for its answer; ``None`` ends."""
        return None

    async def on_answer(self, conn: AsyncConnection, ctx: SessionContext, event: cs.Event) -> None:
        """A ``ResponseReceived``, ``FaultReceived`` or ``RequestUnanswered``."""

    async def on_session_closed(
        self, conn: AsyncConnection, device_id: str, reason: str, now: datetime
    ) -> None:
        """A session ended other than by a 204 (replaced, expired, protocol error)."""


class _SlotTaken(Exception):
    """Another session of the device won the race for its session slot."""


def session_cookies(header: str | None) -> list[str]:
    """Our session ids in a Cookie header, however the CPE mangled it.

    Seen in the field: ``acs_session=x``; attributes echoed back
    (``acs_session=x; Path=/; HttpOnly``); several cookies joined by commas.
    """
    if not header:
        return []
    out = []
    for part in re.split(r"[;,]", header):
        name, sep, value = part.strip().partition("=")
        value = value.strip().strip('"')
        if sep and name.strip() == COOKIE_NAME and value:
            out.append(value)
    return out


class CwmpService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        authenticator: CpeAuthenticator,
        hooks: SessionHooks | None = None,
        clock: Callable[[], float] = time.time,
        after_commit: Callable[[], None] | None = None,
        admission: SessionAdmission | None = None,
    ):
        self.db = db
        self.admission = admission or SessionAdmission(
            settings.cwmp_max_sessions, settings.cwmp_session_timeout
        )
        self.settings = settings
        self.auth = authenticator
        self.hooks = hooks or SessionHooks()
        self.clock = clock
        # told after every committed request, so that waiters in this process look again
        self.after_commit = after_commit or (lambda: None)
        self.limits = soap.ParseLimits(max_bytes=settings.cwmp_max_body_bytes)

    async def handle(self, request: HttpRequest) -> HttpReply:
        try:
            envelope = soap.parse_envelope(request.body, self.limits)
        except soap.HostileXml as exc:
            log.warning("refused body from %s: %s", request.peer_host, exc)
            return HttpReply.text(400, f"refused: {exc}")
        except soap.SoapError as exc:
            log.info("unreadable body from %s: %s", request.peer_host, exc)
            return HttpReply.text(400, f"not a CWMP envelope: {exc}")
        if cs.classify(envelope) is cs.Move.CPE_INFORM:
            return await self._inform(request, envelope)
        return await self._in_session(request, envelope)

    @asynccontextmanager
    async def _request_transaction(self) -> AsyncIterator[AsyncConnection]:
        """A request's transaction. How long it took, waits for a connection or the write lock
        included, tells admission how loaded this worker is."""
        started = time.monotonic()
        try:
            async with self.db.write(hot=True) as conn:
                yield conn
        finally:
            self.admission.served(time.monotonic() - started)

    # --- Inform: a new session ----------------------------------------------------------

    async def _inform(self, request: HttpRequest, envelope: soap.Envelope) -> HttpReply:
        now_ts = self.clock()
        now = datetime.fromtimestamp(now_ts, UTC)
        if not isinstance(envelope.message, m.Inform):  # unreadable Inform: 8003, no session
            return self._invalid_inform(envelope, envelope.message.reason)
        inform: m.Inform = envelope.message
        device_id = inform.device_id.device_id
        if not inform.device_id.oui or not inform.device_id.serial_number:
            return self._invalid_inform(envelope, "DeviceId needs OUI and SerialNumber")

        authorization = request.headers.get("authorization")
        if authorization is None and self.auth.mode != "none":
            # nothing to check yet: challenge without touching the database
            return self._unauthorized(
                AuthOutcome(False, "no credentials", self.auth.challenge(now_ts, device_id)),
                request,
                device_id,
            )
        if not self.admission.admit(device_id):
            # A boot storm: turn new sessions away (sessions already open go on being served).
            retry = self.admission.retry_after()
            return HttpReply.text(503, "busy, retry later", retry_after=str(retry))
        cookies = session_cookies(request.headers.get("cookie"))
        session_id = queries.new_session_id()
        machine = cs.CwmpSession(id_prefix=session_id[:8] + ".")
        [event] = machine.receive(envelope)
        assert isinstance(event, cs.InformReceived)
        timeout = self._timeout(envelope)
        try:
            # One transaction: authenticate, then record. A refusal rolls back: nothing written.
            async with self._request_transaction() as conn:
                known = await queries.device_auth(conn, device_id)
                own = device_credentials(
                    known.cwmp_username, known.cwmp_ha1_md5, known.cwmp_ha1_sha256
                )
                outcome = await self.auth.authenticate(
                    conn,
                    authorization,
                    method=request.method,
                    path=request.path,
                    tls=request.tls,
                    credentials=own,
                    binding=device_id,
                    now=now_ts,
                )
                if not outcome.ok:
                    raise _Abort(self._unauthorized(outcome, request, device_id))
                replace = self._replaceable(known, cookies, request, now, device_id)
                if replace is not None:
                    await self._close(conn, replace, device_id, "replaced by a new Inform", now)
                ctx = SessionContext(
                    session_id=session_id,
                    device_id=device_id,
                    machine=machine,
                    now=now,
                    peer_host=request.peer_host,
                    base_url=self._base_url(request),
                    inform=inform,
                    known=known,
                )
                await queries.upsert_device_on_inform(
                    conn,
                    inform_values.device_values(
                        inform,
                        peer_host=request.peer_host,
                        now=now,
                        cwmp_version=event.cwmp_version,
                        known_interval=known.periodic_inform_interval,
                        silent_grace=self.settings.silent_grace,
                    ),
                    inform_values.parameter_patch(inform.parameter_list, now),
                    bootstrap="0 BOOTSTRAP" in inform.event_codes,
                    known=known,
                )
                await queries.insert_inform(
                    conn,
                    device_id=device_id,
                    received=now,
                    events=[[e.event_code, e.command_key] for e in inform.event],
                    retry_count=inform.retry_count,
                    peer_host=request.peer_host,
                )
                await self.hooks.on_inform(conn, ctx)
                body = machine.send_inform_response()
                state = {
                    "machine": machine.to_json(),
                    "timeout": timeout,
                    "extra": ctx.extra,
                    # later requests are checked against these, without a lookup
                    "auth": None if own is None else {"user": own.username, "ha1": own.ha1},
                }
                claimed = await queries.insert_session(
                    conn,
                    session_id=session_id,
                    device_id=device_id,
                    state=state,
                    peer_host=request.peer_host,
                    peer_port=request.peer_port,
                    now=now,
                    expires=now + timedelta(seconds=timeout),
                )
                if not claimed:
                    raise _Abort(
                        HttpReply.text(503, "device already in a session", retry_after="5")
                    )
        except _Abort as abort:
            return abort.reply
        self.after_commit()
        self.admission.opened(session_id)
        log.debug("%s: session %s opened, events %s", device_id, session_id, inform.event_codes)
        return self._xml(body, session_id, request.tls)

    def _invalid_inform(self, envelope: soap.Envelope, reason: str) -> HttpReply:
        """Fault 8003 to an Inform the ACS cannot act on; no session is opened."""
        machine = cs.CwmpSession()
        machine.receive(envelope)
        return self._xml(machine.send_fault(faults.ACS_INVALID_ARGUMENTS, f"Inform: {reason}"))

    def _replaceable(
        self,
        known: queries.DeviceAuth,
        cookies: list[str],
        request: HttpRequest,
        now: datetime,
        device_id: str,
    ) -> str | None:
        """The device's open session this Inform replaces; 503 if it must wait instead."""
        if known.session_id is None or known.session_expires is None:
            return None
        if known.session_expires <= now:
            return known.session_id  # abandoned: take it over
        if known.session_id in cookies or known.session_peer_host == request.peer_host:
            return known.session_id  # the same CPE starting over
        wait = math.ceil((known.session_expires - now).total_seconds())
        log.info(
            "%s: Inform from %s while its session from %s is open",
            device_id,
            request.peer_host,
            known.session_peer_host,
        )
        raise _Abort(
            HttpReply.text(503, "device already in a session", retry_after=str(max(1, wait)))
        )

    def _base_url(self, request: HttpRequest) -> str:
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        host = request.headers.get("host") or "localhost"
        return f"{'https' if request.tls else 'http'}://{host}"

    def _timeout(self, envelope: soap.Envelope) -> int:
        timeout = self.settings.cwmp_session_timeout
        if envelope.session_timeout:
            timeout = max(timeout, min(envelope.session_timeout, MAX_CPE_SESSION_TIMEOUT))
        return timeout

    # --- every other POST of a session -------------------------------------------------

    async def _in_session(self, request: HttpRequest, envelope: soap.Envelope) -> HttpReply:
        now_ts = self.clock()
        now = datetime.fromtimestamp(now_ts, UTC)
        cookies = session_cookies(request.headers.get("cookie"))
        async with self._request_transaction() as conn:
            rows = await queries.find_sessions(
                conn,
                now=now,
                session_ids=cookies,
                peer_host=request.peer_host,
                peer_port=request.peer_port,
            )
            row = _best_session(rows, request, cookies, envelope)
            if row is None:
                return HttpReply.text(400, "no open CWMP session: a session starts with an Inform")
            state = dict(row.state)
            authorization = request.headers.get("authorization")
            if authorization is not None:
                # The session was authenticated at its Inform; a request that shows
                # credentials again must show the right ones (checked without a lookup).
                own = state.get("auth")
                outcome = await self.auth.authenticate(
                    conn,
                    authorization,
                    method=request.method,
                    path=request.path,
                    tls=request.tls,
                    credentials=None if own is None else DeviceCredentials(own["user"], own["ha1"]),
                    binding=row.device_id,
                    now=now_ts,
                )
                if not outcome.ok:
                    return self._unauthorized(outcome, request, row.device_id)
            machine = cs.CwmpSession.from_json(state["machine"])
            ctx = SessionContext(
                session_id=row.id,
                device_id=row.device_id,
                machine=machine,
                now=now,
                peer_host=request.peer_host,
                base_url=self._base_url(request),
                extra=dict(state.get("extra") or {}),
                has_queued_tasks=bool(row.has_tasks),
            )
            try:
                events = machine.receive(envelope)
            except cs.ProtocolError as exc:
                log.info("%s: protocol error, session closed: %s", row.device_id, exc)
                await self._close(conn, row.id, row.device_id, f"protocol error: {exc}", now)
                return HttpReply.text(400, f"CWMP protocol error: {exc}; session closed")
            body = await self._advance(conn, ctx, events)
            if machine.finished:
                await queries.delete_session(conn, row.id)
                log.debug("%s: session %s ended", row.device_id, row.id)
            else:
                state["machine"] = machine.to_json()
                state["extra"] = ctx.extra
                await queries.save_session(
                    conn,
                    row.id,
                    state=state,
                    peer_host=request.peer_host,
                    peer_port=request.peer_port,
                    now=now,
                    expires=now + timedelta(seconds=int(state.get("timeout", 30))),
                )
        self.after_commit()
        if machine.finished:
            self.admission.closed(row.id)
            return HttpReply(204)
        assert body is not None
        return self._xml(body, row.id, request.tls)

    async def _advance(
        self, conn: AsyncConnection, ctx: SessionContext, events: list[cs.Event]
    ) -> bytes | None:
        machine = ctx.machine
        for event in events:
            if isinstance(event, cs.CpeRequestReceived):
                return await self._answer_cpe(conn, ctx, event)
            if isinstance(event, cs.ResponseReceived | cs.FaultReceived | cs.RequestUnanswered):
                await self.hooks.on_answer(conn, ctx, event)
        # The ACS's turn: send the next request, or end the session.
        assert machine.state is cs.State.ACS_REQUESTS
        if not ctx.end_after_answer:
            nxt = await self.hooks.next_request(conn, ctx)
            if nxt is not None:
                request, ref = nxt
                return machine.send_request(request, ref=ref)
        machine.end()
        return None

    async def _answer_cpe(
        self, conn: AsyncConnection, ctx: SessionContext, event: cs.CpeRequestReceived
    ) -> bytes:
        machine = ctx.machine
        request = event.request
        if event.held:
            return machine.send_fault(faults.ACS_REQUEST_DENIED, "HoldRequests is set")
        if isinstance(request, soap.InvalidMessage):
            return machine.send_fault(
                faults.ACS_INVALID_ARGUMENTS, f"{request.name}: {request.reason}"
            )
        if isinstance(request, soap.UnknownMethod):
            return machine.send_fault(faults.ACS_METHOD_NOT_SUPPORTED, f"{request.name} is unknown")
        answer = await self.hooks.on_cpe_request(conn, ctx, request)
        if isinstance(answer, m.Fault):
            return machine.send_fault(answer.fault_code, answer.fault_string)
        return machine.send_response(answer)

    async def _close(
        self, conn: AsyncConnection, session_id: str, device_id: str, reason: str, now: datetime
    ) -> bool:
        """End a session other than by a 204; ``False`` if it was gone already."""
        if not await queries.delete_session(conn, session_id):
            return False
        self.admission.closed(session_id)
        await self.hooks.on_session_closed(conn, device_id, reason, now)
        return True

    async def expire_sessions(self) -> int:
        """Close sessions that saw no request within their timeout (the sweeper calls this)."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        closed = 0
        async with self.db.write(hot=True) as conn:
            for row in await queries.expired_sessions(conn, now):
                closed += await self._close(conn, row.id, row.device_id, "session timed out", now)
            await queries.prune_nonces(conn, now)
        return closed

    # --- replies -----------------------------------------------------------------------

    def _xml(self, body: bytes, session_id: str | None = None, tls: bool = False) -> HttpReply:
        headers = [("content-type", 'text/xml; charset="utf-8"')]
        if session_id is not None:
            cookie = f"{COOKIE_NAME}={session_id}; Path=/; HttpOnly"
            headers.append(("set-cookie", cookie + ("; Secure" if tls else "")))
        return HttpReply(200, body, headers)

    def _unauthorized(
        self, outcome: AuthOutcome, request: HttpRequest, device_id: str
    ) -> HttpReply:
        log.info(
            "%s: authentication from %s refused: %s", device_id, request.peer_host, outcome.reason
        )
        return HttpReply(401, b"", [("www-authenticate", value) for value in outcome.challenge])


class _Abort(Exception):
    """Roll the transaction back and answer this instead."""

    def __init__(self, reply: HttpReply):
        self.reply = reply


def _best_session(
    rows: Sequence[Any],
    request: HttpRequest,
    cookies: list[str],
    envelope: soap.Envelope,
) -> Any:
    """Pick the session a request belongs to: cookie, connection, then address."""
    for row in rows:
        if row.id in cookies:
            return row
    for row in rows:
        if row.peer_host == request.peer_host and row.peer_port == request.peer_port:
            return row
    by_address = [row for row in rows if row.peer_host == request.peer_host]
    if len(by_address) > 1 and envelope.cwmp_id:
        # Several cookie-less CPEs behind one address: our request ids carry the session.
        matching = [r for r in by_address if envelope.cwmp_id.startswith(r.id[:8] + ".")]
        if matching:
            return matching[0]
    return by_address[0] if by_address else None
