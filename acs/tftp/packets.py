"""TFTP datagrams as values: ``decode(bytes) -> Packet``, ``encode(Packet) -> bytes``.

RFC 1350 section 5 gives the five packets (RRQ, WRQ, DATA, ACK, ERROR); RFC 2347 adds
options after a request's mode and the OACK that answers them. Strings are NUL-terminated
netascii; a filename or mode is read as Latin-1, so that any byte decodes to one character
and a name's bytes are judged by whoever resolves it, not lost here. Option names are
case-insensitive (RFC 2347): they are lower-cased when decoded.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final, TypeAlias


class Opcode(IntEnum):
    RRQ = 1
    WRQ = 2
    DATA = 3
    ACK = 4
    ERROR = 5
    OACK = 6  # RFC 2347


class ErrorCode(IntEnum):
    """RFC 1350 appendix, and 8 from RFC 2347."""

    NOT_DEFINED = 0  # see the message
    FILE_NOT_FOUND = 1
    ACCESS_VIOLATION = 2
    DISK_FULL = 3
    ILLEGAL_OPERATION = 4
    UNKNOWN_TID = 5
    FILE_EXISTS = 6
    NO_SUCH_USER = 7
    OPTION_NEGOTIATION = 8


#: Largest block number before it wraps to 0 (block numbers are 16 bits).
MAX_BLOCK: Final = 0xFFFF
#: Longest datagram a TFTP peer is asked to take: an OACK or ERROR stays far below it.
MAX_DATAGRAM: Final = 65_535


class MalformedPacket(ValueError):
    """Bytes that are no TFTP packet: too short, an unknown opcode, a string without its
    terminating NUL, an option without a value."""


@dataclass(frozen=True, slots=True)
class Request:
    """RRQ or WRQ: ``filename`` and ``mode`` as sent; ``options`` lower-cased names to
    values, in the order the client gave them (the first of a repeated name counts)."""

    opcode: Opcode
    filename: str
    mode: str
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Data:
    block: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Ack:
    block: int


@dataclass(frozen=True, slots=True)
class Error:
    code: int
    message: str


@dataclass(frozen=True, slots=True)
class OptionAck:
    options: dict[str, str]


Packet: TypeAlias = Request | Data | Ack | Error | OptionAck

_OPCODE: Final = struct.Struct("!H")
_NUMBERED: Final = struct.Struct("!HH")
#: The first two bytes of a DATA and of an ACK: what a transfer's every datagram starts with.
DATA_OPCODE: Final = _OPCODE.pack(Opcode.DATA)
ACK_OPCODE: Final = _OPCODE.pack(Opcode.ACK)


def data(block: int, payload: bytes) -> bytes:
    """``encode(Data(block, payload))`` without the object: a transfer's hot path."""
    return _NUMBERED.pack(Opcode.DATA, block & MAX_BLOCK) + payload


def ack(block: int) -> bytes:
    """``encode(Ack(block))`` without the object."""
    return _NUMBERED.pack(Opcode.ACK, block & MAX_BLOCK)


def _strings(body: bytes) -> list[str]:
    """NUL-terminated strings; the body must end with the last terminator."""
    if not body.endswith(b"\0"):
        raise MalformedPacket("a string without its terminating NUL")
    return [part.decode("latin-1") for part in body[:-1].split(b"\0")]


def decode(datagram: bytes) -> Packet:
    """The packet in ``datagram``.

    Raises:
        MalformedPacket: what the module docstring says.
    """
    if len(datagram) < 4:
        raise MalformedPacket(f"{len(datagram)} bytes: shorter than any TFTP packet")
    (code,) = _OPCODE.unpack_from(datagram)
    try:
        opcode = Opcode(code)
    except ValueError:
        raise MalformedPacket(f"unknown opcode {code}") from None
    if opcode in (Opcode.RRQ, Opcode.WRQ, Opcode.OACK):
        strings = _strings(datagram[2:])
        if opcode is Opcode.OACK:
            return OptionAck(_options(strings))
        if len(strings) < 2:
            raise MalformedPacket("a request needs a filename and a mode")
        filename, mode, *rest = strings
        return Request(opcode, filename, mode, _options(rest))
    _, number = _NUMBERED.unpack_from(datagram)
    if opcode is Opcode.DATA:
        return Data(number, datagram[4:])
    if opcode is Opcode.ACK:
        return Ack(number)
    message = datagram[4:]
    # A missing terminator is tolerated in an error: it ends the transfer either way.
    return Error(number, message.split(b"\0", 1)[0].decode("latin-1"))


def _options(strings: list[str]) -> dict[str, str]:
    if strings and strings[-1] == "" and len(strings) % 2:
        strings = strings[:-1]  # some clients pad the request with one more NUL
    if len(strings) % 2:
        raise MalformedPacket(f"option {strings[-1]!r} without a value")
    options: dict[str, str] = {}
    for name, value in zip(strings[::2], strings[1::2], strict=True):
        options.setdefault(name.lower(), value)
    return options


def encode(packet: Packet) -> bytes:
    """The datagram of ``packet``."""
    if isinstance(packet, Data):
        return data(packet.block, packet.payload)
    if isinstance(packet, Ack):
        return ack(packet.block)
    if isinstance(packet, Error):
        return _NUMBERED.pack(Opcode.ERROR, packet.code) + _string(packet.message)
    if isinstance(packet, OptionAck):
        pairs = packet.options.items()
        return _OPCODE.pack(Opcode.OACK) + b"".join(_string(x) for kv in pairs for x in kv)
    options = (x for kv in packet.options.items() for x in kv)
    strings = (packet.filename, packet.mode, *options)
    return _OPCODE.pack(packet.opcode) + b"".join(_string(s) for s in strings)


def _string(text: str) -> bytes:
    """A string as a TFTP string: Latin-1 with its NUL terminator, and no NUL inside (it
    would end the string early)."""
    return text.replace("\0", " ").encode("latin-1", "replace") + b"\0"
