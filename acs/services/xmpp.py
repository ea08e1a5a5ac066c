"""The ACS's XMPP session (TR-069 Annex K): connection requests as an IQ to a device's
ConnReqJabberID, and the XMPP accounts the ACS makes for devices (XEP-0133).

Theory of operation
-------------------
One session for the whole cluster. Every worker of every node runs ``XmppService.run``;
the worker holding the lease ``xmpp`` (``acs.services.leases``: renewed every
``RENEW_EVERY``, lost ``LEASE_TTL`` after the last renewal) signs in to the XMPP server,
the others stand by and take over when the lease runs out (the holder died, or lost the
database). Its JID's resource is fixed (``acs``), so the server itself keeps only the
newest of two sessions should an old holder not have noticed yet.

Work only the holder can do goes through the database (``xmpp_requests``): a connection
request asked of another worker (the API, a rollout) is written there and polled for its
result until the asker's timeout; bootstrap provisioning writes the accounts to make
there. The holder polls the table (every ``POLL_EVERY``), takes rows, answers them. Polling
rather than PostgreSQL's LISTEN/NOTIFY: it is the same on SQLite, costs one indexed query
per ``POLL_EVERY`` for the whole cluster (plus the asker's while it waits) and adds at most
``POLL_EVERY`` to a connection request's latency; a LISTEN needs a connection of its own
outside the pool in every worker.

The session: TLS always (STARTTLS, the certificate checked for the JID's domain against
``ACS_XMPP_CA_FILE`` or the system's CAs; slixmpp refuses to authenticate without it), a
ping every ``PING_EVERY`` (a server gone silent is noticed within ``PING_TIMEOUT``). A lost
session is logged, counted and made again after 1, 2, 4 ... ``BACKOFF_MAX`` seconds; its
state goes with every renewal into the lease's detail, which ``/healthz`` shows on every
worker. Nothing in a CWMP session waits for any of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import ssl
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import delete, insert, select, update

from acs import logs
from acs.config import Settings
from acs.cwmp import xmpp as annex_k
from acs.cwmp import xsd
from acs.db import hot, tables
from acs.db.engine import Database
from acs.db.errors import UNAVAILABLE
from acs.services import leases, metrics
from acs.services.connreq import PokeResult
from acs.services.secretbox import SecretBox

if TYPE_CHECKING:
    from slixmpp import ClientXMPP

log = logging.getLogger("acs.xmpp")

LEASE: Final = "xmpp"
LEASE_TTL: Final = 30.0
RENEW_EVERY: Final = 10.0
POLL_EVERY: Final = 0.2
CONNECT_TIMEOUT: Final = 20.0
PING_EVERY: Final = 60.0
PING_TIMEOUT: Final = 20.0
BACKOFF_MAX: Final = 60.0
RESOURCE: Final = "acs"
KEEP_FINISHED: Final = timedelta(hours=1)  # answered requests kept this long, then pruned
_COMMANDS: Final = "http://jabber.org/protocol/commands"
_DATA: Final = "jabber:x:data"
_ADMIN: Final = "http://jabber.org/protocol/admin"
_PING: Final = "urn:xmpp:ping"
CONNECTION_REQUEST, ACCOUNT = "connection_request", "account"


def backoff(failures: int) -> float:
    """Seconds before the next attempt after ``failures`` in a row: 1, 2, 4 ... 60."""
    return min(BACKOFF_MAX, 2.0 ** max(0, failures - 1))


_NO_ANSWER: Final = "no answer"


def _describe(reason: Any) -> str:
    """A disconnection's reason as one line."""
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"the server's certificate is not trusted: {reason.verify_message}"
    if isinstance(reason, BaseException):
        return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
    return str(reason or "connection closed")


def _split(host_port: str) -> tuple[str, int]:
    host, _, port = host_port.rpartition(":")
    return host.strip("[]"), int(port)


class _SessionError(Exception):
    """Why the session could not be made, or why it went (one line)."""


class Link:
    """One signed-in XMPP connection (slixmpp's client), made once: a lost link is replaced,
    not reconnected, so that every attempt goes through the same backoff."""

    def __init__(self, settings: Settings):
        # imported here: slixmpp costs 0.4 s to import, and most acs processes never sign in
        from slixmpp import ClientXMPP

        assert settings.xmpp_jid and settings.xmpp_password
        self.settings = settings
        self.client: ClientXMPP = ClientXMPP(
            f"{settings.xmpp_jid}/{RESOURCE}", settings.xmpp_password
        )
        self.client.enable_direct_tls = False  # STARTTLS on the client port (5222)
        self.client.enable_plaintext = False
        if settings.xmpp_ca_file is not None:
            self.client.ca_certs = Path(settings.xmpp_ca_file)
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._why = _NO_ANSWER
        if not log.isEnabledFor(logging.DEBUG):
            # what goes wrong is said once, by our own lines (slixmpp logs a TLS failure as
            # an ERROR of its own, and retries as INFO)
            logging.getLogger("slixmpp").setLevel(logging.CRITICAL)

    def _fail(self, why: str) -> None:
        self._why = why
        if not self.lost.done():
            self.lost.set_result(why)

    async def open(self) -> None:
        """Connect, start TLS, sign in; ``_SessionError`` saying why not."""
        client = self.client
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def session_start(_: Any) -> None:
            if not started.done():
                started.set_result(None)

        def connection_failed(error: Any) -> None:
            self._why = f"cannot connect: {error}"

        def invalid_chain(error: Any) -> None:
            self._why = _describe(error)
            client.abort()

        def refused(_: Any) -> None:
            if not started.done():
                started.set_exception(
                    _SessionError("the server refused the ACS's JID and password (SASL)")
                )

        def disconnected(reason: Any) -> None:
            if not started.done():
                # a TLS handshake that failed closes the connection before slixmpp reports
                # why (ssl_invalid_chain): the reason is the SSL error itself
                why = self._why if self._why != _NO_ANSWER else _describe(reason)
                started.set_exception(_SessionError(why))
            self._fail(f"disconnected: {_describe(reason)}")

        client.add_event_handler("session_start", session_start)
        client.add_event_handler("connection_failed", connection_failed)
        client.add_event_handler("ssl_invalid_chain", invalid_chain)
        client.add_event_handler("failed_all_auth", refused)
        client.add_event_handler("disconnected", disconnected)
        if self.settings.xmpp_server:
            host, port = _split(self.settings.xmpp_server)
            client.connect(host, port)
        else:
            client.connect()
        try:
            await asyncio.wait_for(started, CONNECT_TIMEOUT)
        except TimeoutError:
            self.close()
            raise _SessionError(f"no session within {CONNECT_TIMEOUT:g} s ({self._why})") from None
        except _SessionError:
            self.close()
            raise
        if "starttls" not in client.features:  # slixmpp would not sign in without; be sure
            self.close()
            raise _SessionError("the server did not offer TLS")

    def close(self) -> None:
        self.client.cancel_connection_attempt()
        self.client.abort()
        # slixmpp's outgoing-stanza task waits on its queue for ever, even once the stream
        # is gone; a link is never used again, so it goes with it (else one task and one
        # client would be kept per session lost)
        sender = getattr(self.client, "_run_out_filters", None)
        if sender is not None:
            sender.cancel()
        self._fail("closed")

    async def keep_alive(self) -> str:
        """Ping the server every ``PING_EVERY`` until the link goes; why it went."""
        from slixmpp.exceptions import IqError, IqTimeout

        while not self.lost.done():
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(self.lost), PING_EVERY)
            iq = self.client.make_iq_get(queryxmlns=_PING, ito=self.client.boundjid.domain)
            try:
                await iq.send(timeout=PING_TIMEOUT)
            except IqTimeout:
                self.client.abort()
                self._fail(f"the server did not answer a ping within {PING_TIMEOUT:g} s")
            except IqError:
                pass  # an error is an answer: the server is there
        return self.lost.result()

    async def connection_request(
        self, jid: str, request: annex_k.ConnectionRequest, seconds: float
    ) -> tuple[bool, str | None]:
        """Send the IQ; (ok, the error condition and text if not)."""
        from slixmpp.exceptions import IqError, IqTimeout

        iq = self.client.make_iq_get(ito=jid)
        iq.xml.append(annex_k.build(request))
        try:
            await iq.send(timeout=seconds)
        except IqTimeout:
            return False, "timeout: no answer to the connection request"
        except IqError as exc:
            text = f": {exc.text}" if exc.text else ""
            return False, f"{exc.condition}{text}"
        return True, None

    async def add_user(self, jid: str, password: str, seconds: float) -> str:
        """Make an account (XEP-0133 add-user; an existing one gets the password through
        change-user-password). Returns the server's note; ``_SessionError`` if refused."""
        note = await self._admin("add-user", jid, password, seconds)
        if "exist" in note.lower():
            note = await self._admin("change-user-password", jid, password, seconds)
        return note

    async def _admin(self, command: str, jid: str, password: str, seconds: float) -> str:
        from slixmpp.exceptions import IqError, IqTimeout

        node = f"{_ADMIN}#{command}"
        domain = jid.rpartition("@")[2]
        try:
            iq = self.client.make_iq_set(ito=domain)
            iq.xml.append(ET.Element(f"{{{_COMMANDS}}}command", node=node, action="execute"))
            first = await iq.send(timeout=seconds)
            started = first.xml.find(f"{{{_COMMANDS}}}command")
            session = started.get("sessionid") if started is not None else None
            if not session:
                raise _SessionError(f"the server did not start {command}")
            iq = self.client.make_iq_set(ito=domain)
            element = ET.Element(
                f"{{{_COMMANDS}}}command", node=node, action="complete", sessionid=session
            )
            form = ET.SubElement(element, f"{{{_DATA}}}x", type="submit")
            values = {"FORM_TYPE": _ADMIN, "accountjid": jid, "password": password}
            if command == "add-user":
                values["password-verify"] = password
            for var, value in values.items():
                field = ET.SubElement(form, f"{{{_DATA}}}field", var=var)
                ET.SubElement(field, f"{{{_DATA}}}value").text = value
            iq.xml.append(element)
            done = await iq.send(timeout=seconds)
        except IqTimeout:
            raise _SessionError(f"{command}: no answer") from None
        except IqError as exc:
            raise _SessionError(f"{command}: {exc.condition} {exc.text or ''}".strip()) from None
        finished = done.xml.find(f"{{{_COMMANDS}}}command")
        note = finished.find(f"{{{_COMMANDS}}}note") if finished is not None else None
        text = (note.text or "") if note is not None else ""
        if note is not None and note.get("type") == "error" and "exist" not in text.lower():
            raise _SessionError(f"{command}: {text}")
        return text


_TAKE = hot.Statement(
    "UPDATE xmpp_requests SET taken_by = :holder WHERE id = :id AND taken_by IS NULL"
)


class XmppService:
    """The XMPP side of one worker (see the module docstring)."""

    def __init__(self, db: Database, box: SecretBox, settings: Settings):
        self.db = db
        self.box = box
        self.settings = settings
        self.holder = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"
        self.link: Link | None = None
        self.state = "standby"  # standby, connecting, connected, disconnected
        self.since = datetime.now(UTC)
        self.error: str | None = None
        self._storage_warned = 0.0
        self._work: set[asyncio.Task[None]] = set()

    # --- the lease and the session -------------------------------------------------------

    def _set_state(self, state: str, error: str | None = None) -> None:
        if state != self.state:
            self.since = datetime.now(UTC)
        self.state, self.error = state, error

    def _detail(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "since": xsd.format_datetime(self.since),
            "error": self.error,
            "jid": self.settings.xmpp_jid,
        }

    async def run(self) -> None:
        """Stand by, or hold the session while this worker has the lease; until cancelled."""
        while True:
            try:
                held = await leases.take(
                    self.db, LEASE, self.holder, datetime.now(UTC), LEASE_TTL, self._detail()
                )
            except UNAVAILABLE as exc:
                self._storage_warning(exc)
                held = False
            if held:
                log.info("xmpp session: this worker holds it", extra=_f(holder=self.holder))
                await self._hold()
            # another holds it (or the database is out of reach): look again later, not in
            # step with the other workers
            await asyncio.sleep(RENEW_EVERY * random.uniform(0.5, 1.0))

    async def _hold(self) -> None:
        """Keep the session and the lease until the lease is lost."""
        valid_until = time.monotonic() + LEASE_TTL
        session = asyncio.create_task(self._session(), name="acs-xmpp-session")
        work = asyncio.create_task(self._serve(), name="acs-xmpp-work")
        try:
            while True:
                await asyncio.sleep(RENEW_EVERY)
                for task in (session, work):
                    if task.done():  # a bug, not a lost server: let a worker start over
                        log.error("xmpp: %s stopped", task.get_name(), exc_info=task.exception())
                        return
                try:
                    renewed = await leases.take(
                        self.db, LEASE, self.holder, datetime.now(UTC), LEASE_TTL, self._detail()
                    )
                except UNAVAILABLE as exc:
                    self._storage_warning(exc)
                    if time.monotonic() < valid_until:
                        continue
                    renewed = False
                if not renewed:
                    log.warning(
                        "xmpp session: the lease was lost, another worker takes over",
                        extra=_f(holder=self.holder),
                    )
                    return
                valid_until = time.monotonic() + LEASE_TTL
        finally:
            for task in (session, work, *self._work):
                task.cancel()
            await asyncio.gather(session, work, *self._work, return_exceptions=True)
            if self.link is not None:
                self.link.close()
                self.link = None
            self._set_state("standby")
            # a worker stopping hands the session over now, not after LEASE_TTL
            with contextlib.suppress(*UNAVAILABLE):
                await leases.release(self.db, LEASE, self.holder, datetime.now(UTC))

    async def _session(self) -> None:
        failures = 0
        while True:
            self._set_state("connecting", self.error)
            link = Link(self.settings)
            try:
                await link.open()
            except _SessionError as exc:
                failures += 1
                wait = backoff(failures)
                self._set_state("disconnected", str(exc))
                metrics.XMPP_SESSIONS.labels("failed").inc()
                log.warning(
                    "xmpp session failed",
                    extra=_f(jid=self.settings.xmpp_jid, error=str(exc), retry_in_s=wait),
                )
                await asyncio.sleep(wait)
                continue
            failures = 0
            self.link = link
            self._set_state("connected")
            metrics.XMPP_SESSIONS.labels("connected").inc()
            log.info(
                "xmpp session",
                extra=_f(jid=str(link.client.boundjid), server=self.settings.xmpp_server),
            )
            await self._publish()
            why = await link.keep_alive()
            self.link = None
            link.close()
            wait = backoff(1)
            self._set_state("disconnected", why)
            metrics.XMPP_SESSIONS.labels("lost").inc()
            log.warning(
                "xmpp session lost",
                extra=_f(jid=self.settings.xmpp_jid, error=why, retry_in_s=wait),
            )
            await self._publish()
            await asyncio.sleep(wait)

    async def _publish(self) -> None:
        """Say the session's state in the lease now, not at the next renewal."""
        with contextlib.suppress(*UNAVAILABLE):
            await leases.take(
                self.db, LEASE, self.holder, datetime.now(UTC), LEASE_TTL, self._detail()
            )

    def _storage_warning(self, exc: BaseException) -> None:
        if time.monotonic() - self._storage_warned > 60:
            self._storage_warned = time.monotonic()
            log.warning("xmpp: storage unavailable: %s", exc)

    # --- work for the holder -------------------------------------------------------------

    async def _serve(self) -> None:
        pruned = 0.0
        while True:
            await asyncio.sleep(POLL_EVERY)
            if self.link is None:
                continue
            try:
                for row in await self._take():
                    task = asyncio.create_task(self._answer(row))
                    self._work.add(task)
                    task.add_done_callback(self._work.discard)
                if time.monotonic() - pruned > 60:
                    pruned = time.monotonic()
                    await self._prune(datetime.now(UTC))
            except UNAVAILABLE as exc:
                self._storage_warning(exc)

    async def _take(self) -> list[Any]:
        r = tables.xmpp_requests
        now = datetime.now(UTC)
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(r.c.id, r.c.kind, r.c.device_id, r.c.jid, r.c.username)
                    .add_columns(r.c.password_enc, r.c.expires)
                    .where(r.c.taken_by.is_(None), r.c.finished.is_(None))
                    .order_by(r.c.id)
                    .limit(64)
                )
            ).all()
        if not rows:
            return []
        taken = []
        async with self.db.hot_write() as tx:
            for row in rows:
                if await tx.execute(_TAKE, holder=self.holder, id=row.id):
                    taken.append(row)
        expired = [row for row in taken if row.expires <= now]
        for row in expired:
            await self._finish(row.id, {"ok": False, "error": "expired before it was sent"})
        return [row for row in taken if row.expires > now]

    async def _finish(self, request_id: int, result: dict[str, Any]) -> None:
        r = tables.xmpp_requests
        async with self.db.write() as conn:
            await conn.execute(
                update(r)
                .where(r.c.id == request_id)
                .values(result=result, finished=datetime.now(UTC))
            )

    async def _answer(self, row: Any) -> None:
        link = self.link
        try:
            password = self.box.open(row.password_enc)
        except ValueError as exc:
            await self._finish(row.id, {"ok": False, "error": str(exc)})
            return
        if link is None:
            await self._finish(row.id, {"ok": False, "error": "the XMPP session went"})
            return
        if row.kind == CONNECTION_REQUEST:
            left = (row.expires - datetime.now(UTC)).total_seconds()
            started = time.monotonic()
            ok, error = await link.connection_request(
                row.jid,
                annex_k.ConnectionRequest(row.username or "", password),
                max(0.5, left),
            )
            latency = round((time.monotonic() - started) * 1000, 1)
            await self._finish(row.id, {"ok": ok, "error": error, "latency_ms": latency})
            log.debug(
                "xmpp connection request sent for another worker",
                extra=_f(device=row.device_id, jid=row.jid, ok=ok, error=error),
            )
            return
        await self._make_account(link, row, password)

    async def _make_account(self, link: Link, row: Any, password: str) -> None:
        n = tables.nat_traversal
        error: str | None = None
        try:
            note = await link.add_user(row.jid, password, self.settings.connection_request_timeout)
        except _SessionError as exc:
            outcome, error = "failed", str(exc)
            log.warning("xmpp account", extra=_f(device=row.device_id, jid=row.jid, error=error))
        else:
            outcome = "created"
            log.info("xmpp account", extra=_f(device=row.device_id, jid=row.jid, note=note))
        async with self.db.write() as conn:
            await conn.execute(
                update(n)
                .where(n.c.device_id == row.device_id, n.c.xmpp_jid == row.jid)
                .values(xmpp_account=outcome)
            )
        await self._finish(row.id, {"ok": error is None, "error": error})

    async def _prune(self, now: datetime) -> None:
        r = tables.xmpp_requests
        async with self.db.write() as conn:
            await conn.execute(delete(r).where(r.c.expires < now - KEEP_FINISHED))

    # --- what other services ask ---------------------------------------------------------

    async def connection_request(
        self, device_id: str, jid: str, username: str, password: str, seconds: float
    ) -> PokeResult:
        """Send the connection request IQ: over this worker's session if it holds it, else
        through the holder (``xmpp_requests``), waiting ``seconds`` for the outcome."""
        now = datetime.now(UTC)
        started = time.monotonic()

        def result(ok: bool, error: str | None, latency: float | None = None) -> PokeResult:
            if latency is None:
                latency = round((time.monotonic() - started) * 1000, 1)
            return PokeResult(ok, "xmpp", None, latency, error, xsd.format_datetime(now), jid)

        link = self.link
        if link is not None:
            ok, error = await link.connection_request(
                jid, annex_k.ConnectionRequest(username, password), seconds
            )
            return result(ok, error)
        lease = await leases.read(self.db, LEASE)
        if lease is None or not lease.held(now):
            return result(False, "unreachable: no worker holds the ACS's XMPP session")
        detail = lease.detail or {}
        if detail.get("state") != "connected":
            why = detail.get("error") or detail.get("state")
            return result(False, f"unreachable: the ACS's XMPP session is down ({why})")
        r = tables.xmpp_requests
        async with self.db.write() as conn:
            request_id = (
                await conn.execute(
                    insert(r)
                    .values(
                        kind=CONNECTION_REQUEST,
                        device_id=device_id,
                        jid=jid,
                        username=username,
                        password_enc=self.box.seal(password),
                        created=now,
                        expires=now + timedelta(seconds=seconds),
                    )
                    .returning(r.c.id)
                )
            ).scalar_one()
        deadline = started + seconds + 1.0  # the holder's own timeout comes first
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            async with self.db.read() as conn:
                answered = (
                    await conn.execute(select(r.c.result).where(r.c.id == request_id))
                ).scalar()
            if answered is not None:
                return result(bool(answered.get("ok")), answered.get("error"))
        async with self.db.write() as conn:  # not sent late, if it was not taken yet
            await conn.execute(
                update(r)
                .where(r.c.id == request_id, r.c.finished.is_(None))
                .values(finished=datetime.now(UTC), result={"ok": False, "error": "timeout"})
            )
        return result(False, "timeout: the worker holding the XMPP session did not answer")

    async def health(self) -> dict[str, Any]:
        """The session as its holder last reported it (any worker may ask)."""
        lease = await leases.read(self.db, LEASE)
        now = datetime.now(UTC)
        if lease is None or not lease.held(now):
            return {"state": "no holder", "jid": self.settings.xmpp_jid}
        return {**(lease.detail or {}), "holder": lease.holder}


_f = logs.fields
