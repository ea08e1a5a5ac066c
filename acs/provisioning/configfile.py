"""The two formats of Fanvil configuration files (Auto Provision Description v1.1), as data.

A configuration is an ordered mapping ``module name -> key -> value`` (``Config``), all
strings: ``{"GLOBAL CONFIG MODULE": {"Time Zone": "32"}}``. Order is kept everywhere because
it is the order of the lines the phone reads.

Text format (``.cfg`` and ``.txt``; section 4.1 "Internal file format", Figure 1, Figures
18-24)::

    <<VOIP CONFIG FILE>>Version:2.0002
    <blank>
    <GLOBAL CONFIG MODULE>
    Time Zone :32
    <blank>
    <AUTOUPDATE CONFIG MODULE>
    Auto Image Url :http://172.16.6.70:8000/x4.z
    <blank>
    <<END OF FILE>>

- Every line ends with CRLF: the document says the header "ends with a carriage return
  character (\\r\\n)"; we end all lines, the last one included, the same way.
- One blank line before each module header and before ``<<END OF FILE>>``, none between a
  module header and its keys: this is Figure 22's layout and Figures 18-21/23 less their
  blank line after the module header. The figures disagree with one another (Figure 1 puts a
  blank line between every two lines, Figure 24 none at all); blank lines carry no meaning.
- A setting is ``Key :value``: one space, the colon, the value verbatim (Figure 1 and
  Figure 24; the column alignment of Figures 18-23 is cosmetic and not reproduced).
- "The file header is 64 characters long": read as a maximum (no figure pads it), so a
  version is at most 34 characters (64 less ``<<VOIP CONFIG FILE>>Version:`` and CRLF).

Reading (``parse_text``) is lenient where the figures vary and strict where a file could be
misread: LF-only line ends, a UTF-8 BOM, blank lines anywhere, leading spaces and tabs, and a
missing version are accepted; the key is the text before the *first* colon with surrounding
spaces and tabs removed (``Auto Image Url      :tftp://...`` gives ``Auto Image Url``), the
value everything after it, verbatim (so a URL's own colons stay in the value). Refused, with
the line number: no header, a setting outside a module, a line that is neither a setting nor
a module header, a key set twice in one module, a missing ``<<END OF FILE>>`` (a truncated
download), anything after it.

XML format (``.xml``; Figure 6)::

    <VOIP CONFIG FILE>
    <Digests>2.0002</Digests>
    <GLOBAL CONFIG MODULE>
    <Time_Zone>32</Time_Zone>
    </GLOBAL CONFIG MODULE>
    </VOIP_CONFIG_FILE>

Figure 6 is not well-formed XML (tags with spaces, a root opened as ``VOIP CONFIG FILE`` and
closed as ``VOIP_CONFIG_FILE``) and not consistent (``<Time_Zone>`` with an underscore,
``<Auto Image Url>`` with spaces), so it is read and written line by line, never with an XML
library. Writing follows the figure: its root open and close tags as printed, the version in
``<Digests>``, module tags with spaces, one element per setting on one line, no indentation,
CRLF line ends as in the text format. Keys are written with spaces replaced by underscores
(the ``<Time_Zone>`` form: the only one that could be an XML name); reading maps underscores
back to spaces and also accepts the spaced form (``<Auto Image Url>``), and either spelling
of the root. Values escape ``&``, ``<`` and ``>``; reading also accepts ``&quot;`` and
``&apos;`` and refuses any other ``&``. Values are kept verbatim: Figure 6's
``<Auto Image Url> tftp://...`` reads as a value with a leading space.

Names and values that could break either format are refused when rendering, the same rules
for both formats since the phone's request, not the configuration, picks the format
(``validate_config``): keys and module names must be non-empty, without control characters,
surrounding spaces, ``<``, ``>``, ``&`` or a leading ``/``; keys must also be free of ``:``
(it ends the key in the text format) and ``_`` (the XML format spells spaces that way, so
``Time_Zone`` and ``Time Zone`` would be one key); the module names ``VOIP CONFIG FILE``,
``VOIP_CONFIG_FILE`` and ``Digests`` are reserved. Values may hold anything but control
characters other than tab (a line break would start a new setting; a NUL truncates the value
in the phone's C string).

Placeholders (``substitute``): ``{{name}}`` (spaces inside the braces allowed, names of
letters, digits, ``_``, ``.``, ``-``) is replaced by the device's variable. ``{{{{`` writes a
literal ``{{``; ``}}`` needs no escape; any other ``{{`` (``{{}}``, ``{{{x}}``) is refused
as malformed. Substituted values are not scanned again.

Versions (``next_version``): ``<major>.<four digits>``, starting at ``2.0001`` like the
document's ``2.0002``; the last component is bumped when the content digest changes, and
``2.9999`` rolls over to ``3.0001`` (``.0000`` is never produced, so every major starts at
the same first version).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Final, NamedTuple, TypeAlias, cast

from acs.provisioning.errors import MissingVariablesError, ProvisioningError
from acs.provisioning.models import Format

Config: TypeAlias = dict[str, dict[str, str]]
#: What the functions accept: any ordered mapping of the same shape (dicts, JSON documents).
ConfigLike: TypeAlias = Mapping[str, Mapping[str, str]]

FIRST_VERSION: Final = "2.0001"
TEXT_HEADER: Final = "<<VOIP CONFIG FILE>>"
TEXT_VERSION: Final = "Version:"
TEXT_END: Final = "<<END OF FILE>>"
XML_OPEN: Final = "<VOIP CONFIG FILE>"
XML_CLOSE: Final = "</VOIP_CONFIG_FILE>"
XML_VERSION_TAG: Final = "Digests"
MAX_HEADER_LENGTH: Final = 64
MAX_VERSION_LENGTH: Final = MAX_HEADER_LENGTH - len(TEXT_HEADER + TEXT_VERSION) - len("\r\n")

_CRLF: Final = "\r\n"
_BOM: Final = b"\xef\xbb\xbf"
_BLANK: Final = " \t"
_XML_ROOTS: Final = frozenset({"VOIP CONFIG FILE", "VOIP_CONFIG_FILE"})
_RESERVED_MODULES: Final = frozenset(name.casefold() for name in (*_XML_ROOTS, XML_VERSION_TAG))

_CONTROL: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # all but tab
_MODULE_BAD: Final = re.compile(r"[\x00-\x1f\x7f<>&]")
_KEY_BAD: Final = re.compile(r"[\x00-\x1f\x7f<>&:_]")
_VERSION_RE: Final = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]*")
_NEXT_RE: Final = re.compile(r"([0-9]+)\.([0-9]{4})")
_PLACEHOLDER_RE: Final = re.compile(r"\{\{\{\{|\{\{[ \t]*([A-Za-z0-9_.-]+)[ \t]*\}\}|\{\{")

_XML_ELEMENT_RE: Final = re.compile(r"<([^<>/][^<>]*)>([^<]*)</([^<>]*)>")
_XML_OPEN_RE: Final = re.compile(r"<([^<>/][^<>]*)>")
_XML_CLOSE_RE: Final = re.compile(r"</([^<>]+)>")
_ENTITY_RE: Final = re.compile(r"&(?:(amp|lt|gt|quot|apos);)?")
_ENTITIES: Final = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


class ParsedFile(NamedTuple):
    """A configuration file read back: its version (None when it carries none) and content."""

    version: str | None
    config: Config


def merge(*layers: ConfigLike) -> Config:
    """Layer configurations: later layers override earlier ones key by key within a module.

    Modules and keys keep the position where they were first seen; an overridden key keeps
    its place and takes the later value. The ACS layers general (per model), then the
    user-named profile, then the device's own settings. The layers are not modified.

    >>> merge({"M": {"a": "1", "b": "2"}}, {"N": {"c": "3"}, "M": {"a": "9"}})
    {'M': {'a': '9', 'b': '2'}, 'N': {'c': '3'}}
    """
    merged: Config = {}
    for layer in layers:
        for module, keys in layer.items():
            merged.setdefault(module, {}).update(keys)
    return merged


def substitute(config: ConfigLike, variables: Mapping[str, str]) -> Config:
    """Fill ``{{name}}`` placeholders in the values from the device's variables.

    Only values are substituted (not keys or module names), once (a variable's value is not
    scanned for placeholders). ``{{{{`` stands for a literal ``{{``.

    Returns:
        A new configuration; ``config`` is not modified.

    Raises:
        MissingVariablesError: placeholders name variables that ``variables`` lacks; the
            error's ``names`` lists every one, in order of first appearance.
        ProvisioningError: a ``{{`` that opens no well-formed placeholder.
    """
    missing: dict[str, None] = {}  # an ordered set
    filled: Config = {}
    for module, keys in config.items():
        filled[module] = {
            key: _fill(value, variables, missing, (module, key)) for key, value in keys.items()
        }
    if missing:
        raise MissingVariablesError(tuple(missing))
    return filled


def _fill(
    value: str, variables: Mapping[str, str], missing: dict[str, None], where: tuple[str, str]
) -> str:
    _check_str(value, *where)

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "{{{{":
            return "{{"
        name = match.group(1)
        if name is None:
            raise ProvisioningError(
                f"<{where[0]}> {where[1]!r}: malformed placeholder at {value[match.start() :]!r} "
                "(write {{name}}, or {{{{ for a literal {{)"
            )
        if name not in variables:
            missing[name] = None
            return ""
        filled: object = variables[name]  # variables come from a JSON document too
        if not isinstance(filled, str):
            raise ProvisioningError(f"variable {name!r} is not a string")
        return filled

    return _PLACEHOLDER_RE.sub(replace, value)


def validate_config(config: ConfigLike) -> None:
    """Check that a configuration renders faithfully in both formats (module docstring).

    Raises:
        ProvisioningError: naming the first offending module, key or value.
    """
    for module, keys in config.items():
        _check_name(module, "module name", _MODULE_BAD, module)
        if module.casefold() in _RESERVED_MODULES:
            raise ProvisioningError(f"module name {module!r} is reserved by the file formats")
        # Configurations come from JSON documents: check the shapes the types promise.
        if not isinstance(cast(object, keys), Mapping):
            raise ProvisioningError(f"<{module}>: not a mapping of keys to values")
        for key, value in keys.items():
            _check_name(key, "key", _KEY_BAD, module)
            _check_str(value, module, key)
            if _CONTROL.search(value):
                raise ProvisioningError(
                    f"<{module}> {key!r}: value contains a line break or control character"
                )


def _check_str(value: object, module: str, key: str) -> None:
    if not isinstance(value, str):
        raise ProvisioningError(f"<{module}> {key!r}: value is not a string")


def _check_name(name: object, what: str, bad: re.Pattern[str], module: str) -> None:
    where = "" if what == "module name" else f"<{module}> "
    if not isinstance(name, str):
        raise ProvisioningError(f"{where}{what} {name!r} is not a string")
    if not name:
        raise ProvisioningError(f"{where}empty {what}")
    if name != name.strip(_BLANK) or name.startswith("/"):
        raise ProvisioningError(f"{where}{what} {name!r}: surrounding spaces or leading '/'")
    found = bad.search(name)
    if found:
        raise ProvisioningError(f"{where}{what} {name!r}: {found.group(0)!r} not allowed")


def _check_version(version: str) -> None:
    if len(version) > MAX_VERSION_LENGTH or not _VERSION_RE.fullmatch(version):
        raise ProvisioningError(
            f"version {version!r}: letters, digits, '.', '_', '-', "
            f"at most {MAX_VERSION_LENGTH} characters"
        )


def render_text(config: ConfigLike, version: str) -> bytes:
    """The text format (``.cfg``/``.txt``) of a configuration, UTF-8 with CRLF line ends.

    >>> render_text({"GLOBAL CONFIG MODULE": {"Time Zone": "32"}}, "2.0002").split(b"\\r\\n")[:4]
    [b'<<VOIP CONFIG FILE>>Version:2.0002', b'', b'<GLOBAL CONFIG MODULE>', b'Time Zone :32']

    Raises:
        ProvisioningError: a name or value ``validate_config`` refuses, or a bad version.
    """
    validate_config(config)
    _check_version(version)
    lines = [f"{TEXT_HEADER}{TEXT_VERSION}{version}"]
    for module, keys in config.items():
        lines += ["", f"<{module}>"]
        lines += [f"{key} :{value}" for key, value in keys.items()]
    lines += ["", TEXT_END]
    return _join(lines)


def render_xml(config: ConfigLike, version: str) -> bytes:
    """The XML format (``.xml``, Figure 6) of a configuration, UTF-8 with CRLF line ends.

    >>> render_xml({"GLOBAL CONFIG MODULE": {"Time Zone": "32"}}, "2.0002").split(b"\\r\\n")[2:4]
    [b'<GLOBAL CONFIG MODULE>', b'<Time_Zone>32</Time_Zone>']

    Raises:
        ProvisioningError: a name or value ``validate_config`` refuses, or a bad version.
    """
    validate_config(config)
    _check_version(version)
    lines = [XML_OPEN, f"<{XML_VERSION_TAG}>{version}</{XML_VERSION_TAG}>"]
    for module, keys in config.items():
        lines.append(f"<{module}>")
        for key, value in keys.items():
            tag = key.replace(" ", "_")
            lines.append(f"<{tag}>{_escape(value)}</{tag}>")
        lines.append(f"</{module}>")
    lines.append(XML_CLOSE)
    return _join(lines)


def render(config: ConfigLike, version: str, fmt: Format) -> bytes:
    """``render_text`` or ``render_xml``, as the requested file's format says."""
    if fmt == "text":
        return render_text(config, version)
    if fmt == "xml":
        return render_xml(config, version)
    raise ProvisioningError(f"unknown configuration format {fmt!r}")


def _join(lines: list[str]) -> bytes:
    return "".join(line + _CRLF for line in lines).encode()


def _escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _lines(data: bytes) -> list[tuple[int, str]]:
    """The non-blank lines of a file with their 1-based numbers, line ends removed."""
    try:
        text = data.removeprefix(_BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProvisioningError(f"not UTF-8 text (byte {exc.start})") from None
    lines = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if "\r" in line:
            raise ProvisioningError(f"line {number}: carriage return inside a line")
        if line.strip(_BLANK):
            lines.append((number, line))
    if not lines:
        raise ProvisioningError("empty file")
    return lines


def parse_text(data: bytes) -> ParsedFile:
    """Read a text-format (``.cfg``/``.txt``) configuration file; see the module docstring.

    Returns:
        The version from the header (None if it has none) and the configuration.

    Raises:
        ProvisioningError: the data is not such a file; the message gives the line.
    """
    lines = _lines(data)
    version = _text_version(*lines[0])
    config: Config = {}
    module: dict[str, str] | None = None
    module_name = ""
    ended = False
    for number, line in lines[1:]:
        stripped = line.strip(_BLANK)
        if ended:
            raise ProvisioningError(f"line {number}: content after {TEXT_END}")
        if stripped == TEXT_END:
            ended = True
        elif stripped.startswith("<<"):
            raise ProvisioningError(f"line {number}: unexpected {stripped!r}")
        elif stripped.startswith("<"):
            module_name = stripped[1:-1].strip(_BLANK)
            if not stripped.endswith(">") or not module_name or _MODULE_BAD.search(module_name):
                raise ProvisioningError(f"line {number}: malformed module header {stripped!r}")
            module = config.setdefault(module_name, {})
        elif module is None:
            raise ProvisioningError(f"line {number}: setting before any <MODULE> header")
        else:
            key, colon, value = line.partition(":")
            key = key.strip(_BLANK)
            if not colon or not key:
                raise ProvisioningError(
                    f"line {number}: expected 'Key :value' or '<MODULE NAME>', got {stripped!r}"
                )
            if key in module:
                raise ProvisioningError(f"line {number}: {key!r} set twice in <{module_name}>")
            module[key] = value
    if not ended:
        raise ProvisioningError(f"no {TEXT_END} line: the file is truncated")
    return ParsedFile(version, config)


def _text_version(number: int, line: str) -> str | None:
    line = line.strip(_BLANK)
    if not line.startswith(TEXT_HEADER):
        raise ProvisioningError(f"line {number}: expected the {TEXT_HEADER} header")
    rest = line.removeprefix(TEXT_HEADER).strip(_BLANK)
    if not rest:
        return None
    if not rest.startswith(TEXT_VERSION):
        raise ProvisioningError(f"line {number}: expected {TEXT_VERSION} after {TEXT_HEADER}")
    # The version is opaque to the phone (it shows it on its web page): kept as written.
    return rest.removeprefix(TEXT_VERSION).strip(_BLANK) or None


def parse_xml(data: bytes) -> ParsedFile:
    """Read an XML-format (``.xml``, Figure 6) configuration file; see the module docstring.

    Returns:
        The version from ``<Digests>`` (None if absent or empty) and the configuration.

    Raises:
        ProvisioningError: the data is not such a file; the message gives the line.
    """
    lines = _lines(data)
    number, first = lines[0]
    head = first.strip(_BLANK)
    if not (head.startswith("<") and head.endswith(">") and head[1:-1] in _XML_ROOTS):
        raise ProvisioningError(f"line {number}: expected {XML_OPEN}")
    version: str | None = None
    config: Config = {}
    module: dict[str, str] | None = None
    module_name = ""
    seen_version = closed = False
    for number, raw in lines[1:]:
        line = raw.strip(_BLANK)
        if closed:
            raise ProvisioningError(f"line {number}: content after {XML_CLOSE}")
        if element := _XML_ELEMENT_RE.fullmatch(line):
            tag, text, end = element.groups()
            if end != tag:
                raise ProvisioningError(f"line {number}: <{tag}> closed by </{end}>")
            value = _unescape(number, text)
            if module is not None:
                key = tag.replace("_", " ")
                if key in module:
                    raise ProvisioningError(f"line {number}: {key!r} set twice in <{module_name}>")
                module[key] = value
            elif tag == XML_VERSION_TAG and not seen_version and not config:
                version = value.strip(_BLANK) or None
                seen_version = True
            else:
                raise ProvisioningError(f"line {number}: <{tag}> outside a module")
        elif closing := _XML_CLOSE_RE.fullmatch(line):
            name = closing.group(1)
            if module is not None and name == module_name:
                module = None
            elif module is None and name in _XML_ROOTS:
                closed = True
            else:
                expected = f"</{module_name}>" if module is not None else XML_CLOSE
                raise ProvisioningError(f"line {number}: </{name}> where {expected} belongs")
        elif opening := _XML_OPEN_RE.fullmatch(line):
            if module is not None:
                raise ProvisioningError(f"line {number}: <{module_name}> is not closed")
            module_name = opening.group(1)
            if module_name.casefold() in _RESERVED_MODULES:
                raise ProvisioningError(f"line {number}: unexpected <{module_name}>")
            module = config.setdefault(module_name, {})
        else:
            raise ProvisioningError(
                f"line {number}: expected <Tag>value</Tag>, <MODULE NAME> or </MODULE NAME>, "
                f"got {line!r}"
            )
    if not closed:
        raise ProvisioningError(f"no {XML_CLOSE} line: the file is truncated")
    return ParsedFile(version, config)


def _unescape(number: int, text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        entity = match.group(1)
        if entity is None:
            raise ProvisioningError(f"line {number}: a literal '&' must be written &amp;")
        return _ENTITIES[entity]

    return _ENTITY_RE.sub(replace, text)


def parse(data: bytes, fmt: Format) -> ParsedFile:
    """``parse_text`` or ``parse_xml``, as the file's format says."""
    parsers: dict[str, Callable[[bytes], ParsedFile]] = {"text": parse_text, "xml": parse_xml}
    if fmt not in parsers:
        raise ProvisioningError(f"unknown configuration format {fmt!r}")
    return parsers[fmt](data)


def content_digest(config: ConfigLike) -> str:
    """SHA-256 (hex) of a configuration's content: modules, keys and values, in order.

    Independent of the version and of the format, so re-rendering the same content under a
    new version, or as XML instead of text, gives the same digest; a different order is a
    different file and a different digest. Compare it with the digest stored for the last
    render to decide the next version (``next_version``).

    The hashed bytes are ``acs-provisioning-config-v1`` and a newline, then the compact UTF-8
    JSON ``[[module, [[key, value], ...]], ...]`` (no spaces, non-ASCII unescaped).
    """
    canonical = json.dumps(
        [[module, list(keys.items())] for module, keys in config.items()],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    # The prefix names the canonical form; a new form gets a new prefix.
    return hashlib.sha256(b"acs-provisioning-config-v1\n" + canonical.encode()).hexdigest()


def next_version(previous_version: str | None, previous_digest: str | None, digest: str) -> str:
    """The version to write for content whose digest is ``digest``.

    The first render (no previous version) is ``2.0001``. The version stays put when the
    digest is the previous one, since a phone skips a file whose version it already has and
    an unchanged file must not look new; otherwise its last component goes up by one, and
    ``2.9999`` rolls over to ``3.0001``.

    >>> next_version("2.0009", "aa", "bb"), next_version("2.0009", "aa", "aa")
    ('2.0010', '2.0009')

    Raises:
        ProvisioningError: ``previous_version`` is not ``<digits>.<four digits>``.
    """
    if previous_version is None:
        return FIRST_VERSION
    match = _NEXT_RE.fullmatch(previous_version)
    if match is None:
        raise ProvisioningError(
            f"previous version {previous_version!r} is not <major>.<four digits>"
        )
    if previous_digest == digest:
        return previous_version
    major, minor = int(match.group(1)), int(match.group(2))
    if minor >= 9999:
        return f"{major + 1}.0001"
    return f"{major}.{minor + 1:04d}"
