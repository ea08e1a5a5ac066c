"""The CWMP exchange: one HTTP POST from a CPE in, one HTTP response out.

This is where the sans-I/O session machine (``acs.cwmp.session``) and its HTTP binding
(``acs.cwmp.http``) meet the database and the session policy (``acs.services.policy``). Each
request runs in one transaction (``Database.hot_write``): find the session, advance the
machine, let the policy act, store the new state (a ``StoredSession``). Nothing lives in
process memory between requests, so any worker of any node can serve any request of a
session. A storage failure anywhere in it is answered here, 503 with Retry-After, and the
transaction leaves nothing behind.

An Inform always starts a new session. If the device still has an open session, the new
Inform replaces it when it plainly comes from the same CPE (it carries that session's
cookie, or comes from the same address: a connection request raced the session, or the CPE
gave up on it); otherwise the CPE is told to come back later (503, Retry-After). What the
replaced session left unanswered is remembered, so that its answer, if the CPE sends it in
the new session, still counts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Final

from acs import logs
from acs.config import Settings
from acs.cwmp import faults, soap
from acs.cwmp import http as binding
from acs.cwmp import messages as m
from acs.cwmp import session as cs
from acs.cwmp.http import HttpReply, HttpRequest
from acs.db import hot, queries
from acs.db.engine import Database
from acs.db.errors import UNAVAILABLE
from acs.services import events, metrics, monitoring
from acs.services import inform as inform_values
from acs.services.admission import SessionAdmission
from acs.services.cpe_auth import (
    AuthOutcome,
    CpeAuthenticator,
    DeviceCredentials,
    device_credentials,
)
from acs.services.device_credentials import pending_pair
from acs.services.policy import SessionContext, SessionFacts, SessionPolicy
from acs.services.throttle import FailureThrottle, source_key

log = logging.getLogger("acs.cwmp")

STORAGE_RETRY_AFTER = 30
# Bodies up to this size are parsed whole at once, before anything else: a few milliseconds
# at most whatever they hold (16 KiB of empty elements: 1.4 ms), and a CPE's Inform is 2-3
# KiB. A larger body is first read only as far as its method (soap.preview_envelope) and
# parsed whole once its request showed credentials (an Inform) or, from a source that keeps
# failing, an open session: an Inform of 961 KB of empty elements cost 0.4 s of CPU before
# its (missing or wrong) credentials were looked at.
PARSE_FIRST_BYTES = 16 * 1024
# Bodies past this size are parsed off the event loop (a whole tree of a TR-181 gateway is
# megabytes: seconds of parsing that would stall every other request of the worker).
PARSE_IN_THREAD_BYTES = 256 * 1024
# Failed requests (wrong credentials, unreadable bodies, requests of no open session) per
# source: the first of a window is logged, and past the limit the source's large bodies are
# parsed only after their request showed valid credentials or an open session, for the rest
# of the window. Nothing is refused for it: thousands of CPEs may share a NAT's address with
# one that fails, and they must go on (they pay a lookup each).
FAILURE_LIMIT = 10
FAILURE_WINDOW = 60.0


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A session between two requests, as its row keeps it (``cwmp_sessions.state``)."""

    machine: dict[str, Any]  # CwmpSession.to_json()
    timeout: int
    facts: SessionFacts
    # later requests are checked against these, without a lookup (None: the shared pair)
    auth: DeviceCredentials | None = None
    flows: dict[str, Any] = field(default_factory=dict)  # the policy's, by component
    # the request a replaced session left unanswered (its answer may still come)
    orphan: cs.PendingRequest | None = None
    # for the line logged when the session ends: when it began (ms since the epoch: an int
    # is cheaper to store than a float), the ACS RPCs it sent
    started: int | None = None
    rpcs: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        orphan = self.orphan
        return {
            "machine": self.machine,
            "timeout": self.timeout,
            "facts": self.facts.to_json(),
            "auth": None
            if self.auth is None
            else {"user": self.auth.username, "ha1": self.auth.ha1},
            "flows": self.flows,
            "orphan": None
            if orphan is None
            else {"cwmp_id": orphan.cwmp_id, "method": orphan.method, "ref": orphan.ref},
            "started": self.started,
            **({"rpcs": self.rpcs} if self.rpcs else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StoredSession:
        auth, orphan = data.get("auth"), data.get("orphan")
        return cls(
            machine=data["machine"],
            timeout=int(data["timeout"]),
            facts=SessionFacts.from_json(data["facts"]),
            auth=None if auth is None else DeviceCredentials(auth["user"], auth["ha1"]),
            flows=dict(data.get("flows") or {}),
            orphan=None if orphan is None else cs.PendingRequest(**orphan),
            started=data.get("started"),
            rpcs=tuple(data.get("rpcs") or ()),
        )


def _session_ended(
    session_id: str,
    device_id: str,
    state: Mapping[str, Any] | StoredSession | None,
    outcome: str,
    now: float,
    *,
    reason: str | None = None,
    client: str | None = None,
) -> None:
    """The one line of a session that ended, logged after its transaction commits: its
    device, the events of its Inform, the ACS RPCs it ran, how long it took and how it ended
    (204, replaced, expired, protocol error, ...); counted in ``metrics`` as well."""
    if isinstance(state, StoredSession):
        events, rpcs, started = state.facts.events, state.rpcs, state.started
    else:  # the state a deleted row left, as JSON (of an older acs, maybe)
        data = state if isinstance(state, Mapping) else {}
        facts = data.get("facts")
        events = tuple(facts.get("events") or ()) if isinstance(facts, Mapping) else ()
        rpcs, started = tuple(data.get("rpcs") or ()), data.get("started")
        started = started if isinstance(started, int) else None
    duration_ms = None if started is None else round(now * 1000) - started
    logs.on_commit(partial(_count_ended, _OUTCOMES.get(outcome, "other"), duration_ms))
    if not log.isEnabledFor(logging.INFO):
        return
    logs.after_commit(
        log,
        logging.INFO,
        "session ended",
        device=device_id,
        outcome=outcome,
        reason=reason,
        events=events,
        rpcs=rpcs,
        duration_ms=duration_ms,
        client=client,
        session_id=logs.short_session_id(session_id),
    )


# How a session ended, as its line says it and as ``metrics.SESSIONS`` labels it.
_OUTCOMES: Final = {
    "204": "completed",
    "replaced": "replaced",
    "expired": "expired",
    "protocol error": "protocol_error",
    "closed": "unreadable",
}


def _count_ended(outcome: str, duration_ms: int | None) -> None:
    metrics.SESSIONS.labels(outcome).inc()
    if duration_ms is not None:
        metrics.SESSION_SECONDS.observe(max(duration_ms, 0) / 1000)


def _refused(
    level: int,
    device_id: str | None,
    inform: m.Inform | None,
    request: HttpRequest,
    reason: str,
    counted: str | None,
    *,
    logged: bool = True,
) -> None:
    """The line of an Inform that opened no session: the challenge before credentials
    (DEBUG), wrong credentials, an Inform the ACS cannot act on, a device busy elsewhere;
    ``counted``: its reason in ``metrics.SESSIONS_REFUSED`` (the challenge is not a refusal);
    not ``logged``: counted only (a source that keeps failing is logged once a window)."""
    if counted is not None:
        metrics.SESSIONS_REFUSED.labels(counted).inc()
    if logged and log.isEnabledFor(level):
        log.log(
            level,
            "session refused",
            extra=logs.fields(
                device=device_id,
                outcome="refused",
                reason=reason,
                events=None if inform is None else inform.event_codes,
                client=request.peer_host,
            ),
        )


def _unanswered(state: Mapping[str, Any] | None) -> cs.PendingRequest | None:
    """What a deleted session's machine still waited for, from its stored state."""
    pending = ((state or {}).get("machine") or {}).get("pending")
    return None if pending is None else cs.PendingRequest(**pending)


class CwmpService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        authenticator: CpeAuthenticator,
        policy: SessionPolicy | None = None,
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
        self.policy = policy or SessionPolicy([])
        self.clock = clock
        # told after every committed request, so that waiters in this process look again
        self.after_commit = after_commit or (lambda: None)
        self.limits = soap.ParseLimits(max_bytes=settings.cwmp_max_body_bytes)
        self.watched = settings.watched_parameter_list
        self.failures = FailureThrottle(FAILURE_LIMIT, FAILURE_WINDOW)

    async def handle(self, request: HttpRequest) -> HttpReply:
        token = logs.session_id.set(None)  # set once the request's session is known
        try:
            return await self._handle(request)
        finally:
            logs.session_id.reset(token)

    async def _handle(self, request: HttpRequest) -> HttpReply:
        try:
            preview, envelope = self._read_start(request)
            if preview.method == "Inform":
                return await self._inform(request, preview, envelope)
            if envelope is None:
                if self._suspect(request):
                    await self._require_session(request, preview)
                envelope = await self._parse(request)
            return await self._in_session(request, envelope)
        except _Abort as abort:
            return abort.reply
        except UNAVAILABLE as exc:
            log.error("storage unavailable: %s", exc)
            return HttpReply.busy("storage unavailable, retry later", STORAGE_RETRY_AFTER)

    # --- reading the body ----------------------------------------------------------------

    def _read_start(self, request: HttpRequest) -> tuple[soap.Preview, soap.Envelope | None]:
        """What the body is (its method, an Inform's DeviceId), and the envelope if it was
        read whole: a small body at once, a large one later (``_parse``)."""
        body = request.body
        try:
            if len(body) > PARSE_FIRST_BYTES:
                return soap.preview_envelope(body, self.limits), None
            if "authorization" not in request.headers and not request.cookies:
                # A session's first Inform, most likely: its challenge needs its DeviceId
                # only, which costs half a parse (the 401 round trip of every session).
                preview = soap.preview_envelope(body, self.limits)
                if preview.method == "Inform" and preview.device_id is not None:
                    return preview, None
            envelope = soap.parse_envelope(body, self.limits)
            message = envelope.message
            if isinstance(message, soap.InvalidMessage) and message.name == "Inform":
                # its DeviceId, if it has one, is challenged before the fault is told
                return soap.preview_envelope(body, self.limits), envelope
            return soap.Preview.of(envelope), envelope
        except soap.SoapError as exc:
            raise _Abort(self._unreadable(request, exc)) from None

    async def _parse(self, request: HttpRequest) -> soap.Envelope:
        try:
            if len(request.body) > PARSE_IN_THREAD_BYTES:
                return await asyncio.to_thread(soap.parse_envelope, request.body, self.limits)
            return soap.parse_envelope(request.body, self.limits)
        except soap.SoapError as exc:
            raise _Abort(self._unreadable(request, exc)) from None

    def _unreadable(self, request: HttpRequest, exc: soap.SoapError) -> HttpReply:
        hostile = isinstance(exc, soap.HostileXml)
        if self._failed(request):
            log.log(
                logging.WARNING if hostile else logging.INFO,
                "refused body" if hostile else "unreadable body",
                extra=logs.fields(reason=str(exc), client=request.peer_host),
            )
        if hostile:
            return HttpReply.text(400, f"refused: {exc}")
        return HttpReply.text(400, f"not a CWMP envelope: {exc}")

    # --- sources that keep failing -------------------------------------------------------

    def _failed(self, request: HttpRequest) -> bool:
        """Count a failed request of its source; ``True`` for the first of the window, the
        one worth a log line (a client that keeps failing is logged once, not per request)."""
        source = source_key(request.peer_host)
        failures = self.failures.failed(source)
        if failures == self.failures.limit:
            log.warning(
                "failing source",
                extra=logs.fields(
                    client=source,
                    failures=failures,
                    reason=f"{failures} failed requests within {FAILURE_WINDOW:g} s: its large "
                    "bodies are parsed only after they show credentials or an open session, "
                    "and its failures are not logged, for the rest of that time",
                ),
            )
        return failures == 1

    def _suspect(self, request: HttpRequest) -> bool:
        return self.failures.retry_after(source_key(request.peer_host)) > 0

    async def _require_credentials(
        self, request: HttpRequest, authorization: str, device_id: str, now: float
    ) -> None:
        """``_Abort`` with 401 unless the request's credentials are the device's: checked
        in a read of its own, before a suspect source's body is parsed whole."""
        async with self.db.read() as conn:
            known = await queries.device_auth(hot.over(conn), device_id)
        outcome = self.auth.check(
            authorization,
            method=request.method,
            path=request.path,
            tls=request.tls,
            credentials=device_credentials(
                known.cwmp_username, known.cwmp_ha1_md5, known.cwmp_ha1_sha256
            ),
            binding=device_id,
            now=now,
            pending=pending_pair(known),
        )
        if not outcome.ok:
            raise _Abort(self._unauthorized(outcome, request, device_id))

    async def _require_session(self, request: HttpRequest, preview: soap.Preview) -> None:
        """``_Abort`` with 400 unless the request belongs to an open session: looked up in
        a read of its own, before a suspect source's body is parsed whole."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        async with self.db.read() as conn:
            row = await self._find(hot.over(conn), request, preview.envelope.cwmp_id, now)
        if row is None:
            raise _Abort(self._no_session(request))

    def _no_session(self, request: HttpRequest) -> HttpReply:
        if self._failed(request):
            log.info(
                "request of no session",
                extra=logs.fields(
                    reason="no open CWMP session (a session starts with an Inform)",
                    client=request.peer_host,
                ),
            )
        return HttpReply.text(400, "no open CWMP session: a session starts with an Inform")

    @asynccontextmanager
    async def _request_transaction(self) -> AsyncIterator[hot.Transaction]:
        """A request's transaction. How long it took, waits for a connection or the write lock
        included, tells admission how loaded this worker is."""
        started = time.monotonic()
        try:
            with logs.deferred():  # lines about what it did, once it committed
                async with self.db.hot_write() as tx:
                    yield tx
        finally:
            self.admission.served(time.monotonic() - started)

    # --- Inform: a new session ----------------------------------------------------------

    async def _inform(
        self, request: HttpRequest, preview: soap.Preview, envelope: soap.Envelope | None
    ) -> HttpReply:
        now_ts = self.clock()
        now = datetime.fromtimestamp(now_ts, UTC)
        device = preview.device_id
        if device is None:  # nothing to challenge: 8003, no session
            unread = None if envelope is None else envelope.message
            reason = (
                unread.reason
                if isinstance(unread, soap.InvalidMessage)
                else "missing or unreadable DeviceId in Inform"
            )
            unreadable = preview.answerable(soap.InvalidMessage("Inform", reason))
            return self._invalid_inform(unreadable, reason, request)
        device_id = device.device_id
        if not device.oui or not device.serial_number:
            reason = "DeviceId needs OUI and SerialNumber"
            unreadable = preview.answerable(soap.InvalidMessage("Inform", reason))
            return self._invalid_inform(unreadable, reason, request, device_id)

        authorization = request.headers.get("authorization")
        if authorization is None and self.auth.mode != "none":
            # nothing to check yet: challenge from the DeviceId alone, the rest of the body
            # unread and the database untouched
            challenge = self.auth.challenge(now_ts, device_id)
            return self._unauthorized(
                AuthOutcome(False, "no credentials", challenge, expected=True), request, device_id
            )
        if envelope is None:
            if authorization is not None and self._suspect(request):
                await self._require_credentials(request, authorization, device_id, now_ts)
            envelope = await self._parse(request)
        if not isinstance(envelope.message, m.Inform):  # unreadable Inform: 8003, no session
            unread = envelope.message
            reason = unread.reason if isinstance(unread, soap.InvalidMessage) else "not an Inform"
            unreadable = replace(envelope, message=soap.InvalidMessage("Inform", reason))
            return self._invalid_inform(unreadable, reason, request, device_id)
        inform: m.Inform = envelope.message
        device_id = inform.device_id.device_id
        if not self.admission.admit(device_id):
            # A boot storm: turn new sessions away (sessions already open go on being served).
            # DEBUG: a storm refuses thousands a second, and the CPEs come back.
            _refused(
                logging.DEBUG,
                device_id,
                inform,
                request,
                "busy: too many open sessions",
                "admission",
            )
            return HttpReply.busy("busy, retry later", self.admission.retry_after())
        session_id = queries.new_session_id()
        machine = cs.CwmpSession(id_prefix=binding.id_prefix(session_id))
        [event] = machine.receive(envelope)
        assert isinstance(event, cs.InformReceived)
        timeout = binding.session_timeout(
            self.settings.cwmp_session_timeout, envelope.session_timeout
        )
        try:
            # One transaction: authenticate, then record. A refusal rolls back: nothing written.
            async with self._request_transaction() as tx:
                known = await queries.device_auth(tx, device_id)
                own = device_credentials(
                    known.cwmp_username, known.cwmp_ha1_md5, known.cwmp_ha1_sha256
                )
                pending = pending_pair(known)
                outcome = await self.auth.authenticate(
                    tx,
                    authorization,
                    method=request.method,
                    path=request.path,
                    tls=request.tls,
                    credentials=own,
                    binding=device_id,
                    now=now_ts,
                    pending=pending,
                )
                if not outcome.ok:
                    raise _Abort(self._unauthorized(outcome, request, device_id, inform=inform))
                if pending is not None and outcome.username == pending.username:
                    own = pending  # the session's later requests: the pair it used
                logs.session_id.set(logs.short_session_id(session_id))
                orphan = None
                replace_id = self._replaceable(known, request, now, device_id, inform)
                if replace_id is not None:
                    left = await self._close(
                        tx, replace_id, device_id, "replaced by a new Inform", now
                    )
                    orphan = _unanswered(left)
                    if left is not None:
                        _session_ended(
                            replace_id,
                            device_id,
                            left,
                            "replaced",
                            now_ts,
                            client=known.session_peer_host,
                        )
                facts = SessionFacts.of(inform, known.mode or self.settings.mode)
                ctx = SessionContext(
                    session_id,
                    device_id,
                    now,
                    self._base_url(request),
                    facts,
                    authenticated_as=outcome.username,
                )
                values = inform_values.device_values(
                    inform,
                    peer_host=request.peer_host,
                    now=now,
                    cwmp_version=event.cwmp_version,
                    known_interval=known.periodic_inform_interval,
                    silent_grace=self.settings.silent_grace,
                )
                happened = monitoring.inform_events(
                    device_id,
                    known=known.exists,
                    before=known.status,
                    event_codes=inform.event_codes,
                    old_version=known.software_version,
                    new_version=values["software_version"],
                )
                if self.watched and known.exists:
                    changed = await monitoring.watched_changes(
                        tx, device_id, inform.parameter_list, self.watched
                    )
                    happened.extend(changed)
                await queries.upsert_device_on_inform(
                    tx,
                    values,
                    inform_values.parameter_patch(inform.parameter_list, now),
                    digest=inform_values.parameter_digest(inform.parameter_list),
                    bootstrap="0 BOOTSTRAP" in inform.event_codes,
                    known=known,
                )
                await events.record(tx, now, happened)
                await queries.insert_inform(
                    tx,
                    device_id=device_id,
                    received=now,
                    events=[[e.event_code, e.command_key] for e in inform.event],
                    retry_count=inform.retry_count,
                    peer_host=request.peer_host,
                )
                flows = await self.policy.on_inform(tx, ctx, inform, known)
                body = machine.send_inform_response()
                stored = StoredSession(
                    machine.to_json(),
                    timeout,
                    facts,
                    own,
                    flows,
                    orphan,
                    started=round(now_ts * 1000),
                )
                claimed = await queries.insert_session(
                    tx,
                    session_id=session_id,
                    device_id=device_id,
                    state=stored.to_json(),
                    peer_host=request.peer_host,
                    peer_port=request.peer_port,
                    now=now,
                    expires=now + timedelta(seconds=timeout),
                )
                if not claimed:
                    _refused(logging.INFO, device_id, inform, request, "busy: in a session", "busy")
                    raise _Abort(HttpReply.busy("device already in a session", 5))
        except _Abort as abort:
            return abort.reply
        self.after_commit()
        self.admission.opened(session_id)
        for code in inform.event_codes:
            metrics.INFORMS.labels(metrics.event_label(code)).inc()
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "session opened",
                extra=logs.fields(
                    device=device_id, events=inform.event_codes, client=request.peer_host
                ),
            )
        return HttpReply.xml(body, session_id, tls=request.tls)

    def _invalid_inform(
        self,
        envelope: soap.Envelope,
        reason: str,
        request: HttpRequest,
        device_id: str | None = None,
    ) -> HttpReply:
        """Fault 8003 to an Inform the ACS cannot act on (``envelope`` holds it as an
        ``InvalidMessage``); no session is opened."""
        logged = self._failed(request)
        why = f"fault 8003: Inform: {reason}"
        _refused(logging.INFO, device_id, None, request, why, "invalid", logged=logged)
        machine = cs.CwmpSession()
        machine.receive(envelope)
        return HttpReply.xml(machine.send_fault(faults.ACS_INVALID_ARGUMENTS, f"Inform: {reason}"))

    def _replaceable(
        self,
        known: queries.DeviceAuth,
        request: HttpRequest,
        now: datetime,
        device_id: str,
        inform: m.Inform,
    ) -> str | None:
        """The device's open session this Inform replaces; 503 if it must wait instead."""
        if known.session_id is None or known.session_expires is None:
            return None
        if known.session_expires <= now:
            return known.session_id  # abandoned: take it over
        if known.session_id in request.cookies or known.session_peer_host == request.peer_host:
            return known.session_id  # the same CPE starting over
        wait = math.ceil((known.session_expires - now).total_seconds())
        reason = f"busy: its session from {known.session_peer_host} is open"
        _refused(logging.INFO, device_id, inform, request, reason, "busy")
        raise _Abort(HttpReply.busy("device already in a session", wait))

    def _base_url(self, request: HttpRequest) -> str:
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        host = request.headers.get("host") or "localhost"
        return f"{'https' if request.tls else 'http'}://{host}"

    # --- every other POST of a session -------------------------------------------------

    async def _find(
        self, tx: hot.Transaction, request: HttpRequest, cwmp_id: str | None, now: datetime
    ) -> Any:
        """The open session a request belongs to (``acs.cwmp.http``: cookie, connection,
        address), or ``None``."""
        for lookup in binding.lookups(request):
            if isinstance(lookup, binding.ByCookie):
                rows = await tx.fetch(queries.SESSION_BY_COOKIE, id=lookup.session_id, now=now)
            elif isinstance(lookup, binding.ByConnection):
                rows = await tx.fetch(
                    queries.SESSION_BY_CONNECTION, host=lookup.host, port=lookup.port, now=now
                )
            else:
                rows = await tx.fetch(queries.SESSIONS_BY_ADDRESS, host=lookup.host, now=now)
            if rows:
                return binding.pick(rows, request, cwmp_id)
        return None

    async def _in_session(self, request: HttpRequest, envelope: soap.Envelope) -> HttpReply:
        now_ts = self.clock()
        now = datetime.fromtimestamp(now_ts, UTC)
        async with self._request_transaction() as tx:
            row = await self._find(tx, request, envelope.cwmp_id, now)
            if row is None:
                return self._no_session(request)
            logs.session_id.set(logs.short_session_id(row.id))
            try:
                stored = StoredSession.from_json(row.state)
            except (KeyError, TypeError, ValueError) as exc:  # written by an older acs
                reason = f"unreadable state: {exc!r}"
                left = await self._close(tx, row.id, row.device_id, reason, now)
                if left is not None:
                    _session_ended(
                        row.id,
                        row.device_id,
                        left,
                        "closed",
                        now_ts,
                        reason=reason,
                        client=request.peer_host,
                    )
                return HttpReply.text(400, "CWMP session state unreadable; session closed")
            authorization = request.headers.get("authorization")
            if authorization is not None:
                outcome, stored = await self._reauthenticate(
                    tx, request, authorization, stored, row.device_id, now_ts
                )
                if not outcome.ok:
                    return self._unauthorized(outcome, request, row.device_id, in_session=True)
            machine = cs.CwmpSession.from_json(stored.machine)
            ctx = SessionContext(
                row.id,
                row.device_id,
                now,
                self._base_url(request),
                stored.facts,
                has_queued_tasks=bool(row.has_tasks),
            )
            try:
                events = machine.receive(envelope)
            except cs.ProtocolError as exc:
                reason = f"protocol error: {exc}"
                if await self._close(tx, row.id, row.device_id, reason, now) is not None:
                    _session_ended(
                        row.id,
                        row.device_id,
                        stored,
                        "protocol error",
                        now_ts,
                        reason=str(exc),
                        client=request.peer_host,
                    )
                return HttpReply.text(400, f"CWMP protocol error: {exc}; session closed")
            body, stored = await self._advance(tx, ctx, machine, events, stored)
            if machine.finished:
                await queries.end_session(tx, row.id)
                _session_ended(
                    row.id, row.device_id, stored, "204", now_ts, client=request.peer_host
                )
            else:
                stored = replace(stored, machine=machine.to_json())
                await queries.save_session(
                    tx,
                    row.id,
                    state=stored.to_json(),
                    peer_host=request.peer_host,
                    peer_port=request.peer_port,
                    now=now,
                    expires=now + timedelta(seconds=stored.timeout),
                )
        self.after_commit()
        if machine.finished:
            self.admission.closed(row.id)
            return HttpReply(204)
        assert body is not None
        return HttpReply.xml(body, row.id, tls=request.tls)

    async def _advance(
        self,
        tx: hot.Transaction,
        ctx: SessionContext,
        machine: cs.CwmpSession,
        events: list[cs.Event],
        stored: StoredSession,
    ) -> tuple[bytes | None, StoredSession]:
        policy = self.policy
        flows = stored.flows
        end = False
        for event in events:
            if isinstance(event, cs.CpeRequestReceived):
                body, flows = await self._answer_cpe(tx, ctx, machine, event, flows)
                return body, replace(stored, flows=flows)
            if isinstance(event, cs.StrayAnswer):
                if not await policy.on_stray_answer(tx, ctx, stored.orphan, event):
                    log.info(
                        "dropped an answer to no request",
                        extra=logs.fields(device=ctx.device_id, cwmp_id=event.cwmp_id),
                    )
                stored = replace(stored, orphan=None)
            elif isinstance(event, cs.ResponseReceived | cs.FaultReceived | cs.RequestUnanswered):
                logs.on_commit(partial(_count_answer, event))
                flows, ended = await policy.on_answer(tx, ctx, event, flows)
                end = end or ended
        # The ACS's turn: send the next request, or end the session.
        assert machine.state is cs.State.ACS_REQUESTS
        if not end:
            offer = await policy.next_request(tx, ctx, flows)
            if offer is not None:
                request, ref, flows = offer
                rpcs = (*stored.rpcs, type(request).__name__)
                body = machine.send_request(request, ref=ref.encode())
                return body, replace(stored, flows=flows, rpcs=rpcs)
        machine.end()
        return None, replace(stored, flows=flows)

    async def _answer_cpe(
        self,
        tx: hot.Transaction,
        ctx: SessionContext,
        machine: cs.CwmpSession,
        event: cs.CpeRequestReceived,
        flows: dict[str, Any],
    ) -> tuple[bytes, dict[str, Any]]:
        request = event.request
        if event.held:
            return machine.send_fault(faults.ACS_REQUEST_DENIED, "HoldRequests is set"), flows
        if isinstance(request, soap.InvalidMessage):
            reason = f"{request.name}: {request.reason}"
            return machine.send_fault(faults.ACS_INVALID_ARGUMENTS, reason), flows
        if isinstance(request, soap.UnknownMethod):
            reason = f"{request.name} is unknown"
            return machine.send_fault(faults.ACS_METHOD_NOT_SUPPORTED, reason), flows
        answer, flows = await self.policy.on_cpe_request(tx, ctx, request, flows)
        if isinstance(answer, m.Fault):
            return machine.send_fault(answer.fault_code, answer.fault_string), flows
        return machine.send_response(answer), flows

    async def _close(
        self, tx: hot.Transaction, session_id: str, device_id: str, reason: str, now: datetime
    ) -> dict[str, Any] | None:
        """End a session other than by a 204; its last state, or ``None`` if it was gone."""
        state = await queries.delete_session(tx, session_id)
        if state is None:
            return None
        self.admission.closed(session_id)
        await self.policy.on_session_closed(tx, device_id, reason, now)
        return state

    async def expire_sessions(self) -> int:
        """Close sessions that saw no request within their timeout (the sweeper calls this)."""
        now_ts = self.clock()
        now = datetime.fromtimestamp(now_ts, UTC)
        closed = 0
        with logs.deferred():
            async with self.db.hot_write() as tx:
                for row in await queries.expired_sessions(tx, now):
                    left = await self._close(tx, row.id, row.device_id, "session timed out", now)
                    if left is not None:
                        _session_ended(row.id, row.device_id, left, "expired", now_ts)
                        closed += 1
                await queries.prune_nonces(tx, now)
        return closed

    # --- replies -----------------------------------------------------------------------

    async def _reauthenticate(
        self,
        tx: hot.Transaction,
        request: HttpRequest,
        authorization: str,
        stored: StoredSession,
        device_id: str,
        now: float,
    ) -> tuple[AuthOutcome, StoredSession]:
        """The session was authenticated at its Inform; a request that shows credentials
        again must show the session's pair (checked without a lookup), or the pair the ACS
        gave the device in this session: a CPE may take it at once, right after the
        SetParameterValues. The session's later requests are then checked against that."""

        async def check(pending: DeviceCredentials | None) -> AuthOutcome:
            return await self.auth.authenticate(
                tx,
                authorization,
                method=request.method,
                path=request.path,
                tls=request.tls,
                credentials=stored.auth,
                binding=device_id,
                now=now,
                pending=pending,
            )

        outcome = await check(None)
        if outcome.ok:
            return outcome, stored
        pending = pending_pair(await queries.device_pairs(tx, device_id))
        if pending is None:
            return outcome, stored
        retried = await check(pending)
        if retried.ok and retried.username == pending.username:
            return retried, replace(stored, auth=pending)
        return outcome, stored

    def _unauthorized(
        self,
        outcome: AuthOutcome,
        request: HttpRequest,
        device_id: str,
        *,
        inform: m.Inform | None = None,
        in_session: bool = False,
    ) -> HttpReply:
        """401 with a challenge. The one a CPE gets before it sends credentials (or after its
        nonce went stale) is the protocol's first step: DEBUG; wrong credentials: INFO, the
        first of a window for their source (``_failed``), counted in ``metrics`` each time."""
        level = logging.DEBUG if outcome.expected else logging.INFO
        logged = outcome.expected or self._failed(request)
        if in_session:  # a request inside a session showed other credentials
            if logged and log.isEnabledFor(level):
                log.log(
                    level,
                    "authentication refused",
                    extra=logs.fields(
                        device=device_id, reason=outcome.reason, client=request.peer_host
                    ),
                )
        elif outcome.expected:
            reason = f"challenge: {outcome.reason}"
            _refused(level, device_id, inform, request, reason, None)
        else:
            reason = f"authentication: {outcome.reason}"
            _refused(level, device_id, inform, request, reason, "authentication", logged=logged)
        return HttpReply.unauthorized(outcome.challenge)


def _count_answer(answer: cs.ResponseReceived | cs.FaultReceived | cs.RequestUnanswered) -> None:
    if isinstance(answer, cs.ResponseReceived):
        outcome = "response"
    elif isinstance(answer, cs.FaultReceived):
        outcome = "fault"
    else:
        outcome = "unanswered"
    metrics.RPCS.labels(metrics.rpc_label(answer.request.method), outcome).inc()


class _Abort(Exception):
    """Roll the transaction back and answer this instead."""

    def __init__(self, reply: HttpReply):
        self.reply = reply
