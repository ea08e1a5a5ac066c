"""A simulated CPE on the network: CWMP sessions over HTTP, connection requests (HTTP with
Digest, and UDP per TR-069 Annex G), file transfers, reboots.

Everything a well-behaved CPE does between sessions happens here; what it answers inside a
session is ``CpeModel``'s business. Agents are cheap enough to run thousands in one process:
sessions use the minimal client of ``acs.simulator.rawhttp`` (one TCP connection per session,
Digest nonce kept between sessions), the periodic Inform is rendered once and reused, and a
fleet shares one connection-request listener (``ConnectionRequestListener``), each agent
under its own random path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from acs.cwmp import digest, soap, xsd
from acs.cwmp import messages as m
from acs.simulator.model import CpeModel, Transfer
from acs.simulator.nat import NatClients
from acs.simulator.rawhttp import Authenticator, Connection, HttpError

log = logging.getLogger("acs.simulator")

CR_REALM = "cpe"
FIRMWARE_MAGIC = b"ACS-SIM-FIRMWARE "
# CurrentTime in a cached Inform is this, replaced by the time of each session.
_TIME_MARK = datetime(1999, 9, 9, 9, 9, 9, tzinfo=UTC)
_TIME_TEXT = xsd.format_datetime(_TIME_MARK).encode()


@dataclass
class SessionReport:
    """What one session looked like from the CPE."""

    ok: bool
    requests: list[str] = field(default_factory=list)  # ACS request names, in order
    error: str | None = None
    latency: float = 0.0
    status: int | None = None
    retry_after: float | None = None  # the ACS said 503: come back after this many seconds
    # seconds each answer to an ACS request took to be answered in turn (the ACS's work on
    # it; the CPE's own rendering of the answer is not in it)
    answer_latencies: list[float] = field(default_factory=list)


class ConnectionRequestListener:
    """One HTTP listener (and optionally one UDP socket) for the connection requests of
    many agents: ``/cr/<random>`` names the agent; a UDP request names it by ``un``."""

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.port = 0
        self.udp_port = 0
        self._agents: dict[str, CpeAgent] = {}
        self._server: asyncio.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None

    async def start(self, *, udp: bool = False) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, 0, limit=16384, backlog=4096
        )
        self.port = self._server.sockets[0].getsockname()[1]
        if udp:
            transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(self.host, 0)
            )
            self._udp = transport
            self.udp_port = transport.get_extra_info("sockname")[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._udp is not None:
            self._udp.close()

    def register(self, agent: CpeAgent) -> tuple[str, str | None]:
        """Give an agent its ConnectionRequestURL (and UDP address, if UDP is on)."""
        path = f"/cr/{secrets.token_hex(8)}"
        self._agents[path] = agent
        udp = f"{self.host}:{self.udp_port}" if self._udp is not None else None
        return f"http://{self.host}:{self.port}{path}", udp

    def unregister(self, agent: CpeAgent) -> None:
        for key in [k for k, a in self._agents.items() if a is agent]:
            del self._agents[key]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(
                asyncio.IncompleteReadError,
                ConnectionError,
                TimeoutError,
                asyncio.LimitOverrunError,
            ):
                while True:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                    lines = head.decode("latin-1").split("\r\n")
                    method, target = ([*lines[0].split(" "), "", ""])[:2]
                    headers = {
                        k.strip().lower(): v.strip()
                        for k, _, v in (line.partition(":") for line in lines[1:] if line)
                    }
                    agent = self._agents.get(urlsplit(target).path)
                    if agent is None or method != "GET":
                        status, extra = "404 Not Found", ""
                    else:
                        status, extra = agent.check_connection_request(
                            target, headers.get("authorization")
                        )
                    writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n{extra}\r\n".encode())
                    await writer.drain()
        finally:
            writer.close()

    def udp_datagram(self, data: bytes) -> None:
        try:
            query = parse_qs(urlsplit(data.decode("ascii").split(" ", 2)[1]).query)
            username = query["un"][0]
        except (UnicodeDecodeError, IndexError, KeyError):
            return
        for agent in self._agents.values():
            if agent.connection_request_username() == username:
                agent.udp_request(data)
                return


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, listener: ConnectionRequestListener):
        self.listener = listener

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.listener.udp_datagram(data)


class CpeAgent:
    """One simulated CPE talking to an ACS."""

    def __init__(
        self,
        model: CpeModel,
        acs_url: str,
        *,
        username: str,
        password: str,
        auth: str = "digest",
        namespace: str = soap.CWMP_NAMESPACES["1.2"],
        cr_host: str = "127.0.0.1",
        udp: bool = False,
        listener: ConnectionRequestListener | None = None,
        fail_downloads: bool = False,
        timeout: float = 30.0,
        boot_seconds: float = 0.0,
    ):
        self.model = model
        self.acs_url = acs_url
        self.username = username
        self.password = password
        self.auth_scheme = auth
        self.namespace = namespace
        self.cr_host = cr_host
        self.udp = udp
        self.fail_downloads = fail_downloads
        self.timeout = timeout
        self.boot_seconds = boot_seconds  # silent this long after a reboot, as real CPEs are
        self.listener = listener
        self._own_listener = listener is None
        self._authenticator: Authenticator | None = None
        self._cr_authority = digest.NonceAuthority(secrets.token_bytes(16), CR_REALM)
        self._cached_inform: tuple[int, bytes] | None = None
        self.wake = asyncio.Event()  # a connection request (or anything) asks for a session
        self.wake_events: list[str] = []
        self.connection_requests = 0
        self.sessions: list[SessionReport] = []
        self.downloads: list[tuple[str, int, bytes]] = []  # (url, status, first bytes)
        self._udp_seen: set[str] = set()  # UDP request ids acted on (they come repeated)
        self.nat: NatClients | None = None  # STUN and XMPP, behind a NAT (acs.simulator.nat)

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        if self.listener is None:
            self.listener = ConnectionRequestListener(self.cr_host)
            await self.listener.start(udp=self.udp)
        url, udp = self.listener.register(self)
        self._set(".ManagementServer.ConnectionRequestURL", url)
        if udp is not None:
            self._set(".ManagementServer.UDPConnectionRequestAddress", udp)

    async def stop(self) -> None:
        if self.nat is not None:
            await self.nat.close()
        if self.listener is not None:
            self.listener.unregister(self)
            if self._own_listener:
                await self.listener.stop()

    async def __aenter__(self) -> CpeAgent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _set(self, suffix: str, value: Any) -> None:
        name = self.model.root + suffix
        param = self.model.parameters.get(name)
        if param is not None:
            param.value = value
        else:
            self.model.set(name, value, writable=False)
        self.model.revision += 1

    def _param(self, suffix: str) -> str:
        value = self.model.get(self.model.root + suffix)
        return "" if value is None else str(value)

    # --- one CWMP session --------------------------------------------------------------

    def _envelope(self, message: Any, cwmp_id: str) -> bytes:
        return soap.render_envelope(message, namespace=self.namespace, cwmp_id=cwmp_id)

    def _authenticator_now(self) -> Authenticator:
        # A CPE authenticates with ManagementServer.Username/Password once the ACS set them
        # (CTC rotates them on bootstrap); until then with what it was shipped with. It takes
        # them at the start of a session.
        username = self._param(".ManagementServer.Username") or self.username
        password = self._param(".ManagementServer.Password") or self.password
        auth = self._authenticator
        if auth is None or (auth.username, auth.password) != (username, password):
            auth = self._authenticator = Authenticator(username, password, self.auth_scheme)
        return auth

    def inform_body(self, events: tuple[str, ...]) -> bytes:
        """The Inform to send; a plain periodic one is rendered once per model revision."""
        cacheable = events == ("2 PERIODIC",) and not self.model.pending_events
        now = xsd.format_datetime(datetime.now(UTC)).encode()
        if cacheable and self._cached_inform and self._cached_inform[0] == self.model.revision:
            return self._cached_inform[1].replace(_TIME_TEXT, now, 1)
        inform = self.model.inform(events)
        body = self._envelope(
            m.Inform(
                inform.device_id,
                inform.event,
                inform.max_envelopes,
                _TIME_MARK,
                inform.retry_count,
                inform.parameter_list,
            ),
            "1",
        )
        if cacheable:
            self._cached_inform = (self.model.revision, body)
        return body.replace(_TIME_TEXT, now, 1)

    async def session(self, *events: str) -> SessionReport:
        """Inform, report finished transfers, answer the ACS until it ends the session."""
        started = time.monotonic()
        report = SessionReport(ok=False)
        auth = self._authenticator_now()
        conn = Connection(self.acs_url, timeout=self.timeout)
        pending_events = list(self.model.pending_events)
        try:
            body = self.inform_body(events or ("2 PERIODIC",))
            response = await conn.request("POST", body, auth=auth)
            if response.status != 200:
                report.status = response.status
                report.error = f"Inform answered {response.status}"
                retry = response.headers.get("retry-after", "")
                if response.status == 503 and retry.isdigit():
                    report.retry_after = float(retry)
                self.model.pending_events[:0] = [
                    e for e in pending_events if e not in self.model.pending_events
                ]
                return report
            for tc in list(self.model.completed):
                response = await conn.request("POST", self._envelope(tc, "tc"), auth=auth)
                if response.status != 200:
                    report.error = f"TransferComplete answered {response.status}"
                    return report
                self.model.completed.remove(tc)
            response = await conn.request("POST", b"", auth=auth)
            for _ in range(10_000):
                if response.status == 204:
                    report.ok = True
                    break
                if response.status != 200:
                    report.status = response.status
                    report.error = f"ACS answered {response.status}"
                    break
                envelope = soap.parse_envelope(response.body)
                report.requests.append(type(envelope.message).__name__)
                answer = self.model.handle(envelope.message)
                body = self._envelope(answer, envelope.cwmp_id or "")
                sent = time.monotonic()
                response = await conn.request("POST", body, auth=auth)
                report.answer_latencies.append(time.monotonic() - sent)
        except (HttpError, soap.SoapError) as exc:
            report.error = f"{type(exc).__name__}: {exc}"
        finally:
            await conn.close()
            report.latency = time.monotonic() - started
            self.sessions.append(report)
        await self._after_session()
        return report

    async def _after_session(self) -> None:
        """What a CPE does once the session is over: transfers, reboots, resets."""
        for transfer in list(self.model.transfers):
            await self._transfer(transfer)
        if self.model.factory_reset_requested:
            self.model.factory_reset_requested = False
            self._set(".ManagementServer.ConnectionRequestUsername", "")
            self._set(".ManagementServer.ConnectionRequestPassword", "")
            # the ACS credentials it left the factory with: the shared pair
            for suffix in (".ManagementServer.Username", ".ManagementServer.Password"):
                if self.model.root + suffix in self.model.parameters:
                    self._set(suffix, "")
            self.model.pending_events[:0] = [m.EventStruct("0 BOOTSTRAP"), m.EventStruct("1 BOOT")]
            self._booted("0 BOOTSTRAP")
        elif self.model.reboot_requested:
            self.model.reboot()
            self._booted("1 BOOT")
        if self.model.schedule_inform is not None:
            delay, key = self.model.schedule_inform
            self.model.schedule_inform = None
            asyncio.get_running_loop().call_later(delay, self._scheduled, key)
        if self.nat is not None:  # STUN and XMPP as the ACS (re)configured them
            await self.nat.update()

    def _booted(self, event: str) -> None:
        """Inform again once booted: at once, or after ``boot_seconds``."""
        if self.boot_seconds > 0:
            asyncio.get_running_loop().call_later(self.boot_seconds, self.wake_soon, event)
        else:
            self.wake_soon(event)

    def _scheduled(self, key: str) -> None:
        self.model.pending_events.append(m.EventStruct("3 SCHEDULED"))
        self.model.pending_events.append(m.EventStruct("M ScheduleInform", key))
        self.wake_soon("3 SCHEDULED")

    async def _transfer(self, transfer: Transfer) -> None:
        """Fetch (or send) the file for real over HTTP, then report it next session."""
        start = datetime.now(UTC).replace(microsecond=0)
        code, text = 0, ""
        parts = urlsplit(transfer.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        auth = (
            Authenticator(transfer.username, transfer.password, "digest")
            if transfer.username
            else None
        )
        conn = Connection(transfer.url, timeout=self.timeout)
        try:
            if self.fail_downloads:
                code, text = 9010, "simulated download failure"
            elif not parts.scheme.startswith("http"):
                code, text = 9013, f"{parts.scheme} is not supported by this simulator"
            elif transfer.is_download:
                response = await conn.request("GET", path=target, auth=auth)
                self.downloads.append((transfer.url, response.status, response.body[:256]))
                if response.status in (401, 403):
                    code, text = 9012, f"file server said {response.status}"
                elif response.status != 200:
                    code, text = 9016, f"file server said {response.status}"
                elif transfer.file_size and len(response.body) != transfer.file_size:
                    code, text = 9018, "file size differs from FileSize"
                elif transfer.file_type.startswith("1 "):
                    self._install_firmware(response.body)
            else:
                body = f"log of {self.model.serial_number}\n".encode()
                response = await conn.request(
                    "PUT", body, path=target, auth=auth, headers={"Content-Length": str(len(body))}
                )
                if response.status >= 300:
                    code, text = 9011, f"upload server said {response.status}"
        except HttpError as exc:
            code, text = (9015 if transfer.is_download else 9011), f"transfer failed: {exc}"
        finally:
            await conn.close()
        end = datetime.now(UTC).replace(microsecond=0)
        self.model.finish_transfer(transfer, code, text, start, end)
        self.wake_soon("7 TRANSFER COMPLETE")

    def _install_firmware(self, image: bytes) -> None:
        # A simulated image says its version on its first line ("ACS-SIM-FIRMWARE 2.5.0");
        # the CPE reboots into it and reports that version from then on.
        first = image.split(b"\n", 1)[0]
        if first.startswith(FIRMWARE_MAGIC):
            self._set(
                ".DeviceInfo.SoftwareVersion",
                first[len(FIRMWARE_MAGIC) :].decode(errors="replace").strip(),
            )
        self.model.reboot_requested = True

    def wake_soon(self, event: str) -> None:
        self.wake_events.append(event)
        self.wake.set()

    def take_wake_events(self) -> tuple[str, ...]:
        """The event codes of what woke the device since last asked (each once, in order),
        for the Inform of the session it now starts; clears the wake-up."""
        self.wake.clear()
        events = tuple(dict.fromkeys(e for e in self.wake_events if e[0].isdigit()))
        self.wake_events.clear()
        return events

    def periodic_inform_interval(self, default: float) -> float | None:
        """Seconds between periodic Informs as the data model says now (so what an ACS set
        applies from the next Inform on); None when PeriodicInformEnable is false.
        ``default`` for a model without PeriodicInformInterval."""
        base = self.model.root + ".ManagementServer.PeriodicInformInterval"
        if self.model.get(self.model.root + ".ManagementServer.PeriodicInformEnable") is False:
            return None
        value = self.model.get(base)
        if value is None:
            return default
        try:
            seconds = int(value)
        except ValueError:
            return default
        return float(max(1, seconds))  # the data model's range is [1:]

    async def run_pending(self, *, max_sessions: int = 20) -> list[SessionReport]:
        """Run the sessions that connection requests, reboots and transfers asked for."""
        reports = []
        for _ in range(max_sessions):
            if not self.wake.is_set():
                break
            reports.append(await self.session(*self.take_wake_events()))
        return reports

    async def serve(self, stop: asyncio.Event, *, periodic: float | None = None) -> None:
        """Keep answering connection requests (and informing periodically) until ``stop``."""
        while not stop.is_set():
            waiter = asyncio.ensure_future(self.wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            _, pending = await asyncio.wait(
                {waiter, stopper}, timeout=periodic, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            if stop.is_set():
                return
            if self.wake.is_set():
                await self.run_pending()
            elif periodic is not None:
                await self.session("2 PERIODIC")

    # --- connection requests ----------------------------------------------------------

    def connection_request_username(self) -> str:
        return self._param(".ManagementServer.ConnectionRequestUsername")

    def check_connection_request(self, target: str, authorization: str | None) -> tuple[str, str]:
        """Digest-authenticate a connection request (TR-069 3.2.2): 200 and a session, or
        401 with a challenge."""
        username = self.connection_request_username()
        password = self._param(".ManagementServer.ConnectionRequestPassword")
        path = urlsplit(target).path
        creds = digest.parse_authorization(authorization)
        if isinstance(creds, digest.DigestCredentials) and creds.username == username:
            ha1 = {alg: digest.ha1(alg, username, CR_REALM, password) for alg in digest.ALGORITHMS}
            verdict = self._cr_authority.verify(
                creds, method="GET", ha1_by_algorithm=ha1, now=time.time(), request_path=path
            )
            if verdict is digest.Verdict.OK:
                self.connection_requests += 1
                self.wake_soon("6 CONNECTION REQUEST")
                return "200 OK", ""
        challenge = self._cr_authority.challenge(time.time(), algorithms=("MD5",))[0]
        return "401 Unauthorized", f"WWW-Authenticate: {challenge}\r\n"

    def udp_request(self, data: bytes) -> bool:
        """Check a UDP connection request (Annex G.2.2.1) and wake up if it is genuine."""
        try:
            line = data.decode("ascii").split("\r\n", 1)[0]
            method, url, _ = line.split(" ")
            query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
            ts, mid, un, cn, sig = (query[k] for k in ("ts", "id", "un", "cn", "sig"))
        except (UnicodeDecodeError, ValueError, KeyError):
            return False
        username = self.connection_request_username()
        password = self._param(".ManagementServer.ConnectionRequestPassword")
        expected = digest.udp_signature(password, ts, mid, un, cn)
        if method != "GET" or un != username or not hmac.compare_digest(expected, sig.upper()):
            return False
        if (
            not re.fullmatch(r"\d+", ts)
            or abs(time.time() - int(ts)) > 300
            or (mid in self._udp_seen)
        ):
            return False  # stale, or a repeat of one already acted on
        self._udp_seen.add(mid)
        self.connection_requests += 1
        self.wake_soon("6 CONNECTION REQUEST")
        return True
