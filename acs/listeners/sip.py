"""The SIP PnP responder: phones that ask where their configuration is get its URL.

SUBSCRIBEs arrive on one UDP socket (``ACS_SIP_PNP_PORT``, bound by ``acs serve`` before the
workers start and shared by them: the kernel hands each datagram to one worker), which also
receives the multicast group 224.0.1.75 phones send to (``join``). ``acs.sip.pnp.Responder``
decides everything; this module moves datagrams, keeps one timer handle for all of a worker's
subscriptions, and asks the database whether it knows a phone (``ACS_SIP_PNP_KNOWN_ONLY``).

Each phone answered gets a socket of its own, on an ephemeral port, connected to the phone:
its NOTIFY goes from there with that port in the Via, so the phone's 200 (sent to the Via,
RFC 3261 section 18.2.2) comes back to the worker that sent the NOTIFY and waits for it, not
to whichever worker the shared socket would hand it. The 200 to the SUBSCRIBE goes from the
shared socket, as the phone expects an answer from where it sent its request.

Every NOTIFY is one ``pnp notify`` line (MAC, model, URL, outcome) and one count
(``acs_sip_pnp_notifies``); every datagram or phone not answered one count
(``acs_sip_pnp_dropped``), a DEBUG line for noise on the port, an INFO line for a phone the
settings turned away (at most once a minute per phone).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
import time
from typing import Final

from acs import logs
from acs.db.errors import UNAVAILABLE
from acs.listeners.tftp import base_url
from acs.services import metrics
from acs.services.errors import NotFound
from acs.services.runtime import Runtime
from acs.sip import pnp
from acs.sip.pnp import Action, Address, Decide, Drop, Dropped, Finished, Key, Notify, Reply

log = logging.getLogger("acs.sip")

_RECV_BUFFER: Final = 65_535  # a whole datagram, so that a large one is seen as such
_BURST: Final = 64  # datagrams read per wake-up, so one busy socket cannot starve the loop
_QUIET_SECONDS: Final = 60.0
# Phones a setting turned away: worth a line (once a minute per phone), the rest is noise.
_TURNED_AWAY: Final = (Drop.NO_MAC, Drop.MAC_PREFIX, Drop.MODEL, Drop.UNKNOWN_PHONE)
_TROUBLE: Final = (Drop.UNAVAILABLE, Drop.BUSY)


class MulticastUnavailable(Exception):
    """The group cannot be joined; the message says why."""


def join(sock: socket.socket) -> tuple[socket.socket | None, str]:
    """Make phones' SUBSCRIBEs to ``pnp.GROUP`` reach the listener ``sock`` (bound).

    Bound to a wildcard address (0.0.0.0, ::), ``sock`` itself joins, on every interface that
    takes it. A socket bound to one address receives no multicast, so for an IPv4 address a
    socket of its own is bound to the group (same port) and joins on that address's
    interface. Returns that socket (None when ``sock`` joined) and where it joined.

    Raises:
        MulticastUnavailable: no interface took the membership, or ``sock`` is bound to an
            IPv6 address (the group is IPv4).
    """
    host = pnp.host_text(sock.getsockname()[0])
    address = ipaddress.ip_address(host)
    group = socket.inet_aton(pnp.GROUP)
    if address.is_unspecified:
        joined, errors = [], []
        for index, name in socket.if_nameindex():
            mreqn = group + bytes(4) + struct.pack("@i", index)  # ip_mreqn: any address
            try:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
            except OSError as exc:
                errors.append(f"{name}: {exc.strerror or exc}")
                continue
            joined.append(name)
        if not joined:
            raise MulticastUnavailable("; ".join(errors) or "no network interface")
        return None, ", ".join(joined)
    if address.version == 6:
        raise MulticastUnavailable(f"{pnp.GROUP} is IPv4 and ACS_BIND is {host}")
    member = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        member.bind((pnp.GROUP, sock.getsockname()[1]))
        member.setsockopt(
            socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group + socket.inet_aton(host)
        )
    except OSError as exc:
        member.close()
        raise MulticastUnavailable(str(exc.strerror or exc)) from None
    member.set_inheritable(True)
    return member, f"the interface of {host}"


class SipPnpListener:
    """SIP PnP for one worker on ``socks`` (the listening socket first, then the group's
    own, if any)."""

    def __init__(
        self,
        runtime: Runtime,
        socks: list[socket.socket],
        *,
        timers: pnp.Timers | None = None,
        limits: pnp.Limits | None = None,
    ):
        self.runtime = runtime
        self.settings = settings = runtime.settings
        self.socks = socks
        self.responder = pnp.Responder(
            socks[0].getsockname()[1],
            filter=pnp.Filter(settings.sip_pnp_mac_prefix_list, settings.sip_pnp_model_list),
            timers=timers or pnp.Timers(),
            limits=limits or pnp.Limits(),
        )
        self.subscriptions: dict[Key, socket.socket] = {}
        self._lookups: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._due_at: float | None = None
        self._quiet: dict[tuple[str, str], float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "start() first"
        return self._loop

    def start(self) -> None:
        """Serve from now on, on the running loop."""
        self._loop = asyncio.get_running_loop()
        for sock in self.socks:
            sock.setblocking(False)
            self._loop.add_reader(sock.fileno(), self._readable, sock)

    async def close(self) -> None:
        """Stop: NOTIFYs in flight end ``aborted``; the sockets close."""
        if self._loop is None:
            return
        for sock in self.socks:
            self.loop.remove_reader(sock.fileno())
        for task in list(self._lookups):
            task.cancel()
        for task in list(self._lookups):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._act(self.responder.close(self.loop.time()))
        if self._timer is not None:
            self._timer.cancel()
        for key in list(self.subscriptions):
            self._close_subscription(key)
        for sock in self.socks:
            sock.close()

    # --- datagrams in ------------------------------------------------------------------------

    def _readable(self, sock: socket.socket) -> None:
        for _ in range(_BURST):
            try:
                datagram, source = sock.recvfrom(_RECV_BUFFER)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # an ICMP error reported on the socket: nothing to read
                log.debug("SIP PnP socket: %s", exc)
                break
            self._act(self.responder.receive(datagram, source, self.loop.time()))

    def _due(self) -> None:
        due, self._timer, self._due_at = self._due_at, None, None
        # the loop may run a timer a hair before its time: what was due then is due now
        now = max(self.loop.time(), due or 0.0)
        self._act(self.responder.timeout(now))

    # --- actions out -------------------------------------------------------------------------

    def _act(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Reply):
                self._send(self.socks[0], action.datagram, action.to)
            elif isinstance(action, Notify):
                sub = self.subscriptions.get(action.key)
                if sub is not None:
                    self._send(sub, action.datagram, None)
            elif isinstance(action, Decide):
                self._decide(action)
            elif isinstance(action, Finished):
                self._finished(action)
            else:
                self._dropped(action)
        self._arm()

    def _arm(self) -> None:
        due = self.responder.deadline
        if due == self._due_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due_at = due
        if due is not None:
            self._timer = self.loop.call_at(due, self._due)

    def _send(self, sock: socket.socket, datagram: bytes, to: Address | None) -> None:
        try:
            if to is None:
                sock.send(datagram)
            else:
                sock.sendto(datagram, to)
        except (BlockingIOError, InterruptedError):
            pass  # the socket's buffer is full: as if lost on the way, Timer E resends
        except OSError as exc:  # an unreachable phone: Timer E resends, Timer F ends it
            log.debug("SIP PnP send to %s: %s", to, exc)

    def _decide(self, decide: Decide) -> None:
        if not self.settings.sip_pnp_known_only:
            self._accept(decide.key, decide.phone)
            return
        task = self.loop.create_task(self._lookup(decide.key, decide.phone))
        self._lookups.add(task)
        task.add_done_callback(self._lookups.discard)

    async def _lookup(self, key: Key, phone: pnp.Phone) -> None:
        """ACS_SIP_PNP_KNOWN_ONLY: a phones row for the MAC, or no answer."""
        try:
            await self.runtime.provisioning.get_phone(phone.mac)
        except NotFound:
            detail = f"no phone {phone.mac} in the ACS (ACS_SIP_PNP_KNOWN_ONLY)"
            self._act(self.responder.decline(key, Drop.UNKNOWN_PHONE, detail))
            return
        except UNAVAILABLE as exc:
            self._quietly(logging.ERROR, "storage", "SIP PnP: storage unavailable: %s", exc)
            detail = f"storage unavailable: {type(exc).__name__}"
            self._act(self.responder.decline(key, Drop.UNAVAILABLE, detail))
            return
        self._accept(key, phone)

    def _accept(self, key: Key, phone: pnp.Phone) -> None:
        """A socket connected to the phone, the URL, and the responder's answers."""
        try:
            sock = socket.socket(self.socks[0].family, socket.SOCK_DGRAM)
        except OSError as exc:  # out of file descriptors
            self._act(self.responder.decline(key, Drop.UNAVAILABLE, f"no socket: {exc}"))
            return
        try:
            sock.setblocking(False)
            sock.connect(phone.target)
            local = sock.getsockname()
        except OSError as exc:
            sock.close()
            self._act(self.responder.decline(key, Drop.UNAVAILABLE, f"no route: {exc}"))
            return
        template = self.settings.sip_pnp_url or f"{base_url(self.settings, local[0])}/prov/$mac.cfg"
        url = pnp.provisioning_url(template, phone)
        actions = self.responder.accept(key, url=url, local=local, now=self.loop.time())
        if any(isinstance(action, Notify) for action in actions):
            self.subscriptions[key] = sock
            self.loop.add_reader(sock.fileno(), self._readable, sock)
        else:
            sock.close()
        self._act(actions)

    def _close_subscription(self, key: Key) -> None:
        sock = self.subscriptions.pop(key, None)
        if sock is not None:
            self.loop.remove_reader(sock.fileno())
            sock.close()

    def _finished(self, finished: Finished) -> None:
        self._close_subscription(finished.key)
        metrics.sip_pnp_notify(finished.outcome.value)
        phone = finished.phone
        log.info(
            "pnp notify",
            extra=logs.fields(
                mac=phone.mac,
                vendor=phone.vendor or None,
                model=phone.model or None,
                user_agent=phone.user_agent or None,
                client=phone.client,
                url=pnp.redacted(finished.url),
                outcome=finished.outcome.value,
                status=finished.status,
                retransmissions=finished.retransmissions,
                duration_ms=round(finished.duration * 1000, 1),
            ),
        )

    def _dropped(self, dropped: Dropped) -> None:
        metrics.sip_pnp_dropped(dropped.reason.value)
        client = pnp.host_text(dropped.source[0])
        phone = dropped.phone
        if dropped.reason in _TURNED_AWAY or dropped.reason in _TROUBLE:
            level = logging.INFO if dropped.reason in _TURNED_AWAY else logging.WARNING
            who = phone.mac if phone is not None else client
            self._quietly(
                level,
                f"{dropped.reason}:{who}",
                "SIP PnP: %s from %s not answered: %s",
                "SUBSCRIBE" if phone is None else f"SUBSCRIBE of {phone.mac} ({phone.model})",
                client,
                dropped.detail,
            )
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("SIP PnP: %s from %s dropped: %s", dropped.reason, client, dropped.detail)

    def _quietly(self, level: int, key: str, message: str, *args: object) -> None:
        """A line at most once a minute per key: a flood must not become a flood of lines."""
        now = time.monotonic()
        if now - self._quiet.get((message, key), -_QUIET_SECONDS) < _QUIET_SECONDS:
            return
        if len(self._quiet) >= 10_000:
            self._quiet.clear()
        self._quiet[(message, key)] = now
        log.log(level, message, *args)
