"""STUN as TR-111 part 2 uses it: the codec and the server's answer, sans-I/O.

Theory of operation
-------------------
A CPE behind a NAT keeps a UDP binding open by sending Binding Requests from its UDP
connection-request port to the ACS's STUN server (``ManagementServer.STUNServerAddress``).
Those requests carry TR-111's ``CONNECTION-REQUEST-BINDING`` attribute, ``USERNAME`` (the
``STUNUsername`` the ACS gave it) and, when the binding changed (``BINDING-CHANGE``) or the
server asks with a 401, ``MESSAGE-INTEGRITY`` keyed with ``STUNPassword``. The source address
and port the server sees is the NAT binding: where a UDP connection request (TR-069 Annex G)
reaches the CPE.

CPEs speak RFC 3489 (no magic cookie, a 128-bit transaction id, MAPPED-ADDRESS) more often
than RFC 5389 (the magic cookie, XOR-MAPPED-ADDRESS, FINGERPRINT); both are read and
answered in their own style. RFC 3489 left MESSAGE-INTEGRITY's input loosely specified, and
CPE stacks differ (the header length as sent and the text zero-padded to 64 bytes, as RFC
3489 says; the same unpadded, as the widely copied ``stund`` does; or RFC 5389's length
ending at the attribute), so a request is accepted if any of these matches and is answered
in the same one.

``parse(bytes) -> Message``; ``binding_request(message) -> BindingRequest`` (what TR-111
cares about); ``answer(request, source, known, ...) -> Answer`` (the reply's bytes and what
the ACS should record, by the table below). No sockets, no clock, no database: the service
(``acs.services.stun``) looks the USERNAME up and does the I/O.

What a Binding Request gets (first match)::

    unknown comprehension-required attribute,  420 Unknown Attribute
      or CHANGE-REQUEST asking for another     (one address and port here: a change
      address or port                           cannot be honoured)
    MESSAGE-INTEGRITY without USERNAME         432 Missing Username (RFC 5389: 400)
    no USERNAME                                answered, nothing recorded (plain STUN)
    USERNAME the ACS did not give              401 if it carries MESSAGE-INTEGRITY,
                                               else answered; nothing recorded
    MESSAGE-INTEGRITY that does not check out  431 Integrity Check Failure (5389: 401)
    no CONNECTION-REQUEST-BINDING              answered, nothing recorded (a CPE finding
                                               out about its NAT from another port)
    a new binding (none recorded, another      401 Unauthorized unless authenticated: an
      address, or BINDING-CHANGE) ...          unauthenticated request never moves one
    ... authenticated                          answered, the binding recorded (changed)
    the recorded binding again                 answered, its last sighting recorded
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import struct
import zlib
from dataclasses import dataclass, field
from typing import Final

MAGIC_COOKIE: Final = 0x2112A442
_COOKIE_BYTES: Final = MAGIC_COOKIE.to_bytes(4, "big")
_FINGERPRINT_XOR: Final = 0x5354554E
HEADER_SIZE: Final = 20
MAX_SIZE: Final = 2048  # larger datagrams are no Binding Request of a CPE

# TR-111 2.2.1: the value of CONNECTION-REQUEST-BINDING (the last character a space, so that
# it is 20 bytes). Some CPEs send it without the space; the attribute's presence is what counts.
CONNECTION_REQUEST_BINDING_VALUE: Final = b"dslforum.org/TR-111 "


class MessageType(enum.IntEnum):
    BINDING_REQUEST = 0x0001
    BINDING_RESPONSE = 0x0101
    BINDING_ERROR_RESPONSE = 0x0111


class Attr(enum.IntEnum):
    """Attribute types of RFC 3489, RFC 5389 and TR-111."""

    MAPPED_ADDRESS = 0x0001
    RESPONSE_ADDRESS = 0x0002  # RFC 3489; not honoured (it would make us a reflector)
    CHANGE_REQUEST = 0x0003
    SOURCE_ADDRESS = 0x0004
    CHANGED_ADDRESS = 0x0005
    USERNAME = 0x0006
    PASSWORD = 0x0007
    MESSAGE_INTEGRITY = 0x0008
    ERROR_CODE = 0x0009
    UNKNOWN_ATTRIBUTES = 0x000A
    REFLECTED_FROM = 0x000B
    REALM = 0x0014
    NONCE = 0x0015
    XOR_MAPPED_ADDRESS = 0x0020
    SOFTWARE = 0x8022
    ALTERNATE_SERVER = 0x8023
    FINGERPRINT = 0x8028
    CONNECTION_REQUEST_BINDING = 0xC001  # TR-111
    BINDING_CHANGE = 0xC002  # TR-111


# What a Binding Request may carry and still be understood (RFC 5389 7.3.1: an unknown
# attribute below 0x8000 must be refused with 420). 0x8000 and above may be ignored.
_UNDERSTOOD: Final = frozenset(
    {
        Attr.RESPONSE_ADDRESS,
        Attr.CHANGE_REQUEST,
        Attr.USERNAME,
        Attr.MESSAGE_INTEGRITY,
        Attr.REALM,
        Attr.NONCE,
    }
)
_CHANGE_IP: Final = 0x04
_CHANGE_PORT: Final = 0x02


class StunError(ValueError):
    """Bytes that are no STUN message we can read (the datagram is dropped)."""


class Style(enum.Enum):
    """How a message frames MESSAGE-INTEGRITY (see the module docstring)."""

    RFC5389 = "rfc5389"  # the header's length ends at MESSAGE-INTEGRITY; no padding
    RFC3489 = "rfc3489"  # the header as sent; the text zero-padded to a multiple of 64 bytes
    RFC3489_UNPADDED = "rfc3489-unpadded"  # the header as sent; no padding (stund)


@dataclass(frozen=True, slots=True)
class Message:
    """One STUN message: its type, transaction id (12 bytes after the magic cookie, or the
    16 bytes of an RFC 3489 id) and attributes in order, with where MESSAGE-INTEGRITY and
    FINGERPRINT start in ``raw`` (to check them)."""

    type: int
    transaction_id: bytes
    attributes: tuple[tuple[int, bytes], ...]
    raw: bytes = b""
    integrity_at: int | None = None
    fingerprint_at: int | None = None

    @property
    def rfc5389(self) -> bool:
        """A magic cookie: RFC 5389 (and later); else RFC 3489."""
        return len(self.transaction_id) == 12

    def get(self, kind: int) -> bytes | None:
        """The first attribute of this type (later ones are ignored, RFC 5389 15)."""
        for t, value in self.attributes:
            if t == kind:
                return value
        return None

    def has(self, kind: int) -> bool:
        return any(t == kind for t, _ in self.attributes)


def parse(data: bytes) -> Message:
    """Read a STUN message; ``StunError`` for anything else (RFC 5389 7.3: silently dropped).

    Attributes after MESSAGE-INTEGRITY are ignored except FINGERPRINT (RFC 5389 15.4)."""
    if len(data) < HEADER_SIZE or len(data) > MAX_SIZE:
        raise StunError(f"{len(data)} bytes: not a STUN message")
    kind, length = struct.unpack_from("!HH", data)
    if kind & 0xC000:
        raise StunError("the first two bits of a STUN message are zero")
    if HEADER_SIZE + length != len(data):
        raise StunError(f"length {length} does not match the {len(data) - HEADER_SIZE} bytes")
    # an RFC 3489 id that happens to start with the cookie is read as RFC 5389 (2**-32)
    transaction_id = data[8:20] if data[4:8] == _COOKIE_BYTES else data[4:20]
    attributes: list[tuple[int, bytes]] = []
    integrity_at = fingerprint_at = None
    offset = HEADER_SIZE
    while offset < len(data):
        if offset + 4 > len(data):
            raise StunError("an attribute header runs past the end")
        t, n = struct.unpack_from("!HH", data, offset)
        end = offset + 4 + n
        padded = end + (-n % 4)
        if end > len(data):
            raise StunError(f"attribute 0x{t:04x} runs past the end")
        # RFC 3489 attributes are multiples of 4 long; a sloppy last one may lack padding
        padded = min(padded, len(data))
        value = data[offset + 4 : end]
        if fingerprint_at is not None:
            raise StunError("FINGERPRINT must be the last attribute")
        if t == Attr.FINGERPRINT:
            if n != 4:
                raise StunError("FINGERPRINT is 4 bytes")
            fingerprint_at = offset
            attributes.append((t, value))
        elif integrity_at is None:
            if t == Attr.MESSAGE_INTEGRITY:
                if n != 20:
                    raise StunError("MESSAGE-INTEGRITY is 20 bytes")
                integrity_at = offset
            attributes.append((t, value))
        offset = padded
    message = Message(kind, transaction_id, tuple(attributes), data, integrity_at, fingerprint_at)
    if fingerprint_at is not None and not _fingerprint_ok(message):
        raise StunError("FINGERPRINT does not match")
    return message


def _fingerprint_ok(message: Message) -> bool:
    at = message.fingerprint_at
    assert at is not None
    expected = message.raw[at + 4 : at + 8]
    return _fingerprint(message.raw[:at]) == expected


def _fingerprint(text: bytes) -> bytes:
    return ((zlib.crc32(text) ^ _FINGERPRINT_XOR) & 0xFFFFFFFF).to_bytes(4, "big")


def _mac(key: bytes, text: bytes) -> bytes:
    return hmac.new(key, text, hashlib.sha1).digest()


def _integrity_input(raw: bytes, at: int, style: Style) -> bytes:
    """What MESSAGE-INTEGRITY at ``at`` signs in ``style`` (``raw`` is the whole message)."""
    text = raw[:at]
    if style is Style.RFC5389:
        return text[:2] + struct.pack("!H", at + 24 - HEADER_SIZE) + text[4:]
    if style is Style.RFC3489:
        return text + b"\0" * (-len(text) % 64)
    return text


def check_integrity(message: Message, key: bytes) -> Style | None:
    """Which framing of MESSAGE-INTEGRITY checks out with ``key``; ``None``: none does (or
    the message has none)."""
    at = message.integrity_at
    if at is None:
        return None
    sent = message.raw[at + 4 : at + 24]
    # without FINGERPRINT, RFC 5389's framing and the unpadded one are the same bytes
    styles = (
        (Style.RFC5389,)
        if message.rfc5389
        else (Style.RFC3489, Style.RFC3489_UNPADDED, Style.RFC5389)
    )
    for style in styles:
        if hmac.compare_digest(_mac(key, _integrity_input(message.raw, at, style)), sent):
            return style
    return None


def encode(
    kind: int,
    transaction_id: bytes,
    attributes: list[tuple[int, bytes]] | tuple[tuple[int, bytes], ...],
    *,
    integrity_key: bytes | None = None,
    style: Style = Style.RFC5389,
    fingerprint: bool = False,
    pad: bytes = b"\0",
) -> bytes:
    """A message's bytes; MESSAGE-INTEGRITY (keyed, framed as ``style``) and FINGERPRINT
    are appended last when asked for. ``pad``: the byte attributes are padded with."""
    if len(transaction_id) not in (12, 16):
        raise ValueError("a transaction id is 12 bytes (RFC 5389) or 16 (RFC 3489)")
    prefix = _COOKIE_BYTES + transaction_id if len(transaction_id) == 12 else transaction_id
    body = b"".join(struct.pack("!HH", t, len(v)) + v + pad * (-len(v) % 4) for t, v in attributes)

    def header(length: int) -> bytes:
        return struct.pack("!HH", kind, length) + prefix

    if integrity_key is not None:
        # the length that ends up in the header: after MESSAGE-INTEGRITY and FINGERPRINT
        final = len(body) + 24 + (8 if fingerprint else 0)
        length = len(body) + 24 if style is Style.RFC5389 else final
        text = header(length) + body
        if style is Style.RFC3489:
            text += b"\0" * (-len(text) % 64)
        mac = _mac(integrity_key, text)
        body += struct.pack("!HH", Attr.MESSAGE_INTEGRITY, 20) + mac
    if fingerprint:
        text = header(len(body) + 8) + body
        body += struct.pack("!HH", Attr.FINGERPRINT, 4) + _fingerprint(text)
    return header(len(body)) + body


# --- addresses ---------------------------------------------------------------------------

Address = tuple[str, int]  # (host, port), as asyncio gives a datagram's source


def address_value(address: Address) -> bytes:
    """MAPPED-ADDRESS (and RFC 3489's SOURCE-/CHANGED-ADDRESS): family, port, address."""
    ip = ipaddress.ip_address(address[0])
    family = 1 if ip.version == 4 else 2
    return struct.pack("!BBH", 0, family, address[1]) + ip.packed


def xor_address_value(address: Address, transaction_id: bytes) -> bytes:
    """XOR-MAPPED-ADDRESS (RFC 5389 15.2): port and address XORed with the magic cookie (and,
    for IPv6, the transaction id)."""
    ip = ipaddress.ip_address(address[0])
    mask = _COOKIE_BYTES + transaction_id
    packed = bytes(a ^ b for a, b in zip(ip.packed, mask, strict=False))
    family = 1 if ip.version == 4 else 2
    return struct.pack("!BBH", 0, family, address[1] ^ (MAGIC_COOKIE >> 16)) + packed


def read_address(value: bytes, transaction_id: bytes | None = None) -> Address:
    """An address attribute's value; with ``transaction_id`` (12 bytes) an XOR one."""
    if len(value) not in (8, 20) or value[1] not in (1, 2):
        raise StunError("not an address attribute")
    port = struct.unpack_from("!H", value, 2)[0]
    packed = value[4:]
    if transaction_id is not None:
        port ^= MAGIC_COOKIE >> 16
        mask = _COOKIE_BYTES + transaction_id
        packed = bytes(a ^ b for a, b in zip(packed, mask, strict=False))
    return str(ipaddress.ip_address(packed)), port


# --- TR-111 binding requests -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BindingRequest:
    """What a Binding Request says, as TR-111 reads it."""

    message: Message
    username: str | None
    connection_request_binding: bool
    binding_change: bool
    change_request: int  # the flags of RFC 3489's CHANGE-REQUEST (0: none)
    unknown: tuple[int, ...]  # comprehension-required attributes this server does not know

    @property
    def authenticated(self) -> bool:
        """It carries MESSAGE-INTEGRITY (whether that checks out is ``check_integrity``'s)."""
        return self.message.integrity_at is not None


def binding_request(message: Message) -> BindingRequest:
    """Read a Binding Request; ``StunError`` for any other message (they are dropped)."""
    if message.type != MessageType.BINDING_REQUEST:
        raise StunError(f"message type 0x{message.type:04x} is not a Binding Request")
    username = message.get(Attr.USERNAME)
    flags = message.get(Attr.CHANGE_REQUEST)
    unknown = tuple(
        dict.fromkeys(
            t
            for t, _ in message.attributes
            if t < 0x8000 and t not in _UNDERSTOOD and t != Attr.FINGERPRINT
        )
    )
    return BindingRequest(
        message,
        # RFC 3489 pads USERNAME to a multiple of 4 inside the value (spaces or NULs)
        username.decode("utf-8", "replace").rstrip("\0 ") if username is not None else None,
        message.has(Attr.CONNECTION_REQUEST_BINDING),
        message.has(Attr.BINDING_CHANGE),
        int.from_bytes(flags[:4], "big") if flags is not None and len(flags) >= 4 else 0,
        unknown,
    )


@dataclass(frozen=True, slots=True)
class Known:
    """The device a USERNAME names, as the ACS stored it: its STUNPassword and the binding
    recorded last (``None``: none yet)."""

    device_id: str
    password: str
    binding: Address | None = None


class Verdict(enum.Enum):
    """What became of a Binding Request (a bounded set: metric labels and log fields)."""

    CHANGED = "changed"  # authenticated; the device's binding is new: record it
    KEPT = "kept"  # the recorded binding again: record that it was seen
    ANSWERED = "answered"  # answered, nothing to record (no USERNAME, no TR-111 binding)
    UNKNOWN_USER = "unknown_user"  # a USERNAME the ACS did not give
    UNAUTHORIZED = "unauthorized"  # 401: a new binding must be authenticated
    INTEGRITY_FAILED = "integrity_failed"  # MESSAGE-INTEGRITY did not check out
    REFUSED = "refused"  # 400 / 420 / 432: a request this server cannot honour


@dataclass(frozen=True, slots=True)
class Answer:
    """The reply to send back to the source, and the verdict."""

    reply: bytes
    verdict: Verdict
    error: int | None = None  # the error code sent, if any


_REASONS: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    420: "Unknown Attribute",
    431: "Integrity Check Failure",
    432: "Missing Username",
}


def answer(
    request: BindingRequest,
    source: Address,
    known: Known | None,
    *,
    local: Address | None = None,
) -> Answer:
    """The server's reply to a Binding Request from ``source`` (the module docstring's
    table). ``known``: the device its USERNAME names, if the ACS gave it; ``local``: the
    address the request arrived at, for RFC 3489's SOURCE-ADDRESS and CHANGED-ADDRESS
    (``None`` when listening on a wildcard address: they are left out)."""
    m = request.message
    if request.unknown or request.change_request & (_CHANGE_IP | _CHANGE_PORT):
        unknown = request.unknown or (Attr.CHANGE_REQUEST,)
        return _error(request, 420, Verdict.REFUSED, unknown=unknown)
    if request.username is None:
        if request.authenticated:
            return _error(request, 400 if m.rfc5389 else 432, Verdict.REFUSED)
        return Answer(_success(request, source, local, None), Verdict.ANSWERED)
    if known is None:
        if request.authenticated:
            return _error(request, 401, Verdict.UNKNOWN_USER)
        return Answer(_success(request, source, local, None), Verdict.UNKNOWN_USER)
    key = known.password.encode()
    style = check_integrity(m, key) if request.authenticated else None
    if request.authenticated and style is None:
        return _error(request, 401 if m.rfc5389 else 431, Verdict.INTEGRITY_FAILED)
    signed = (key, style) if style is not None else None
    if not request.connection_request_binding:
        return Answer(_success(request, source, local, signed), Verdict.ANSWERED)
    if known.binding == source and not request.binding_change:
        return Answer(_success(request, source, local, signed), Verdict.KEPT)
    if signed is None:
        return _error(request, 401, Verdict.UNAUTHORIZED)
    return Answer(_success(request, source, local, signed), Verdict.CHANGED)


def _success(
    request: BindingRequest,
    source: Address,
    local: Address | None,
    signed: tuple[bytes, Style] | None,
) -> bytes:
    m = request.message
    attributes = [(int(Attr.MAPPED_ADDRESS), address_value(source))]
    if m.rfc5389:
        attributes.append(
            (int(Attr.XOR_MAPPED_ADDRESS), xor_address_value(source, m.transaction_id))
        )
    elif local is not None:
        # RFC 3489 11.2: a response carries SOURCE-ADDRESS and CHANGED-ADDRESS; with one
        # address and port, the "changed" one is the same
        attributes.append((int(Attr.SOURCE_ADDRESS), address_value(local)))
        attributes.append((int(Attr.CHANGED_ADDRESS), address_value(local)))
    return encode(
        MessageType.BINDING_RESPONSE,
        m.transaction_id,
        attributes,
        integrity_key=signed[0] if signed else None,
        style=signed[1] if signed else Style.RFC5389,
        fingerprint=m.fingerprint_at is not None,
    )


def _error(
    request: BindingRequest, code: int, verdict: Verdict, *, unknown: tuple[int, ...] = ()
) -> Answer:
    m = request.message
    reason = _REASONS[code].encode()
    reason += b" " * (-len(reason) % 4)  # RFC 3489 wants whole words; 5389 does not mind
    attributes = [(int(Attr.ERROR_CODE), struct.pack("!HBB", 0, code // 100, code % 100) + reason)]
    if unknown:
        types = list(unknown)
        if not m.rfc5389 and len(types) % 2:
            types.append(types[-1])  # RFC 3489 11.2.10: an even number, one repeated
        attributes.append((int(Attr.UNKNOWN_ATTRIBUTES), struct.pack(f"!{len(types)}H", *types)))
    reply = encode(
        MessageType.BINDING_ERROR_RESPONSE,
        m.transaction_id,
        attributes,
        fingerprint=m.fingerprint_at is not None,
    )
    return Answer(reply, verdict, code)


def error_code(message: Message) -> int | None:
    """The code of an error response's ERROR-CODE (a client's concern: the simulator's)."""
    value = message.get(Attr.ERROR_CODE)
    if value is None or len(value) < 4:
        return None
    return (value[2] & 0x07) * 100 + value[3]


def mapped_address(message: Message) -> Address | None:
    """The address a Binding Response maps the request's source to (XOR-MAPPED-ADDRESS
    first, then MAPPED-ADDRESS)."""
    xor = message.get(Attr.XOR_MAPPED_ADDRESS)
    if xor is not None and message.rfc5389:
        return read_address(xor, message.transaction_id)
    plain = message.get(Attr.MAPPED_ADDRESS)
    return read_address(plain) if plain is not None else None


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """A TR-111 Binding Request as a CPE builds it (the simulator's side)."""

    transaction_id: bytes
    username: str | None = None
    binding_change: bool = False
    password: str | None = None  # set: MESSAGE-INTEGRITY keyed with it
    style: Style = Style.RFC3489
    extra: tuple[tuple[int, bytes], ...] = field(default=())

    def encode(self) -> bytes:
        attributes: list[tuple[int, bytes]] = []
        if self.username is not None:
            name = self.username.encode()
            if self.style is not Style.RFC5389:
                name += b" " * (-len(name) % 4)  # RFC 3489: a multiple of 4 bytes
            attributes.append((int(Attr.USERNAME), name))
        attributes.append((int(Attr.CONNECTION_REQUEST_BINDING), CONNECTION_REQUEST_BINDING_VALUE))
        if self.binding_change:
            attributes.append((int(Attr.BINDING_CHANGE), b""))
        attributes.extend(self.extra)
        return encode(
            MessageType.BINDING_REQUEST,
            self.transaction_id,
            attributes,
            integrity_key=self.password.encode() if self.password is not None else None,
            style=self.style,
        )
