"""A simulated CPE on the network: CWMP sessions over HTTP, a connection-request listener
(HTTP with Digest, and UDP per TR-069 Annex G), file transfers, reboots.

Everything a well-behaved CPE does between sessions happens here; what it answers inside a
session is ``CpeModel``'s business.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from acs.cwmp import digest, soap
from acs.cwmp import messages as m
from acs.simulator.model import CpeModel, Transfer

log = logging.getLogger("acs.simulator")

CR_REALM = "cpe"
FIRMWARE_MAGIC = b"ACS-SIM-FIRMWARE "


@dataclass
class SessionReport:
    """What one session looked like from the CPE."""

    ok: bool
    requests: list[str] = field(default_factory=list)  # ACS request names, in order
    error: str | None = None
    latency: float = 0.0
    status: int | None = None


def make_client(**kwargs: Any) -> httpx.AsyncClient:
    """An HTTP client for agents: it keeps no cookies (each session keeps its own)."""
    jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    kwargs.setdefault("timeout", 30.0)
    return httpx.AsyncClient(cookies=httpx.Cookies(jar), trust_env=False, **kwargs)


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
        client: httpx.AsyncClient | None = None,
        fail_downloads: bool = False,
    ):
        self.model = model
        self.acs_url = acs_url
        self.username = username
        self.password = password
        self.auth = auth
        self.namespace = namespace
        self.cr_host = cr_host
        self.udp = udp
        self.fail_downloads = fail_downloads
        self._client = client
        self._own_client = client is None
        self._cr_server: asyncio.Server | None = None
        self._udp_transport: asyncio.DatagramTransport | None = None
        self._cr_authority = digest.NonceAuthority(secrets.token_bytes(16), CR_REALM)
        self.wake = asyncio.Event()  # a connection request (or anything) asks for a session
        self.wake_events: list[str] = []
        self.connection_requests = 0
        self.next_id = 1
        self.sessions: list[SessionReport] = []
        self.downloads: list[tuple[str, int, bytes]] = []  # (url, status, first bytes)
        self._udp_seen: set[str] = set()  # UDP request ids acted on (they come repeated)

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        if self._client is None:
            self._client = make_client()
        self._cr_server = await asyncio.start_server(self._serve_cr, self.cr_host, 0)
        port = self._cr_server.sockets[0].getsockname()[1]
        path = f"/cr/{secrets.token_hex(4)}"
        self._set(".ManagementServer.ConnectionRequestURL", f"http://{self.cr_host}:{port}{path}")
        if self.udp:
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpCr(self), local_addr=(self.cr_host, 0)
            )
            self._udp_transport = transport
            udp_port = transport.get_extra_info("sockname")[1]
            self._set(".ManagementServer.UDPConnectionRequestAddress", f"{self.cr_host}:{udp_port}")

    async def stop(self) -> None:
        if self._cr_server is not None:
            self._cr_server.close()
            await self._cr_server.wait_closed()
        if self._udp_transport is not None:
            self._udp_transport.close()
        if self._own_client and self._client is not None:
            await self._client.aclose()

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

    def _param(self, suffix: str) -> str:
        value = self.model.get(self.model.root + suffix)
        return "" if value is None else str(value)

    # --- one CWMP session --------------------------------------------------------------

    def _envelope(self, message: Any, cwmp_id: str | None = None) -> bytes:
        if cwmp_id is None:
            cwmp_id = str(self.next_id)
            self.next_id += 1
        return soap.render_envelope(message, namespace=self.namespace, cwmp_id=cwmp_id)

    def _auth(self) -> httpx.Auth | None:
        # A CPE authenticates with ManagementServer.Username/Password once the ACS set them
        # (CTC rotates them on bootstrap); until then with what it was shipped with.
        username = self._param(".ManagementServer.Username") or self.username
        password = self._param(".ManagementServer.Password") or self.password
        if self.auth == "digest":
            return httpx.DigestAuth(username, password)
        if self.auth == "basic":
            return httpx.BasicAuth(username, password)
        return None

    async def session(self, *events: str) -> SessionReport:
        """Inform, report finished transfers, answer the ACS until it ends the session."""
        assert self._client is not None
        started = time.monotonic()
        report = SessionReport(ok=False)
        headers = {"content-type": 'text/xml; charset="utf-8"'}
        auth = self._auth()

        async def post(body: bytes) -> httpx.Response:
            # The session cookie is kept per session, by hand: a client shared by a fleet
            # must not hand one CPE's cookie to another (see make_client).
            assert self._client is not None
            response = await self._client.post(
                self.acs_url, content=body, headers=headers, auth=auth or httpx.USE_CLIENT_DEFAULT
            )
            for value in response.headers.get_list("set-cookie"):
                headers["cookie"] = value.split(";", 1)[0]
            return response

        try:
            inform = self.model.inform(events or ("2 PERIODIC",))
            response = await post(self._envelope(inform))
            if response.status_code != 200:
                report.status = response.status_code
                report.error = f"Inform answered {response.status_code}"
                self.model.pending_events[:0] = list(inform.event)  # report them next time
                return report
            reported = list(self.model.completed)
            for tc in reported:
                response = await post(self._envelope(tc))
                if response.status_code != 200:
                    report.error = f"TransferComplete answered {response.status_code}"
                    return report
                self.model.completed.remove(tc)
            response = await post(b"")
            for _ in range(10_000):
                if response.status_code == 204:
                    report.ok = True
                    break
                if response.status_code != 200:
                    report.status = response.status_code
                    report.error = f"ACS answered {response.status_code}"
                    break
                envelope = soap.parse_envelope(response.content)
                report.requests.append(type(envelope.message).__name__)
                answer = self.model.handle(envelope.message)
                response = await post(self._envelope(answer, envelope.cwmp_id))
        except (httpx.HTTPError, soap.SoapError) as exc:
            report.error = f"{type(exc).__name__}: {exc}"
        finally:
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
            self.model.pending_events[:0] = [m.EventStruct("0 BOOTSTRAP"), m.EventStruct("1 BOOT")]
            self.wake_soon("0 BOOTSTRAP")
        elif self.model.reboot_requested:
            self.model.reboot()
            self.wake_soon("1 BOOT")
        if self.model.schedule_inform is not None:
            delay, key = self.model.schedule_inform
            self.model.schedule_inform = None
            asyncio.get_running_loop().call_later(delay, self._scheduled, key)

    def _scheduled(self, key: str) -> None:
        self.model.pending_events.append(m.EventStruct("3 SCHEDULED"))
        self.model.pending_events.append(m.EventStruct("M ScheduleInform", key))
        self.wake_soon("3 SCHEDULED")

    async def _transfer(self, transfer: Transfer) -> None:
        """Fetch (or send) the file for real over HTTP, then report it next session."""
        assert self._client is not None
        start = datetime.now(UTC).replace(microsecond=0)
        code, text = 0, ""
        if self.fail_downloads:
            code, text = 9010, "simulated download failure"
        elif transfer.is_download:
            auth = (
                httpx.DigestAuth(transfer.username, transfer.password)
                if transfer.username
                else None
            )
            try:
                response = await self._client.get(
                    transfer.url, auth=auth or httpx.USE_CLIENT_DEFAULT
                )
                self.downloads.append((transfer.url, response.status_code, response.content[:256]))
                if response.status_code in (401, 403):
                    code, text = 9012, f"file server said {response.status_code}"
                elif response.status_code != 200:
                    code, text = 9016, f"file server said {response.status_code}"
                elif transfer.file_size and len(response.content) != transfer.file_size:
                    code, text = 9018, "file size differs from FileSize"
            except httpx.HTTPError as exc:
                code, text = 9015, f"cannot reach file server: {exc}"
        else:
            body = f"log of {self.model.serial_number}\n".encode()
            try:
                response = await self._client.put(transfer.url, content=body)
                if response.status_code >= 300:
                    code, text = 9011, f"upload server said {response.status_code}"
            except httpx.HTTPError as exc:
                code, text = 9011, f"cannot reach upload server: {exc}"
        end = datetime.now(UTC).replace(microsecond=0)
        if code == 0 and transfer.is_download and transfer.file_type.startswith("1 "):
            # New firmware: the CPE reboots into it. A simulated image says its version on
            # its first line ("ACS-SIM-FIRMWARE 2.5.0"); the device reports it after boot.
            first = self.downloads[-1][2].split(b"\n", 1)[0] if self.downloads else b""
            if first.startswith(FIRMWARE_MAGIC):
                self._set(
                    ".DeviceInfo.SoftwareVersion",
                    first[len(FIRMWARE_MAGIC) :].decode(errors="replace").strip(),
                )
            self.model.reboot_requested = True
        self.model.finish_transfer(transfer, code, text, start, end)
        self.wake_soon("7 TRANSFER COMPLETE")

    def wake_soon(self, event: str) -> None:
        self.wake_events.append(event)
        self.wake.set()

    async def run_pending(self, *, max_sessions: int = 20) -> list[SessionReport]:
        """Run the sessions that connection requests, reboots and transfers asked for."""
        reports = []
        for _ in range(max_sessions):
            if not self.wake.is_set():
                break
            self.wake.clear()
            events = tuple(dict.fromkeys(e for e in self.wake_events if e[0].isdigit()))
            self.wake_events.clear()
            reports.append(await self.session(*events))
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

    def _cr_credentials(self) -> tuple[str, str]:
        return (
            self._param(".ManagementServer.ConnectionRequestUsername"),
            self._param(".ManagementServer.ConnectionRequestPassword"),
        )

    async def _serve_cr(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, TimeoutError):
                while True:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                    lines = head.decode("latin-1").split("\r\n")
                    method, target = lines[0].split(" ")[:2]
                    headers = {
                        k.strip().lower(): v.strip()
                        for k, _, v in (line.partition(":") for line in lines[1:] if line)
                    }
                    status, extra = self._check_cr(method, target, headers.get("authorization"))
                    reply = f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n{extra}\r\n"
                    writer.write(reply.encode())
                    await writer.drain()
                    if status.startswith("200"):
                        self.connection_requests += 1
                        self.wake_soon("6 CONNECTION REQUEST")
        finally:
            writer.close()

    def _check_cr(self, method: str, target: str, authorization: str | None) -> tuple[str, str]:
        username, password = self._cr_credentials()
        path = urlsplit(self._param(".ManagementServer.ConnectionRequestURL")).path
        if method != "GET" or urlsplit(target).path != path:
            return "404 Not Found", ""
        creds = digest.parse_authorization(authorization)
        if isinstance(creds, digest.DigestCredentials) and creds.username == username:
            ha1 = {alg: digest.ha1(alg, username, CR_REALM, password) for alg in digest.ALGORITHMS}
            verdict = self._cr_authority.verify(
                creds, method="GET", ha1_by_algorithm=ha1, now=time.time(), request_path=path
            )
            if verdict is digest.Verdict.OK:
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
        username, password = self._cr_credentials()
        expected = hmac.new(password.encode(), f"{ts}{mid}{un}{cn}".encode(), hashlib.sha1)
        if (
            method != "GET"
            or un != username
            or not hmac.compare_digest(expected.hexdigest().upper(), sig.upper())
        ):
            return False
        if abs(time.time() - int(ts)) > 300 or mid in self._udp_seen:
            return False  # stale, or a repeat of one already acted on
        self._udp_seen.add(mid)
        self.connection_requests += 1
        self.wake_soon("6 CONNECTION REQUEST")
        return True


class _UdpCr(asyncio.DatagramProtocol):
    def __init__(self, agent: CpeAgent):
        self.agent = agent

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.agent.udp_request(data)
