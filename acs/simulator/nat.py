"""A simulated CPE behind a NAT: its STUN client (TR-111 part 2) and its XMPP connection
(TR-069 Annex K), started as the ACS provisions them (``acs simulate --stun``, ``--xmpp``).

STUN: once the ACS set STUNEnable and the server, the device sends a Binding Request every
STUNMinimumKeepAlivePeriod from a UDP socket of its own, which is also where it takes UDP
connection requests (Annex G). The first request goes without MESSAGE-INTEGRITY; a 401
makes it send the request again with it (keyed with STUNPassword), as TR-111 says. The
address the server maps it to is its UDPConnectionRequestAddress (NATDetected when that is
not its own); a later change is announced with BINDING-CHANGE, and, when the ACS asked for
active notification, by a ``4 VALUE CHANGE`` Inform.

XMPP: once ConnReqXMPPConnection names an enabled XMPP.Connection with an account, the
device signs in (TLS required, as UseTLS asks; the server's certificate checked against
``--xmpp-ca`` or the system's CAs), reports its JabberID as ConnReqJabberID, and answers a
connectionRequest IQ from a JID in ConnReqAllowedJabberIDs with its connection-request
credentials by opening a session (``6 CONNECTION REQUEST``); anything else gets
``service-unavailable`` or ``not-authorized``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from acs.cwmp import stun

if TYPE_CHECKING:
    from acs.simulator.agent import CpeAgent

log = logging.getLogger("acs.simulator")

RETRANSMIT = 1.0  # seconds before a Binding Request is sent again (UDP may drop it)
TRIES = 3


@dataclass(frozen=True)
class StunSettings:
    server: str
    port: int
    username: str
    password: str
    period: float


@dataclass(frozen=True)
class XmppSettings:
    connection: str  # "Device.XMPP.Connection.1."
    jid: str  # user@domain/resource
    password: str
    server: tuple[str, int] | None


class NatClients:
    """The STUN client and XMPP connection of one agent, following its data model."""

    def __init__(
        self,
        agent: CpeAgent,
        *,
        stun_on: bool = False,
        xmpp_on: bool = False,
        xmpp_server: tuple[str, int] | None = None,
        xmpp_ca: Path | None = None,
    ):
        self.agent = agent
        self.stun_on = stun_on
        self.xmpp_on = xmpp_on
        self.xmpp_server = xmpp_server
        self.xmpp_ca = xmpp_ca
        self.stun: StunClient | None = None
        self.xmpp: XmppClient | None = None

    def _param(self, suffix: str) -> Any:
        return self.agent.model.get(self.agent.model.root + suffix)

    def stun_settings(self) -> StunSettings | None:
        ms = ".ManagementServer."
        if not self._param(ms + "STUNEnable") or not self._param(ms + "STUNServerAddress"):
            return None
        return StunSettings(
            str(self._param(ms + "STUNServerAddress")),
            int(self._param(ms + "STUNServerPort") or 3478),
            str(self._param(ms + "STUNUsername") or ""),
            str(self._param(ms + "STUNPassword") or ""),
            float(self._param(ms + "STUNMinimumKeepAlivePeriod") or 60),
        )

    def xmpp_settings(self) -> XmppSettings | None:
        reference = self._param(".ManagementServer.ConnReqXMPPConnection")
        if not reference:
            return None
        conn = f"{reference}."
        model = self.agent.model
        username, domain = model.get(conn + "Username"), model.get(conn + "Domain")
        if not model.get(conn + "Enable") or not username or not domain:
            return None
        resource = model.get(conn + "Resource") or "cwmp"
        server = self.xmpp_server
        address, port = (
            model.get(conn + "Server.1.ServerAddress"),
            model.get(conn + "Server.1.Port"),
        )
        if server is None and address:
            server = (str(address), int(port or 5222))
        return XmppSettings(
            conn, f"{username}@{domain}/{resource}", str(model.get(conn + "Password")), server
        )

    async def update(self) -> None:
        """Start, restart or stop each client as the data model now says (after a session:
        the ACS may have changed its settings)."""
        if self.stun_on:
            wanted = self.stun_settings()
            if self.stun is not None and self.stun.settings != wanted:
                await self.stun.close()
                self.stun = None
            if self.stun is None and wanted is not None:
                self.stun = StunClient(self.agent, wanted)
                await self.stun.start()
        if self.xmpp_on:
            target = self.xmpp_settings()
            if self.xmpp is not None and self.xmpp.settings != target:
                await self.xmpp.close()
                self.xmpp = None
            if self.xmpp is None and target is not None:
                self.xmpp = XmppClient(self.agent, target, self.xmpp_ca)
                self.xmpp.start()

    async def close(self) -> None:
        if self.stun is not None:
            await self.stun.close()
        if self.xmpp is not None:
            await self.xmpp.close()


def _report(agent: CpeAgent, suffix: str, value: Any) -> None:
    """A value the device itself changes: an active-notification one is announced by a
    ``4 VALUE CHANGE`` Inform (and the Inform carries it)."""
    name = agent.model.root + suffix
    param = agent.model.parameters.get(name)
    if param is None or param.value == value:
        return
    param.value = value
    agent.model.revision += 1
    if param.notification == 2:
        from acs.cwmp import messages as m  # here: the CLI imports this module for its options

        if not any(e.event_code == "4 VALUE CHANGE" for e in agent.model.pending_events):
            agent.model.pending_events.append(m.EventStruct("4 VALUE CHANGE"))
        agent.wake_soon("4 VALUE CHANGE")


class StunClient(asyncio.DatagramProtocol):
    """Binding Requests from the device's UDP connection-request socket (see the module
    docstring); datagrams that are no STUN answer are UDP connection requests."""

    def __init__(self, agent: CpeAgent, settings: StunSettings):
        self.agent = agent
        self.settings = settings
        self.transport: asyncio.DatagramTransport | None = None
        self.mapped: stun.Address | None = None
        self.answers: dict[bytes, asyncio.Future[stun.Message]] = {}
        self.requests = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(self.agent.cr_host, 0))
        self._task = asyncio.create_task(self._keep_alive())

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a datagram endpoint's (asyncio's own is no DatagramTransport subclass in 3.11)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            message = stun.parse(data)
        except stun.StunError:
            self.agent.udp_request(data)  # a UDP connection request (Annex G)
            return
        waiter = self.answers.pop(message.transaction_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(message)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.transport is not None:
            self.transport.close()

    async def _ask(self, *, binding_change: bool, signed: bool) -> stun.Message | None:
        assert self.transport is not None
        s = self.settings
        request = stun.ClientRequest(
            os.urandom(16),
            s.username or None,
            binding_change=binding_change,
            password=s.password if signed else None,
        )
        waiter = asyncio.get_running_loop().create_future()
        self.answers[request.transaction_id] = waiter
        try:
            for _ in range(TRIES):
                self.transport.sendto(request.encode(), (s.server, s.port))
                self.requests += 1
                with contextlib.suppress(TimeoutError):
                    return await asyncio.wait_for(asyncio.shield(waiter), RETRANSMIT)
            return None
        finally:
            self.answers.pop(request.transaction_id, None)

    async def bind(self) -> stun.Address | None:
        """One round: a Binding Request (again, signed, after a 401); the mapped address."""
        change = self.mapped is not None and self.mapped != self._last_reported()
        answer = await self._ask(binding_change=change, signed=change)
        if answer is not None and stun.error_code(answer) == 401:
            answer = await self._ask(binding_change=change, signed=True)
        if answer is None or answer.type != stun.MessageType.BINDING_RESPONSE:
            return None
        mapped = stun.mapped_address(answer)
        if mapped is None:
            return None
        if self.mapped is not None and mapped != self.mapped:
            self.mapped = mapped
            return await self.bind()  # announce it: BINDING-CHANGE, signed
        self.mapped = mapped
        assert self.transport is not None
        local = self.transport.get_extra_info("sockname")
        host, port = mapped
        _report(self.agent, ".ManagementServer.UDPConnectionRequestAddress", f"{host}:{port}")
        _report(self.agent, ".ManagementServer.NATDetected", (host, port) != tuple(local[:2]))
        return mapped

    def _last_reported(self) -> stun.Address | None:
        value = self.agent.model.get(
            self.agent.model.root + ".ManagementServer.UDPConnectionRequestAddress"
        )
        if not value or ":" not in str(value):
            return None
        host, _, port = str(value).rpartition(":")
        return host, int(port)

    async def _keep_alive(self) -> None:
        while True:
            try:
                await self.bind()
            except OSError as exc:  # the network is down: try again next period
                log.debug("%s: STUN: %s", self.agent.model.serial_number, exc)
            await asyncio.sleep(self.settings.period)


class XmppClient:
    """The device's XMPP connection (see the module docstring)."""

    def __init__(self, agent: CpeAgent, settings: XmppSettings, ca: Path | None):
        # imported here: slixmpp costs 0.4 s to import, and most fleets do without XMPP
        from slixmpp import ClientXMPP
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import MatchXPath

        from acs.cwmp import xmpp as annex_k

        self.agent = agent
        self.settings = settings
        self.client = ClientXMPP(settings.jid, settings.password)
        self.client.enable_direct_tls = False
        self.client.enable_plaintext = False
        if ca is not None:
            self.client.ca_certs = ca
        self.requests = 0
        self.online = asyncio.Event()
        self.client.register_handler(
            Callback(
                "connection request",
                MatchXPath(f"{{jabber:client}}iq/{annex_k.TAG}"),
                self._connection_request,
            )
        )
        self.client.add_event_handler("session_start", self._session_start)
        self.client.add_event_handler("disconnected", self._disconnected)
        self._over: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._signed_in = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._stay_connected())

    def _disconnected(self, _reason: Any) -> None:
        self.online.clear()
        if self._over is not None and not self._over.done():
            self._over.set_result(None)

    async def _stay_connected(self) -> None:
        """Sign in, and again after a session lost or refused (the account may not exist
        yet: the ACS makes it just after provisioning), waiting 1, 2, 4 ... 60 s."""
        failures = 0
        while True:
            self._over = asyncio.get_running_loop().create_future()
            if self.settings.server is not None:
                self.client.connect(*self.settings.server)
            else:
                self.client.connect()
            self._signed_in = False
            await self._over
            failures = 1 if self._signed_in else failures + 1
            await asyncio.sleep(min(60.0, 2.0 ** (failures - 1)))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.client.cancel_connection_attempt()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.disconnect(wait=1), 3)
        self.client.abort()
        sender = getattr(self.client, "_run_out_filters", None)  # see acs.services.xmpp.Link
        if sender is not None:
            sender.cancel()

    def _session_start(self, _event: Any) -> None:
        self._signed_in = True
        self.client.send_presence()
        jid = str(self.client.boundjid)
        model = self.agent.model
        conn = self.settings.connection
        if conn + "JabberID" in model.parameters:
            model.parameters[conn + "JabberID"].value = jid
            model.parameters[conn + "Status"].value = "Up"
        _report(self.agent, ".ManagementServer.ConnReqJabberID", jid)
        self.online.set()

    def _connection_request(self, iq: Any) -> None:
        from acs.cwmp import xmpp as annex_k

        if iq["type"] != "get":
            return
        model = self.agent.model
        ms = model.root + ".ManagementServer."
        request = annex_k.read(iq.xml.find(annex_k.TAG))
        allowed = str(model.get(ms + "ConnReqAllowedJabberIDs") or "")
        reply = iq.reply(clear=True)
        if request is None or not annex_k.allowed(str(iq["from"]), allowed):
            condition = annex_k.SERVICE_UNAVAILABLE
        elif (request.username, request.password) != (
            str(model.get(ms + "ConnectionRequestUsername") or ""),
            str(model.get(ms + "ConnectionRequestPassword") or ""),
        ):
            condition = annex_k.NOT_AUTHORIZED
        else:
            self.requests += 1
            self.agent.connection_requests += 1
            reply.send()
            self.agent.wake_soon("6 CONNECTION REQUEST")
            return
        reply["type"] = "error"
        reply["error"]["type"] = "cancel"
        reply["error"]["condition"] = condition
        reply.send()


def local_address_towards(url_host: str, port: int) -> str:
    """The address of this host's interface toward ``url_host`` (no packet is sent): where
    a CPE's connection-request listener is, as its ConnectionRequestURL says."""
    try:
        family = socket.AF_INET6 if ":" in url_host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((url_host, port or 80))
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def add_arguments(parser: Any) -> None:
    """``acs simulate``'s options for devices behind a NAT."""
    parser.add_argument(
        "--stun",
        action="store_true",
        help="devices keep a NAT binding with the STUN server the ACS gives them (TR-111: "
        "Binding Requests every STUNMinimumKeepAlivePeriod from their UDP "
        "connection-request socket) and take UDP connection requests there (default: off)",
    )
    parser.add_argument(
        "--xmpp",
        nargs="?",
        const="",
        default=None,
        metavar="HOST:PORT",
        help="devices sign in to XMPP with the account the ACS gives them (a JID per device; "
        "TR-181 models only) and take connection requests there (TR-069 Annex K); HOST:PORT: "
        "connect there instead of the server the ACS names (default: off)",
    )
    parser.add_argument(
        "--xmpp-ca",
        metavar="FILE",
        default=None,
        help="CA certificates to check the XMPP server's certificate against (default: the "
        "system's)",
    )


def config_of(args: Any) -> dict[str, Any]:
    """The FleetConfig fields of those options; exit status 2 for a combination that
    cannot work."""
    import sys

    if args.xmpp is not None and args.model == "gateway":
        print(
            "acs simulate: --xmpp needs a TR-181 (Device:2) data model: --model phone, or a "
            "JSON model whose root is Device",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return {"stun": args.stun, "xmpp": args.xmpp, "xmpp_ca": args.xmpp_ca}


def host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)
