"""The SIP plug-and-play responder: a phone's SUBSCRIBE for ``ua-profile`` in, a NOTIFY with
its provisioning URL out, with no I/O.

Theory of operation
-------------------
A phone set to SIP PnP (Fanvil's Auto Provision Description section 4.3 item 2; Yealink, Snom
and others alike) sends, at boot and then periodically, a SUBSCRIBE to the multicast group
224.0.1.75 on port 5060, or to the PnP server it was given::

    SUBSCRIBE sip:MAC%3a0c383e113af8@224.0.1.75 SIP/2.0
    From: <sip:MAC%3a0c383e113af8@224.0.1.75>;tag=1234
    Event: ua-profile;profile-type="device";vendor="Fanvil";model="X6";version="2.4.1"

A server that knows where the phone's configuration is answers ``200 OK`` with ``Expires: 0``
(the subscription ends with its one notification), then sends a NOTIFY in the dialog that the
200 made (RFC 6665): From is the SUBSCRIBE's To with the server's tag, To its From, the same
Call-ID, ``CSeq: 1 NOTIFY``, the SUBSCRIBE's Event, ``Subscription-State:
terminated;reason=timeout``, ``Content-Type: application/url`` and the URL as the body. The
phone answers the NOTIFY 200 and fetches the URL.

``Responder`` does that for one process. Datagrams go in (``receive``), with the address they
came from and the time; what to do comes out as actions: ``Reply`` (send from the listening
socket), ``Notify`` (send from the subscription's own socket), ``Decide`` (the caller says
whether to answer this phone: ``accept`` with the URL and the local address of the socket it
made for the subscription, or ``decline``), ``Finished`` (a NOTIFY's transaction ended: log
and count it) and ``Dropped`` (a datagram or a phone not answered, and why). ``deadline`` says
when ``timeout`` is due next. Time comes in as arguments (any monotonic clock); nothing here
reads a clock, opens a socket or draws a random number.

Only a SUBSCRIBE for ``ua-profile`` from a phone the filter admits is answered: anything else
(garbage, other methods, other event packages, a phone without a MAC, a phone filtered out) gets
no answer at all, as another PnP server on the same multicast group may serve those phones and
an answer would race it. The phone's MAC is its Request-URI's user part (``MAC%3a<mac>`` as
Snom writes it, or ``<mac>``), else its From's, else its To's.

Where answers go: the 200 to the SUBSCRIBE goes where RFC 3261 section 18.2.2 and RFC 3581
send a response (the source address, with the Via's sent-by port unless ``rport`` asked for the
source port), and so does the NOTIFY: that is where the phone demonstrably listens, whatever
its Contact says (a Contact may name an address the server cannot reach). The NOTIFY's
Request-URI is the Contact's URI.

The NOTIFY is a non-INVITE client transaction over UDP (RFC 3261 section 17.1.2): sent again
when Timer E fires (T1, doubling up to T2; T2 after a provisional response), given up when
Timer F fires (64*T1). A SUBSCRIBE sent again (the phone's own Timer E, before our 200 reached
it) is answered with the same 200, never a second NOTIFY, until 64*T1 after it first came
(Timer J); after that the phone's transaction is over and a SUBSCRIBE with the same key is a new
one. The server's tag is derived from the Call-ID and the From tag, and the NOTIFY's branch
from the subscription's key: a SUBSCRIBE sent again and taken by another process gets the same
200 there.

States of one subscription (``State``; ``TRANSITIONS`` is the whole table)::

    DECIDING --accept--> NOTIFYING --2xx--> DONE
    DECIDING --decline--> DECLINED       NOTIFYING --3xx-6xx--> REJECTED
    NOTIFYING --1xx--> PROCEEDING        NOTIFYING, PROCEEDING --Timer F--> TIMED_OUT
    NOTIFYING, PROCEEDING --Timer E--> (same, NOTIFY sent again)
    NOTIFYING, PROCEEDING --close--> ABORTED
    any --SUBSCRIBE again--> (same; the 200 sent again once there is one)

A subscription in DECIDING or a final state is forgotten at its Timer J.
"""

from __future__ import annotations

import hashlib
import heapq
import ipaddress
import re
import string
import urllib.parse
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, TypeAlias

from acs.sip import message as sip
from acs.sip.message import Malformed, Request, Response

#: The multicast group phones send their PnP SUBSCRIBE to (IANA: "SIP", 224.0.1.75).
GROUP: Final = "224.0.1.75"
EVENT: Final = "ua-profile"
CONTENT_TYPE: Final = "application/url"
DEFAULT_PORT: Final = 5060

Address: TypeAlias = tuple[Any, ...]  # (host, port) or (host, port, flowinfo, scope_id)
#: A subscription's key: Call-ID, From tag, CSeq number (a SUBSCRIBE sent again has the same).
Key: TypeAlias = tuple[str, str, int]

_MAC_RE: Final = re.compile(r"[0-9a-f]{12}")
_SEPARATORS: Final = re.compile(r"[:.-]")
_URL_SAFE: Final = re.compile(r"[^A-Za-z0-9._-]")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_PARAM_LENGTH: Final = 64  # Event parameters and User-Agent kept for logs and URLs


class State(StrEnum):
    DECIDING = "deciding"  # the caller decides whether to answer (a database lookup)
    NOTIFYING = "notifying"  # 200 and NOTIFY sent; the NOTIFY is sent again on Timer E
    PROCEEDING = "proceeding"  # a provisional response came: sent again every T2
    DONE = "done"  # the phone answered the NOTIFY 2xx
    REJECTED = "rejected"  # the phone answered the NOTIFY 3xx-6xx
    TIMED_OUT = "timed_out"  # Timer F: no final answer to the NOTIFY
    DECLINED = "declined"  # not answered (filtered out); its SUBSCRIBE sent again neither
    ABORTED = "aborted"  # the responder closed with the NOTIFY in flight


class Event(StrEnum):
    ACCEPTED = "accepted"
    DECLINED = "declined"
    SUBSCRIBE_AGAIN = "subscribe_again"
    RETRANSMIT = "retransmit"  # Timer E
    PROVISIONAL = "provisional"  # 1xx to the NOTIFY
    SUCCESS = "success"  # 2xx
    FAILURE = "failure"  # 3xx-6xx
    TIMEOUT = "timeout"  # Timer F
    ABORT = "abort"


_ANSWERS: Final = (Event.PROVISIONAL, Event.SUCCESS, Event.FAILURE)

TRANSITIONS: Final[dict[tuple[State, Event], State]] = {
    (State.DECIDING, Event.ACCEPTED): State.NOTIFYING,
    (State.DECIDING, Event.DECLINED): State.DECLINED,
    (State.DECIDING, Event.SUBSCRIBE_AGAIN): State.DECIDING,
    (State.NOTIFYING, Event.SUBSCRIBE_AGAIN): State.NOTIFYING,
    (State.NOTIFYING, Event.RETRANSMIT): State.NOTIFYING,
    (State.NOTIFYING, Event.PROVISIONAL): State.PROCEEDING,
    (State.NOTIFYING, Event.SUCCESS): State.DONE,
    (State.NOTIFYING, Event.FAILURE): State.REJECTED,
    (State.NOTIFYING, Event.TIMEOUT): State.TIMED_OUT,
    (State.NOTIFYING, Event.ABORT): State.ABORTED,
    (State.PROCEEDING, Event.SUBSCRIBE_AGAIN): State.PROCEEDING,
    (State.PROCEEDING, Event.RETRANSMIT): State.PROCEEDING,
    (State.PROCEEDING, Event.PROVISIONAL): State.PROCEEDING,
    (State.PROCEEDING, Event.SUCCESS): State.DONE,
    (State.PROCEEDING, Event.FAILURE): State.REJECTED,
    (State.PROCEEDING, Event.TIMEOUT): State.TIMED_OUT,
    (State.PROCEEDING, Event.ABORT): State.ABORTED,
    (State.DECLINED, Event.SUBSCRIBE_AGAIN): State.DECLINED,
    # A final state answers its SUBSCRIBE sent again, and absorbs answers to its NOTIFY
    # that come late or twice (Timer K).
    **{
        (final, event): final
        for final in (State.DONE, State.REJECTED, State.TIMED_OUT)
        for event in (Event.SUBSCRIBE_AGAIN, *_ANSWERS)
    },
}
_IN_FLIGHT: Final = (State.NOTIFYING, State.PROCEEDING)


class SubscriptionError(Exception):
    """A move the table does not allow: a bug in the caller or here, never the phone's."""

    def __init__(self, state: State, event: Event):
        self.state = state
        self.event = event
        super().__init__(f"{event.value} is not allowed in state {state.value}")


class Drop(StrEnum):
    """Why a datagram or a phone got no answer (a bounded set: metric labels)."""

    MALFORMED = "malformed"  # not SIP, or a SUBSCRIBE without what it must have
    TOO_LARGE = "too_large"  # more than message.MAX_MESSAGE bytes
    METHOD = "method"  # a request other than SUBSCRIBE
    EVENT = "event"  # a SUBSCRIBE for another event package
    NO_MAC = "no_mac"  # no MAC address in its Request-URI, From or To
    MAC_PREFIX = "mac_prefix"  # the filter: not one of the MAC prefixes
    MODEL = "model"  # the filter: not one of the models
    UNKNOWN_PHONE = "unknown_phone"  # the caller: only known phones are answered
    UNAVAILABLE = "unavailable"  # the caller could not decide (storage), or did not in time
    BUSY = "busy"  # Limits.max_subscriptions reached
    STRAY = "stray"  # a response that answers no NOTIFY of ours


class Outcome(StrEnum):
    """How a NOTIFY's transaction ended."""

    DONE = "done"
    REJECTED = "rejected"
    TIMEOUT = "timeout"
    ABORTED = "aborted"


@dataclass(frozen=True, slots=True)
class Timers:
    """RFC 3261's timers for a non-INVITE transaction over UDP (section 17.1.2.2)."""

    t1: float = 0.5
    t2: float = 4.0

    @property
    def timeout(self) -> float:
        """Timer F (giving up the NOTIFY) and Timer J (remembering a SUBSCRIBE): 64*T1."""
        return 64 * self.t1


@dataclass(frozen=True, slots=True)
class Limits:
    max_subscriptions: int = 1000  # remembered at once (in flight and for Timer J)


@dataclass(frozen=True, slots=True)
class Phone:
    """Who subscribed: its MAC (12 lower-case hex digits), what its Event header and
    User-Agent say (control characters removed, at most 64 characters; "" when absent),
    where the SUBSCRIBE came from and where answers go."""

    mac: str
    vendor: str
    model: str
    version: str
    user_agent: str
    source: Address
    target: Address

    @property
    def client(self) -> str:
        """The phone's address as people write it."""
        return host_text(self.source[0])


@dataclass(frozen=True, slots=True)
class Filter:
    """Which phones to answer: MACs starting with one of ``mac_prefixes`` (lower-case hex),
    models among ``models`` (lower-case, compared with the Event's ``model``); empty: any."""

    mac_prefixes: tuple[str, ...] = ()
    models: tuple[str, ...] = ()

    def refusal(self, phone: Phone) -> tuple[Drop, str] | None:
        if self.mac_prefixes and not phone.mac.startswith(self.mac_prefixes):
            return Drop.MAC_PREFIX, f"MAC {phone.mac} has none of the prefixes"
        if self.models and phone.model.lower() not in self.models:
            return Drop.MODEL, f"model {phone.model!r} is not one of the models"
        return None


# --- what comes out -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """Send ``datagram`` to ``to`` from the listening socket."""

    datagram: bytes
    to: Address


@dataclass(frozen=True, slots=True)
class Decide:
    """The caller decides whether to answer ``phone``: ``accept`` or ``decline``."""

    key: Key
    phone: Phone


@dataclass(frozen=True, slots=True)
class Notify:
    """Send ``datagram`` (the NOTIFY, or it again) to ``to`` from the subscription's socket."""

    key: Key
    datagram: bytes
    to: Address


@dataclass(frozen=True, slots=True)
class Finished:
    """A NOTIFY's transaction ended: ``status`` the phone's final answer, if any;
    ``duration`` from the first NOTIFY to now."""

    key: Key
    phone: Phone
    url: str
    outcome: Outcome
    status: int | None
    retransmissions: int
    duration: float


@dataclass(frozen=True, slots=True)
class Dropped:
    """A datagram, or a phone, not answered; ``detail`` says what was wrong."""

    reason: Drop
    source: Address
    detail: str
    phone: Phone | None = None


Action: TypeAlias = Reply | Decide | Notify | Finished | Dropped


class Refused(Exception):
    """A request this responder does not answer (``reason``, ``detail``)."""

    def __init__(self, reason: Drop, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(detail)


# --- reading a SUBSCRIBE --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscribe:
    """What a ua-profile SUBSCRIBE says that an answer needs (header values as received)."""

    phone: Phone
    key: Key
    vias: tuple[str, ...]  # the response's Via values: the first with received/rport
    from_: str
    to: str
    to_tag: str | None
    call_id: str
    cseq: str
    event: str
    remote_target: str  # the NOTIFY's Request-URI


def read_subscribe(request: Request, source: Address) -> Subscribe:
    """The SUBSCRIBE in ``request`` (from ``source``), if this responder answers it.

    Raises:
        Refused: not a SUBSCRIBE (METHOD), not for ua-profile (EVENT), without a MAC (NO_MAC),
            or without the headers RFC 3261 section 8.1.1 requires (MALFORMED).
    """
    if request.method != "SUBSCRIBE":
        raise Refused(Drop.METHOD, f"{request.method[:20]} is not SUBSCRIBE")
    try:
        return _read(request, source)
    except Malformed as exc:
        raise Refused(Drop.MALFORMED, str(exc)) from None


def _read(request: Request, source: Address) -> Subscribe:
    values = {}
    for name in ("via", "from", "to", "call-id", "cseq"):
        value = request.header(name)
        if not value:
            raise Malformed(f"no {name} header")
        values[name] = value
    vias = request.header_values("via")
    top = sip.parse_via(vias[0])
    from_, to = sip.parse_name_addr(values["from"]), sip.parse_name_addr(values["to"])
    number, method = sip.parse_cseq(values["cseq"])
    if method != "SUBSCRIBE":
        raise Malformed(f"CSeq method {method[:20]} in a SUBSCRIBE")
    event = request.header("event") or ""
    package, params = sip.parse_header(event)
    if package.lower() != EVENT:
        raise Refused(Drop.EVENT, f"Event {package[:40]!r}, not {EVENT}")
    mac = _mac(request.uri, from_.uri, to.uri)
    if mac is None:
        raise Refused(Drop.NO_MAC, "no MAC address in the Request-URI, From or To")
    target, response_via = _response_address(top, source)
    phone = Phone(
        mac=mac,
        vendor=_text(_param(params, "vendor")),
        model=_text(_param(params, "model")),
        version=_text(_param(params, "version")),
        user_agent=_text(request.header("user-agent")),
        source=source,
        target=target,
    )
    call_id = values["call-id"]
    return Subscribe(
        phone=phone,
        key=(call_id, from_.tag or "", number),
        vias=(response_via, *vias[1:]),
        from_=values["from"],
        to=values["to"],
        to_tag=to.tag,
        call_id=call_id,
        cseq=values["cseq"],
        event=event,
        remote_target=_remote_target(request.header("contact"), target),
    )


def mac_of(user: str | None) -> str | None:
    """The MAC in a URI's user part: ``001565113af8``, ``MAC%3a001565113AF8``,
    ``00-15-65-11-3a-f8``; 12 lower-case hex digits, or None."""
    if not user:
        return None
    text = urllib.parse.unquote(user).strip().lower()
    text = text.removeprefix("mac").lstrip(":")
    text = _SEPARATORS.sub("", text)
    return text if _MAC_RE.fullmatch(text) else None


def _mac(*uris: str) -> str | None:
    for uri in uris:
        try:
            mac = mac_of(sip.parse_uri(uri).user)
        except Malformed:
            continue
        if mac is not None:
            return mac
    return None


def _param(params: sip.Params, name: str) -> str | None:
    return next((sip.unquote(v) for k, v in params if k.lower() == name), None)


def _text(value: str | None) -> str:
    return _CONTROL.sub("", value or "").strip()[:_PARAM_LENGTH]


def _response_address(via: sip.Via, source: Address) -> tuple[Address, str]:
    """Where a response goes (RFC 3261 section 18.2.2, RFC 3581 section 4) and the top Via
    it carries (``received``, and ``rport`` filled in when the phone asked for it)."""
    host, port = host_text(source[0]), int(source[1])
    params = [(name, value) for name, value in via.params if name.lower() != "received"]
    rport = via.param("rport") is not None
    if rport:
        params = [(n, str(port) if n.lower() == "rport" else v) for n, v in params]
    if rport or via.host != host:
        params.append(("received", host))
    to_port = port if rport else (via.port or DEFAULT_PORT)
    top = sip.Via(via.transport, via.host, via.port, tuple(params))
    return (source[0], to_port, *source[2:]), top.render()


def _remote_target(contact: str | None, target: Address) -> str:
    if contact:
        try:
            uri = sip.parse_name_addr(sip.split_list(contact)[0]).uri
            sip.parse_uri(uri)
            return uri
        except (Malformed, IndexError):
            pass
    return f"sip:{sip.bracket(host_text(target[0]))}:{target[1]}"


def host_text(host: str) -> str:
    """An address as people and Via headers write it: an IPv4 client of a dual-stack socket
    (``::ffff:192.0.2.1``) as IPv4, without an IPv6 scope."""
    try:
        ip = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return str(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


# --- the URL --------------------------------------------------------------------------------------


def provisioning_url(template: str, phone: Phone) -> str:
    """``template`` with ``$mac`` (or ``${mac}``), ``$vendor``, ``$model`` and ``$version``
    filled in from ``phone``; the last three keep only letters, digits, ``.``, ``_`` and ``-``
    of what the phone sent, so that they are safe anywhere in a URL. Other ``$names`` (the
    phone's own ``$input``) stay as they are; ``$$`` is a ``$``."""
    return string.Template(template).safe_substitute(
        mac=phone.mac,
        vendor=_URL_SAFE.sub("", phone.vendor),
        model=_URL_SAFE.sub("", phone.model),
        version=_URL_SAFE.sub("", phone.version),
    )


def redacted(url: str) -> str:
    """``url`` with the password of its userinfo masked, for logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


# --- the responder --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Subscription:
    request: Subscribe
    taken: float
    expires: float  # Timer J: forgotten then (unless a NOTIFY is still in flight)
    tag: str
    state: State = State.DECIDING
    url: str = ""
    ok: bytes = b""  # the 200, once sent
    notify: bytes = b""
    branch: str = ""
    sent: float = 0.0
    interval: float = 0.0  # Timer E's current value
    next_send: float = 0.0
    gives_up: float = 0.0  # Timer F
    retransmissions: int = 0
    deadline: float = field(default=0.0)  # the one this record is scheduled for

    @property
    def phone(self) -> Phone:
        return self.request.phone


class Responder:
    """The PnP responder of one process (see the module docstring). ``port``: the listening
    port, for the Contact of its answers."""

    def __init__(
        self,
        port: int,
        *,
        filter: Filter = Filter(),
        timers: Timers = Timers(),
        limits: Limits = Limits(),
    ):
        self.port = port
        self.filter = filter
        self.timers = timers
        self.limits = limits
        self._subscriptions: dict[Key, _Subscription] = {}
        self._branches: dict[str, Key] = {}
        self._heap: list[tuple[float, int, Key]] = []
        self._sequence = 0

    def __len__(self) -> int:
        return len(self._subscriptions)

    def state(self, key: Key) -> State | None:
        """The subscription's state, None once forgotten."""
        found = self._subscriptions.get(key)
        return None if found is None else found.state

    @property
    def deadline(self) -> float | None:
        """When ``timeout`` is due next (the time the caller passes as ``now``), or None."""
        while self._heap:
            due, _, key = self._heap[0]
            found = self._subscriptions.get(key)
            if found is not None and found.deadline == due:
                return due
            heapq.heappop(self._heap)
        return None

    # --- moves ------------------------------------------------------------------------------------

    def receive(self, datagram: bytes, source: Address, now: float) -> list[Action]:
        """A datagram from ``source``, on the listening socket or a subscription's."""
        if len(datagram) > sip.MAX_MESSAGE:
            detail = f"{len(datagram)} bytes, more than {sip.MAX_MESSAGE}"
            return [Dropped(Drop.TOO_LARGE, source, detail)]
        try:
            received = sip.parse(datagram)
        except Malformed as exc:
            return [Dropped(Drop.MALFORMED, source, str(exc))]
        if isinstance(received, Response):
            return self._response(received, source, now)
        try:
            subscribe = read_subscribe(received, source)
        except Refused as exc:
            return [Dropped(exc.reason, source, exc.detail)]
        return self._subscribe(subscribe, now)

    def accept(self, key: Key, *, url: str, local: Address, now: float) -> list[Action]:
        """Answer the phone of ``key``: the 200, and the NOTIFY with ``url``, sent from
        ``local`` (the subscription's socket: host, port). Nothing if the subscription is not
        waiting for a decision (forgotten meanwhile)."""
        found = self._subscriptions.get(key)
        if found is None or found.state is not State.DECIDING:
            return []
        self._move(found, Event.ACCEPTED)
        request, host = found.request, sip.bracket(host_text(local[0]))
        contact = f"<sip:{host}:{self.port}>"
        to = request.to if request.to_tag else f"{request.to};tag={found.tag}"
        found.ok = sip.render_response(
            200,
            "OK",
            [
                *(("Via", via) for via in request.vias),
                ("From", request.from_),
                ("To", to),
                ("Call-ID", request.call_id),
                ("CSeq", request.cseq),
                ("Contact", contact),
                ("Expires", "0"),
            ],
        )
        found.branch = "z9hG4bK" + _digest("notify", *map(str, key))
        found.url = url
        found.notify = sip.render_request(
            "NOTIFY",
            request.remote_target,
            [
                ("Via", f"SIP/2.0/UDP {host}:{local[1]};branch={found.branch};rport"),
                ("Max-Forwards", "70"),
                ("From", to),
                ("To", request.from_),
                ("Call-ID", request.call_id),
                ("CSeq", "1 NOTIFY"),
                ("Contact", contact),
                ("Event", request.event),
                ("Subscription-State", "terminated;reason=timeout"),
                ("Content-Type", CONTENT_TYPE),
            ],
            url.encode(),
        )
        found.sent = now
        found.interval = self.timers.t1
        found.next_send = now + self.timers.t1
        found.gives_up = now + self.timers.timeout
        self._branches[found.branch] = key
        self._schedule(found)
        target = request.phone.target
        return [Reply(found.ok, target), Notify(key, found.notify, target)]

    def decline(self, key: Key, reason: Drop, detail: str) -> list[Action]:
        """Do not answer the phone of ``key`` (its SUBSCRIBE sent again neither)."""
        found = self._subscriptions.get(key)
        if found is None or found.state is not State.DECIDING:
            return []
        self._move(found, Event.DECLINED)
        return [Dropped(reason, found.phone.source, detail, found.phone)]

    def timeout(self, now: float) -> list[Action]:
        """Whatever is due by ``now``: NOTIFYs sent again, given up, subscriptions forgotten."""
        actions: list[Action] = []
        while self._heap and self._heap[0][0] <= now:
            due, _, key = heapq.heappop(self._heap)
            found = self._subscriptions.get(key)
            if found is not None and found.deadline == due:
                actions += self._due(found, now)
        return actions

    def close(self, now: float) -> list[Action]:
        """Stop: the NOTIFYs in flight end ``aborted``; everything is forgotten."""
        actions: list[Action] = []
        for found in self._subscriptions.values():
            if found.state in _IN_FLIGHT:
                self._move(found, Event.ABORT)
                actions.append(self._finished(found, Outcome.ABORTED, None, now))
        self._subscriptions.clear()
        self._branches.clear()
        self._heap.clear()
        return actions

    # --- inside -----------------------------------------------------------------------------------

    def _subscribe(self, request: Subscribe, now: float) -> list[Action]:
        found = self._subscriptions.get(request.key)
        if found is not None:
            self._move(found, Event.SUBSCRIBE_AGAIN)
            return [Reply(found.ok, request.phone.target)] if found.ok else []
        if len(self._subscriptions) >= self.limits.max_subscriptions:
            detail = f"{len(self._subscriptions)} subscriptions remembered already"
            return [Dropped(Drop.BUSY, request.phone.source, detail, request.phone)]
        call_id, from_tag, _ = request.key
        found = _Subscription(
            request=request,
            taken=now,
            expires=now + self.timers.timeout,
            tag=request.to_tag or _digest("tag", call_id, from_tag),
        )
        self._subscriptions[request.key] = found
        self._schedule(found)
        refusal = self.filter.refusal(request.phone)
        if refusal is not None:
            return self.decline(request.key, *refusal)
        return [Decide(request.key, request.phone)]

    def _response(self, response: Response, source: Address, now: float) -> list[Action]:
        vias = response.header_values("via")
        try:
            branch = sip.parse_via(vias[0]).branch if vias else None
            cseq = sip.parse_cseq(response.header("cseq") or "")
        except Malformed as exc:
            return [Dropped(Drop.MALFORMED, source, str(exc))]
        key = self._branches.get(branch or "")
        found = self._subscriptions.get(key) if key is not None else None
        if (
            found is None
            or cseq != (1, "NOTIFY")
            or response.header("call-id") != found.request.call_id
        ):
            detail = f"{response.status} answers no NOTIFY of ours"
            return [Dropped(Drop.STRAY, source, detail)]
        if response.status < 200:
            event = Event.PROVISIONAL
        else:
            event = Event.SUCCESS if response.status < 300 else Event.FAILURE
        was = found.state
        self._move(found, event)
        if was not in _IN_FLIGHT:
            return []  # absorbed: a final answer came already, or Timer F fired
        if event is Event.PROVISIONAL:
            found.interval = self.timers.t2  # RFC 3261 17.1.2.2: Proceeding resends every T2
            return []
        outcome = Outcome.DONE if event is Event.SUCCESS else Outcome.REJECTED
        self._schedule(found)
        return [self._finished(found, outcome, response.status, now)]

    def _due(self, found: _Subscription, now: float) -> list[Action]:
        if found.state in _IN_FLIGHT:
            if now >= found.gives_up:
                self._move(found, Event.TIMEOUT)
                self._schedule(found)
                return [self._finished(found, Outcome.TIMEOUT, None, now)]
            self._move(found, Event.RETRANSMIT)
            found.retransmissions += 1
            found.interval = min(found.interval * 2, self.timers.t2)
            if found.state is State.PROCEEDING:
                found.interval = self.timers.t2
            found.next_send = now + found.interval
            self._schedule(found)
            return [Notify(found.request.key, found.notify, found.phone.target)]
        self._forget(found)
        if found.state is State.DECIDING:
            detail = f"no decision within {self.timers.timeout:g} s"
            return [Dropped(Drop.UNAVAILABLE, found.phone.source, detail, found.phone)]
        return []

    def _finished(
        self, found: _Subscription, outcome: Outcome, status: int | None, now: float
    ) -> Finished:
        return Finished(
            key=found.request.key,
            phone=found.phone,
            url=found.url,
            outcome=outcome,
            status=status,
            retransmissions=found.retransmissions,
            duration=max(0.0, now - found.sent),
        )

    def _schedule(self, found: _Subscription) -> None:
        in_flight = found.state in _IN_FLIGHT
        due = min(found.next_send, found.gives_up) if in_flight else found.expires
        found.deadline = due
        self._sequence += 1
        heapq.heappush(self._heap, (due, self._sequence, found.request.key))

    def _forget(self, found: _Subscription) -> None:
        del self._subscriptions[found.request.key]
        self._branches.pop(found.branch, None)

    def _move(self, found: _Subscription, event: Event) -> None:
        try:
            found.state = TRANSITIONS[(found.state, event)]
        except KeyError:
            raise SubscriptionError(found.state, event) from None


def _digest(*parts: str) -> str:
    """A tag or branch derived from what identifies it (every process derives the same)."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
