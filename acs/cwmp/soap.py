"""SOAP envelopes of CWMP 1.0 to 1.4: ``parse_envelope(bytes)`` and ``render_envelope()``.

Parsing is hardened and forgiving at once:

* Hardened: no DTD is loaded or accepted, no entity is resolved, nothing is fetched from
  the network, and documents deeper or larger than ``ParseLimits`` are refused before
  any of their content is looked at. Every refusal is a ``HostileXml`` error.
* Forgiving: elements are matched by local name, whatever prefix or default namespace
  the CPE used (``SOAP-ENV``, ``soapenv``, none); ``soap-enc:arrayType`` counts are
  ignored (the children are the truth); values without ``xsi:type`` are strings; a BOM
  or leading white space is skipped; a Fault using a prefix it never declared is read
  in libxml2's recovery mode, but only when undeclared prefixes are the sole problem.

Rendering always uses the prefixes ``soap-env``, ``soap-enc``, ``xsd``, ``xsi`` and
``cwmp``: some CPEs match the literal ``cwmp:`` prefix rather than the namespace.
Child elements of a method are unqualified, as in the CWMP schema.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from lxml import etree

from acs.cwmp import messages as m
from acs.cwmp import xsd

SOAP_ENV_NS: Final = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ENC_NS: Final = "http://schemas.xmlsoap.org/soap/encoding/"
XSD_NS: Final = "http://www.w3.org/2001/XMLSchema"
XSI_NS: Final = "http://www.w3.org/2001/XMLSchema-instance"

# CWMP 1.2, 1.3 and 1.4 share the cwmp-1-2 namespace (TR-069 Amd 5, 3.5): 1.4 is told
# apart by the SupportedCWMPVersions header, not by the namespace.
CWMP_NAMESPACES: Final = {
    "1.0": "urn:dslforum-org:cwmp-1-0",
    "1.1": "urn:dslforum-org:cwmp-1-1",
    "1.2": "urn:dslforum-org:cwmp-1-2",
    "1.3": "urn:dslforum-org:cwmp-1-2",
    "1.4": "urn:dslforum-org:cwmp-1-2",
}
SUPPORTED_VERSIONS: Final = ("1.0", "1.1", "1.2", "1.3", "1.4")
_CWMP_NS_PREFIX: Final = "urn:dslforum-org:cwmp-"
# Namespaces some CPEs use that no published schema has; read as the nearest version.
_NAMESPACE_VERSIONS: Final = {
    "urn:dslforum-org:cwmp-1-0": "1.0",
    "urn:dslforum-org:cwmp-1-1": "1.1",
    "urn:dslforum-org:cwmp-1-2": "1.2",
    "urn:dslforum-org:cwmp-1-3": "1.3",
    "urn:dslforum-org:cwmp-1-4": "1.4",
}


class SoapError(ValueError):
    """The body is not a CWMP envelope we can read."""


class HostileXml(SoapError):
    """The body tries something no CPE needs: a DTD, entities, absurd depth or size."""


@dataclass(frozen=True, slots=True)
class UnknownMethod:
    """A method element this ACS does not know; answered with fault 8000."""

    name: str


@dataclass(frozen=True, slots=True)
class InvalidMessage:
    """A known method whose arguments do not decode; a request gets fault 8003."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Bounds a document must stay within; CWMP envelopes are shallow (depth ~7).

    ``preview_*`` bound what ``preview_envelope`` reads: an envelope's start up to its method
    element (an Inform's, to the end of its DeviceId) is a dozen or two elements in under a
    kilobyte; one that takes more is refused."""

    max_bytes: int = 4 * 1024 * 1024
    max_depth: int = 48
    max_elements: int = 250_000
    preview_bytes: int = 64 * 1024
    preview_elements: int = 256


DEFAULT_LIMITS: Final = ParseLimits()


@dataclass(frozen=True, slots=True)
class Envelope:
    """One received SOAP envelope: its message and the CWMP header fields (A.4.1)."""

    # A class of acs.cwmp.messages, m.Fault, UnknownMethod or InvalidMessage; None if empty.
    message: Any
    cwmp_id: str | None = None
    namespace: str | None = None  # the CWMP namespace the peer used, when it showed one
    hold_requests: bool | None = None
    no_more_requests: bool = False
    session_timeout: int | None = None
    supported_cwmp_versions: tuple[str, ...] = ()
    use_cwmp_version: str | None = None


EMPTY: Final = Envelope(message=None)


def negotiate_version(namespace: str | None, supported: tuple[str, ...]) -> str:
    """The CWMP version to speak with a CPE (TR-069 Amd 5, 3.5 "Version negotiation").

    A 1.4 CPE lists its versions in ``SupportedCWMPVersions``; we pick the highest one we
    share. Older CPEs are known by their namespace.
    """
    common = [v for v in supported if v in SUPPORTED_VERSIONS]
    if common:
        return max(common, key=lambda v: tuple(int(p) for p in v.split(".")))
    return _NAMESPACE_VERSIONS.get(namespace or "", "1.0")


# --- parsing ---------------------------------------------------------------------------

_local = threading.local()


# Every parser of CPE input: no DTD, no entity, no network, no huge trees.
_PARSER_OPTIONS: Final[dict[str, Any]] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
    "collect_ids": False,
}


def _parser(recover: bool) -> etree.XMLParser:
    # lxml parsers must not be shared between threads; one pair per thread.
    attr = "recovering" if recover else "strict"
    parser: etree.XMLParser | None = getattr(_local, attr, None)
    if parser is None:
        parser = etree.XMLParser(recover=recover, **_PARSER_OPTIONS)
        setattr(_local, attr, parser)
    return parser


_UTF8_BOM: Final = b"\xef\xbb\xbf"
_WHITESPACE: Final = b" \t\r\n"


def _depth_probe(depth: int) -> etree.XPath:
    return etree.XPath("boolean(/" + "*/" * depth + "*)")


_depth_probes: dict[int, etree.XPath] = {}
_count_elements: Final = etree.XPath("count(//*)")


def _unwrapped(body: bytes, limits: ParseLimits) -> bytes:
    """The document in a POST body: within the size limit, without a BOM or leading white
    space, refused if it declares a DTD or entities (before libxml2 sees it; the docinfo
    check after parsing catches other encodings)."""
    if len(body) > limits.max_bytes:
        raise HostileXml(f"body of {len(body)} bytes exceeds the limit of {limits.max_bytes}")
    if body.startswith(_UTF8_BOM):
        body = body[len(_UTF8_BOM) :]
    body = body.lstrip(_WHITESPACE)
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise HostileXml("DTDs and entity declarations are not accepted")
    return body


def parse_envelope(body: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> Envelope:
    """Parse one HTTP POST body from either side of a CWMP session.

    An empty or all-white-space body is the empty POST (``EMPTY``). A method we do not
    know reads as ``UnknownMethod``, one whose arguments do not decode as
    ``InvalidMessage``: both are answers the session must give, not errors. Raises
    ``HostileXml`` for refused documents and ``SoapError`` for anything else that is not
    a CWMP envelope.
    """
    body = _unwrapped(body, limits)
    if not body:
        return EMPTY
    root = _parse_xml(body)
    if root.getroottree().docinfo.internalDTD is not None:
        raise HostileXml("DTDs and entity declarations are not accepted")
    probe = _depth_probes.get(limits.max_depth)
    if probe is None:
        probe = _depth_probes[limits.max_depth] = _depth_probe(limits.max_depth)
    if probe(root):
        raise HostileXml(f"document nests deeper than {limits.max_depth} elements")
    if typing.cast(float, _count_elements(root)) > limits.max_elements:
        raise HostileXml(f"document has more than {limits.max_elements} elements")
    return _read_envelope(root)


def method_name(message: Any) -> str:
    """The method element's local name of a message ``parse_envelope`` read."""
    if isinstance(message, UnknownMethod | InvalidMessage):
        return message.name
    return type(message).__name__


@dataclass(frozen=True, slots=True)
class Preview:
    """The start of an envelope, read without parsing the rest (``preview_envelope``)."""

    # the local name of the Body's first element ("Inform", "GetParameterValuesResponse",
    # ...); None: an empty POST, or an empty Body
    method: str | None
    # the header fields and the CWMP namespace, with no message (see ``answerable``)
    envelope: Envelope
    # an Inform's DeviceId; None if it has none (or one that does not decode)
    device_id: m.DeviceIdStruct | None = None

    @classmethod
    def of(cls, envelope: Envelope) -> Preview:
        """What the preview of an envelope read whole would have said."""
        message = envelope.message
        return cls(
            None if message is None else method_name(message),
            dataclasses.replace(envelope, message=None),
            message.device_id if isinstance(message, m.Inform) else None,
        )

    def answerable(self, message: Any) -> Envelope:
        """The envelope as if fully read with ``message`` in it: enough for the session
        machine to answer it (a fault to an unreadable Inform)."""
        return dataclasses.replace(self.envelope, message=message)


_PREVIEW_CHUNK: Final = 1024  # fed at a time: most envelopes show their method in the first


def preview_envelope(body: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> Preview:
    """Read a POST body only as far as its method element, an Inform's to the end of its
    DeviceId: what an Inform needs to be challenged (its nonce is bound to the device), and
    what tells an Inform from any other message, at a small cost whatever follows.

    Raises ``HostileXml`` for a refused document, or for one whose start takes more than
    ``limits.preview_elements`` elements or ``limits.preview_bytes`` bytes; ``SoapError``
    for a start that is not a SOAP envelope.
    """
    body = _unwrapped(body, limits)
    if not body:
        return Preview(None, EMPTY)
    parser = etree.XMLPullParser(events=("start", "end"), **_PARSER_OPTIONS)
    reader = _PreviewReader(limits)
    end = min(len(body), limits.preview_bytes)
    try:
        for offset in range(0, end, _PREVIEW_CHUNK):
            parser.feed(body[offset : min(end, offset + _PREVIEW_CHUNK)])
            preview = reader.take(parser.read_events())
            if preview is not None:
                return preview
        if end < len(body):
            raise HostileXml(
                f"the envelope's start (to its method element, an Inform's DeviceId) takes "
                f"more than {limits.preview_bytes} bytes"
            )
        parser.close()  # the whole body is read: a document that is not complete fails here
        preview = reader.take(parser.read_events())  # what the parser held back for the end
        if preview is not None:
            return preview
    except etree.XMLSyntaxError as exc:
        raise _hostile(exc) or SoapError(f"malformed XML: {exc}") from None
    raise SoapError("SOAP Envelope has no Body")


class _PreviewReader:
    """Follows the events of ``preview_envelope``'s parser down to what it looks for."""

    __slots__ = ("body", "depth", "elements", "header", "id_namespace", "limits", "method", "root")

    def __init__(self, limits: ParseLimits):
        self.limits = limits
        self.depth = 0
        self.elements = 0
        self.root: etree._Element | None = None
        self.body: etree._Element | None = None
        self.method: etree._Element | None = None
        self.header: dict[str, Any] = {}
        self.id_namespace: str | None = None

    def take(self, events: Iterable[tuple[str, Any]]) -> Preview | None:
        """The preview once the parser's ``events`` complete it, else ``None``."""
        for event, el in events:
            preview = self._read(event, el)
            if preview is not None:
                return preview
        return None

    def _read(self, event: str, el: etree._Element) -> Preview | None:
        if event == "start":
            self.depth += 1
            self.elements += 1
            if self.elements > self.limits.preview_elements:
                raise HostileXml(
                    f"the envelope's start (to its method element, an Inform's DeviceId) has "
                    f"more than {self.limits.preview_elements} elements"
                )
            if self.depth > self.limits.max_depth:
                raise HostileXml(f"document nests deeper than {self.limits.max_depth} elements")
            if self.depth == 1:
                if el.getroottree().docinfo.internalDTD is not None:
                    raise HostileXml("DTDs and entity declarations are not accepted")
                if _name(el) != "Envelope":
                    raise SoapError(f"root element is <{_name(el)}>, not a SOAP Envelope")
                self.root = el
            elif self.depth == 2 and _name(el) == "Body":
                self.body = el
            elif self.depth == 3 and self.method is None and el.getparent() is self.body:
                self.method = el
                if _name(el) != "Inform":
                    return self._preview(None)
            return None
        # "end": the element is complete
        depth, self.depth = self.depth, self.depth - 1
        if depth == 2 and _name(el) == "Header" and self.body is None:
            self.header, self.id_namespace = _header_fields(el)
        elif depth == 2 and el is self.body:
            return self._preview(None)  # a Body with no method in it
        elif depth == 3 and el is self.method:
            return self._preview(None)  # an Inform with no DeviceId
        elif depth == 4 and el.getparent() is self.method and _name(el) == "DeviceId":
            try:
                device_id = _decode(m.DeviceIdStruct, el)
            except _DecodeError:
                device_id = None
            return self._preview(device_id)
        elif depth == 1:
            raise SoapError("SOAP Envelope has no Body")
        return None

    def _preview(self, device_id: m.DeviceIdStruct | None) -> Preview:
        assert self.root is not None and self.body is not None
        namespace = _find_cwmp_namespace(self.root, self.body, self.method, self.id_namespace)
        envelope = Envelope(message=None, namespace=namespace, **self.header)
        method = None if self.method is None else _name(self.method)
        return Preview(method, envelope, device_id)


def _hostile(exc: etree.XMLSyntaxError) -> HostileXml | None:
    """The refusal a syntax error of libxml2's stands for, if it is one."""
    text = str(exc)
    if "Excessive depth" in text:
        return HostileXml("document nests deeper than the parser allows")
    if "network entity" in text or "failed to load" in text:
        return HostileXml("DTDs and entity declarations are not accepted")
    return None


def _parse_xml(body: bytes) -> etree._Element:
    strict = _parser(recover=False)
    try:
        return etree.fromstring(body, strict)
    except etree.XMLSyntaxError as exc:
        # The parser's own log holds this parse's errors only (the exception's log is
        # the thread's, accumulated over earlier documents).
        errors: list[Any] = list(typing.cast(Any, strict.error_log))
        hostile = _hostile(exc)
        if hostile is not None:
            raise hostile from None
        # Some CPEs write faults as <soap:Fault> without ever declaring "soap:". That is
        # the one malformation we repair; anything else stays an error.
        undeclared_only = bool(errors) and all(
            e.type_name == "NS_ERR_UNDEFINED_NAMESPACE" for e in errors
        )
        if not undeclared_only:
            raise SoapError(f"malformed XML: {exc}") from None
    try:
        root = etree.fromstring(body, _parser(recover=True))
    except etree.XMLSyntaxError as exc:  # pragma: no cover - recovery of an NS-only error
        raise SoapError(f"malformed XML: {exc}") from None
    if root is None:
        raise SoapError("malformed XML: no root element")
    return root


def _name(el: etree._Element) -> str:
    """Local name of an element, also for ``prefix:Name`` tags left by recovery."""
    tag = el.tag
    assert isinstance(tag, str)
    if tag[0] == "{":
        return tag[tag.index("}") + 1 :]
    return tag.rpartition(":")[2]


def _namespace(el: etree._Element) -> str | None:
    tag = el.tag
    assert isinstance(tag, str)
    return tag[1 : tag.index("}")] if tag[0] == "{" else None


def _elements(el: etree._Element) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str)]


def _text(el: etree._Element) -> str:
    return el.text or ""


def _read_envelope(root: etree._Element) -> Envelope:
    if _name(root) != "Envelope":
        raise SoapError(f"root element is <{_name(root)}>, not a SOAP Envelope")
    header = body = None
    for child in _elements(root):
        name = _name(child)
        if name == "Header":
            header = child
        elif name == "Body":
            body = child
    if body is None:
        raise SoapError("SOAP Envelope has no Body")
    fields, id_namespace = _header_fields(header) if header is not None else ({}, None)
    children = _elements(body)
    method_el = children[0] if children else None
    namespace = _find_cwmp_namespace(root, body, method_el, id_namespace)
    if method_el is None:
        return Envelope(message=None, namespace=namespace, **fields)
    name = _name(method_el)
    if name == "Fault":
        message: Any = _read_fault(method_el)
    else:
        cls = m.MESSAGES.get(name)
        if cls is None:
            message = UnknownMethod(name)
        else:
            try:
                message = _decode(cls, method_el)
            except _DecodeError as exc:
                message = InvalidMessage(name, str(exc))
    return Envelope(message=message, namespace=namespace, **fields)


def _header_fields(header: etree._Element) -> tuple[dict[str, Any], str | None]:
    """The SOAP Header's CWMP fields (A.4.1), as ``Envelope`` takes them, and the namespace
    of its cwmp:ID."""
    fields: dict[str, Any] = {}
    id_namespace = None
    for el in _elements(header):
        name = _name(el).lower()
        text = _text(el).strip()
        if name == "id":
            fields["cwmp_id"] = text
            id_namespace = _namespace(el)
        elif name == "holdrequests":
            fields["hold_requests"] = bool(xsd.parse_boolean(text))
        elif name == "nomorerequests":
            fields["no_more_requests"] = bool(xsd.parse_boolean(text))
        elif name == "sessiontimeout" and text.isdigit():
            fields["session_timeout"] = int(text)
        elif name == "supportedcwmpversions":
            fields["supported_cwmp_versions"] = tuple(
                v.strip() for v in text.split(",") if v.strip()
            )
        elif name == "usecwmpversion":
            fields["use_cwmp_version"] = text
    return fields, id_namespace


def _find_cwmp_namespace(
    root: etree._Element,
    body: etree._Element,
    method: etree._Element | None,
    id_namespace: str | None,
) -> str | None:
    candidates = [_namespace(method) if method is not None else None, id_namespace]
    for el in (method, body, root):
        if el is not None:
            candidates.extend(el.nsmap.values())
    for ns in candidates:
        if ns and ns.startswith(_CWMP_NS_PREFIX):
            return ns
    return None


def _read_fault(el: etree._Element) -> m.Fault:
    soap_code = soap_string = ""
    detail = None
    for child in _elements(el):
        name = _name(child)
        if name == "faultcode":
            soap_code = _text(child).strip().rpartition(":")[2]
        elif name == "faultstring":
            soap_string = _text(child).strip()
        elif name == "detail":
            for inner in _elements(child):
                if _name(inner) == "Fault":
                    detail = inner
    code, string, spv_faults = 0, soap_string, []
    if detail is not None:
        for child in _elements(detail):
            name = _name(child)
            if name == "FaultCode":
                code = _int_or_zero(_text(child))
            elif name == "FaultString":
                string = _text(child).strip()
            elif name == "SetParameterValuesFault":
                parts = {_name(c): _text(c).strip() for c in _elements(child)}
                spv_faults.append(
                    m.SetParameterValuesFault(
                        parameter_name=parts.get("ParameterName", ""),
                        fault_code=_int_or_zero(parts.get("FaultCode", "")),
                        fault_string=parts.get("FaultString", ""),
                    )
                )
    return m.Fault(
        fault_code=code,
        fault_string=string,
        set_parameter_values_fault=tuple(spv_faults),
        soap_faultcode=soap_code or "Server",
        soap_faultstring=soap_string or "CWMP fault",
    )


def _int_or_zero(text: str) -> int:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return 0


# --- the schema-driven codec -------------------------------------------------------------

# Kinds of field, derived once per class from its annotations.
_STR, _INT, _BOOL, _TIME, _STRUCT, _STR_ARRAY, _STRUCT_ARRAY, _VALUE = range(8)


@dataclass(frozen=True, slots=True)
class _Field:
    attr: str
    xml: str
    kind: int
    struct: type | None  # for _STRUCT and _STRUCT_ARRAY
    required: bool


class _DecodeError(Exception):
    pass


_INTEGER_RE: Final = re.compile(r"[+-]?[0-9]+")


_SPECS: dict[type, tuple[_Field, ...]] = {}
_BY_XML_NAME: dict[type, tuple[dict[str, _Field], tuple[_Field, ...]]] = {}


def _spec(cls: type) -> tuple[_Field, ...]:
    spec = _SPECS.get(cls)
    if spec is None:
        spec = _SPECS[cls] = _build_spec(cls)
    return spec


def _lookup(cls: type) -> tuple[dict[str, _Field], tuple[_Field, ...]]:
    """A class's fields by XML name, and those that are required (built once per class)."""
    found = _BY_XML_NAME.get(cls)
    if found is None:
        spec = _spec(cls)
        found = _BY_XML_NAME[cls] = ({f.xml: f for f in spec}, tuple(f for f in spec if f.required))
    return found


def _build_spec(cls: type) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        struct = None
        if cls is m.ParameterValueStruct and f.name == "value":
            kind = _VALUE
        elif cls is m.ParameterValueStruct and f.name == "type":
            continue  # carried as the xsi:type attribute of Value
        elif hint is str:
            kind = _STR
        elif hint is bool:
            kind = _BOOL
        elif hint is int:
            kind = _INT
        elif _is_optional_datetime(hint):
            kind = _TIME
        elif typing.get_origin(hint) is tuple:
            item = typing.get_args(hint)[0]
            kind, struct = (_STR_ARRAY, None) if item is str else (_STRUCT_ARRAY, item)
        elif dataclasses.is_dataclass(hint):
            kind, struct = _STRUCT, typing.cast(type, hint)
        else:  # pragma: no cover - a programming error in messages.py
            raise TypeError(f"{cls.__name__}.{f.name}: unsupported type {hint!r}")
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out.append(_Field(f.name, m.xml_name(f.name), kind, struct, required))
    return tuple(out)


def _is_optional_datetime(hint: Any) -> bool:
    return isinstance(hint, types.UnionType) and set(typing.get_args(hint)) == {
        datetime,
        type(None),
    }


def _decode(cls: type, el: etree._Element) -> Any:
    by_name, required = _lookup(cls)
    kwargs: dict[str, Any] = {}
    value_type = None
    for child in _elements(el):
        f = by_name.get(_name(child))
        if f is None:
            continue  # vendors add elements of their own; they are not ours to reject
        if f.kind == _VALUE:
            value_type = xsd.normalize_type(_xsi_type(child))
            kwargs["value"] = xsd.decode(child.text, value_type)
            kwargs["type"] = value_type
        else:
            kwargs[f.attr] = _decode_field(f, child)
    for f in required:
        if f.attr not in kwargs:
            raise _DecodeError(f"missing {f.xml} in {cls.__name__}")
    if cls is m.ParameterValueStruct and value_type is None:
        kwargs["value"], kwargs["type"] = "", xsd.STRING
    return cls(**kwargs)


def _decode_field(f: _Field, el: etree._Element) -> Any:
    kind = f.kind
    if kind == _STR:
        return _text(el) if f.attr == "value" else _text(el).strip()
    if kind == _INT:
        text = _text(el).strip()
        if not text:
            return 0
        if not _INTEGER_RE.fullmatch(text):
            raise _DecodeError(f"{f.xml} is not an integer: {text[:40]!r}")
        return int(text)
    if kind == _BOOL:
        text = _text(el).strip()
        if not text:
            return False
        parsed = xsd.parse_boolean(text)
        if parsed is None:
            raise _DecodeError(f"{f.xml} is not a boolean: {text[:40]!r}")
        return parsed
    if kind == _TIME:
        parsed_time = xsd.parse_datetime(_text(el))
        # 0001-01-01T00:00:00Z is the spec's "unknown time" (A.2.1), and TR-106 3.2.1 reads
        # any year below 1000 as time since boot: either way, no absolute time is known.
        return None if parsed_time is None or parsed_time.year < 1000 else parsed_time
    if kind == _STRUCT:
        assert f.struct is not None
        return _decode(f.struct, el)
    if kind == _STR_ARRAY:
        return tuple(_text(c).strip() for c in _elements(el))
    assert f.struct is not None
    return tuple(_decode(f.struct, c) for c in _elements(el))


def _xsi_type(el: etree._Element) -> str | None:
    value = el.get(f"{{{XSI_NS}}}type")
    if value is not None:
        return value
    for key, val in el.attrib.items():  # an xsi prefix bound elsewhere, or undeclared
        if str(key).rpartition("}")[2].rpartition(":")[2] == "type":
            return str(val)
    return None


# --- rendering ------------------------------------------------------------------------

_ENVELOPE_OPEN: Final = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<soap-env:Envelope xmlns:soap-env="'
    + SOAP_ENV_NS
    + '" xmlns:soap-enc="'
    + SOAP_ENC_NS
    + '" xmlns:xsd="'
    + XSD_NS
    + '" xmlns:xsi="'
    + XSI_NS
    + '" xmlns:cwmp="{ns}">'
)
_UNKNOWN_TIME: Final = "0001-01-01T00:00:00Z"


def render_envelope(
    message: Any,
    *,
    namespace: str,
    cwmp_id: str | None = None,
    hold_requests: bool | None = None,
    use_cwmp_version: str | None = None,
    supported_cwmp_versions: tuple[str, ...] = (),
    no_more_requests: bool = False,
    session_timeout: int | None = None,
) -> bytes:
    """Render one message (or ``m.Fault``) in a SOAP envelope in the given namespace."""
    out = [_ENVELOPE_OPEN.replace("{ns}", _escape(namespace)), "<soap-env:Header>"]
    if cwmp_id is not None:
        out.append(f'<cwmp:ID soap-env:mustUnderstand="1">{_escape(cwmp_id)}</cwmp:ID>')
    if hold_requests is not None:
        out.append(
            '<cwmp:HoldRequests soap-env:mustUnderstand="1">'
            f"{1 if hold_requests else 0}</cwmp:HoldRequests>"
        )
    if use_cwmp_version:
        out.append(
            '<cwmp:UseCWMPVersion soap-env:mustUnderstand="1">'
            f"{_escape(use_cwmp_version)}</cwmp:UseCWMPVersion>"
        )
    if supported_cwmp_versions:
        out.append(
            '<cwmp:SupportedCWMPVersions soap-env:mustUnderstand="0">'
            f"{_escape(','.join(supported_cwmp_versions))}</cwmp:SupportedCWMPVersions>"
        )
    if no_more_requests:
        out.append("<cwmp:NoMoreRequests>1</cwmp:NoMoreRequests>")
    if session_timeout is not None:
        out.append(
            '<cwmp:SessionTimeout soap-env:mustUnderstand="0">'
            f"{int(session_timeout)}</cwmp:SessionTimeout>"
        )
    out.append("</soap-env:Header><soap-env:Body>")
    if isinstance(message, m.Fault):
        _render_fault(message, out)
    else:
        name = type(message).__name__
        if name not in m.MESSAGES:
            raise TypeError(f"{name} is not a CWMP message")
        out.append(f"<cwmp:{name}>")
        _render_fields(message, out)
        out.append(f"</cwmp:{name}>")
    out.append("</soap-env:Body></soap-env:Envelope>")
    return "".join(out).encode()


def _render_fault(fault: m.Fault, out: list[str]) -> None:
    out.append(
        f"<soap-env:Fault><faultcode>{_escape(fault.soap_faultcode)}</faultcode>"
        f"<faultstring>{_escape(fault.soap_faultstring)}</faultstring>"
        f"<detail><cwmp:Fault><FaultCode>{int(fault.fault_code)}</FaultCode>"
        f"<FaultString>{_escape(fault.fault_string)}</FaultString>"
    )
    for spv in fault.set_parameter_values_fault:
        out.append(
            f"<SetParameterValuesFault><ParameterName>{_escape(spv.parameter_name)}"
            f"</ParameterName><FaultCode>{int(spv.fault_code)}</FaultCode>"
            f"<FaultString>{_escape(spv.fault_string)}</FaultString></SetParameterValuesFault>"
        )
    out.append("</cwmp:Fault></detail></soap-env:Fault>")


def _render_fields(obj: Any, out: list[str]) -> None:
    for f in _spec(type(obj)):
        value = getattr(obj, f.attr)
        kind = f.kind
        if kind == _VALUE:
            out.append(
                f'<Value xsi:type="{_escape(obj.type)}">{_escape(xsd.encode(value))}</Value>'
            )
        elif kind == _STR:
            out.append(f"<{f.xml}>{_escape(value)}</{f.xml}>")
        elif kind == _INT:
            out.append(f"<{f.xml}>{int(value)}</{f.xml}>")
        elif kind == _BOOL:
            out.append(f"<{f.xml}>{1 if value else 0}</{f.xml}>")
        elif kind == _TIME:
            text = _UNKNOWN_TIME if value is None else xsd.format_datetime(value)
            out.append(f"<{f.xml}>{text}</{f.xml}>")
        elif kind == _STRUCT:
            out.append(f"<{f.xml}>")
            _render_fields(value, out)
            out.append(f"</{f.xml}>")
        elif kind == _STR_ARRAY:
            out.append(f'<{f.xml} soap-enc:arrayType="xsd:string[{len(value)}]">')
            out.extend(f"<string>{_escape(item)}</string>" for item in value)
            out.append(f"</{f.xml}>")
        else:
            assert f.struct is not None
            struct = f.struct.__name__
            out.append(f'<{f.xml} soap-enc:arrayType="cwmp:{struct}[{len(value)}]">')
            for item in value:
                out.append(f"<{struct}>")
                _render_fields(item, out)
                out.append(f"</{struct}>")
            out.append(f"</{f.xml}>")


_ESCAPES: Final = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;"}
)


def _escape(text: str) -> str:
    """Escape text for XML; refuse characters XML 1.0 cannot carry at all."""
    if not text.isprintable():
        for ch in text:
            code = ord(ch)
            if (
                (code < 0x20 and ch not in "\t\n\r")
                or 0xD800 <= code <= 0xDFFF
                or code
                in (
                    0xFFFE,
                    0xFFFF,
                )
            ):
                raise ValueError(f"character U+{code:04X} cannot be sent in XML")
    return text.translate(_ESCAPES)


# --- a plain-data view, for logs, debugging tools and golden tests ----------------------


def to_plain(value: Any) -> Any:
    """Messages as JSON-ready data: dataclasses become dicts (``"@type"`` names the class),
    tuples lists, datetimes ``xsd:dateTime`` text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"@type": type(value).__name__}
        for f in dataclasses.fields(value):
            out[f.name] = to_plain(getattr(value, f.name))
        return out
    if isinstance(value, tuple | list):
        return [to_plain(v) for v in value]
    if isinstance(value, datetime):
        return xsd.format_datetime(value)
    return value


def envelope_to_plain(envelope: Envelope) -> dict[str, Any]:
    """An ``Envelope`` as JSON-ready data (see ``to_plain``)."""
    data = to_plain(envelope)
    data.pop("@type")
    return dict(data)
