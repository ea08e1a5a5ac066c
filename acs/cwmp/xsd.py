"""XML Schema simple types as CWMP uses them (TR-069 Annex A.2.1 and TR-106 3.2).

CWMP parameter values travel as text with an ``xsi:type`` attribute. We keep values in
the Python type that round-trips them exactly: ``int`` for the integer types, ``bool`` for
``xsd:boolean`` and ``str`` for everything else (``xsd:dateTime``, ``xsd:base64``,
``xsd:hexBinary``, ``xsd:decimal`` stay text so no precision or formatting is lost).

CPEs are lax: a value may come without ``xsi:type`` or with text its type does not
allow. Decoding never fails: unparsable text is kept as the string it was, so what the
device said is never lost (GenieACS does the same).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

Value = str | int | bool

STRING: Final = "xsd:string"
INT: Final = "xsd:int"
UNSIGNED_INT: Final = "xsd:unsignedInt"
LONG: Final = "xsd:long"
UNSIGNED_LONG: Final = "xsd:unsignedLong"
BOOLEAN: Final = "xsd:boolean"
DATE_TIME: Final = "xsd:dateTime"
BASE64: Final = "xsd:base64"
HEX_BINARY: Final = "xsd:hexBinary"
DECIMAL: Final = "xsd:decimal"

# Range of each integer type (TR-106 3.2: int/unsignedInt are 32 bit, long/unsignedLong 64).
INTEGER_RANGES: Final[dict[str, tuple[int, int]]] = {
    INT: (-(2**31), 2**31 - 1),
    UNSIGNED_INT: (0, 2**32 - 1),
    LONG: (-(2**63), 2**63 - 1),
    UNSIGNED_LONG: (0, 2**64 - 1),
}

KNOWN_TYPES: Final = frozenset(
    {STRING, BOOLEAN, DATE_TIME, BASE64, HEX_BINARY, DECIMAL, *INTEGER_RANGES}
)

_INTEGER_RE = re.compile(r"[+-]?[0-9]+")
# xsd:dateTime lexical form, with optional fraction and zone (XML Schema 3.2.7).
_DATETIME_RE = re.compile(
    r"-?[0-9]{4,}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_BASE64_RE = re.compile(r"[A-Za-z0-9+/\s]*={0,2}\s*")
_HEX_RE = re.compile(r"(?:[0-9A-Fa-f]{2})*")


def normalize_type(raw: str | None) -> str:
    """Map whatever a CPE put in ``xsi:type`` to a canonical ``xsd:`` name.

    Devices use any prefix bound to the XML Schema namespace (``xs:int``, ``xsd:int``,
    ``s:int``) or none; the local name is what matters. A missing type means string.
    """
    if not raw:
        return STRING
    local = raw.rpartition(":")[2].strip()
    if local == "unsignedint":  # seen on a few devices; the schema name is case-sensitive
        local = "unsignedInt"
    return f"xsd:{local}" if local else STRING


def decode(text: str | None, xsd_type: str) -> Value:
    """Turn the text of a ``Value`` element into a Python value of its type.

    Never raises: text that does not fit the type is returned unchanged as ``str``.
    """
    text = "" if text is None else text
    if xsd_type in INTEGER_RANGES:
        stripped = text.strip()
        if _INTEGER_RE.fullmatch(stripped):  # ASCII digits only (int() takes "1_000", "٣")
            return int(stripped)
        return text
    if xsd_type == BOOLEAN:
        parsed = parse_boolean(text)
        return text if parsed is None else parsed
    return text


def parse_boolean(text: str) -> bool | None:
    """``xsd:boolean`` allows ``true``/``false``/``1``/``0``; CPEs also send ``True``."""
    lowered = text.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    return None


def encode(value: Value) -> str:
    """Text of a value as it goes on the wire (booleans as ``true``/``false``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def infer_type(value: Value) -> str:
    """The ``xsi:type`` to send for a Python value when the caller gave none."""
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INT if INTEGER_RANGES[INT][0] <= value <= INTEGER_RANGES[INT][1] else LONG
    return STRING


def check(value: Value, xsd_type: str) -> Value:
    """Validate and coerce a value an operator wants to send as ``xsd_type``.

    Returns the value in its Python type; raises ``ValueError`` with a readable reason
    when the value cannot be represented in that type.
    """
    if xsd_type not in KNOWN_TYPES:
        raise ValueError(f"unknown type {xsd_type!r}; expected one of {sorted(KNOWN_TYPES)}")
    if xsd_type in INTEGER_RANGES:
        if isinstance(value, bool):
            raise ValueError(f"{xsd_type} needs an integer, not a boolean")
        if isinstance(value, str):
            if not _INTEGER_RE.fullmatch(value.strip()):
                raise ValueError(f"{value!r} is not an integer")
            value = int(value.strip())
        low, high = INTEGER_RANGES[xsd_type]
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range for {xsd_type} ({low}..{high})")
        return value
    if xsd_type == BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        parsed = parse_boolean(str(value))
        if parsed is None:
            raise ValueError(f"{value!r} is not a boolean")
        return parsed
    text = encode(value)
    if xsd_type == DATE_TIME and not _DATETIME_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not an xsd:dateTime (e.g. 2024-01-31T12:00:00Z)")
    if xsd_type == BASE64 and not _BASE64_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not base64")
    if xsd_type == HEX_BINARY and not _HEX_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not hexBinary")
    if xsd_type == DECIMAL:
        try:
            float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a decimal") from None
    return text


def parse_datetime(text: str | None) -> datetime | None:
    """Parse an ``xsd:dateTime``; naive times are taken as UTC. Unparsable -> ``None``.

    TR-069 uses ``0001-01-01T00:00:00Z`` for "unknown time"; that parses like any other.
    """
    if not text:
        return None
    text = text.strip()
    if not _DATETIME_RE.fullmatch(text):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_datetime(value: datetime) -> str:
    """Render a datetime as ``xsd:dateTime`` in UTC with a ``Z`` suffix."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    v = value.astimezone(UTC)
    # not strftime: glibc does not zero-pad years below 1000 ("%Y" of year 2 is "2")
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}Z"
