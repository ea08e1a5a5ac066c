"""Fanvil phone models and the names of the files they ask for (Auto Provision Description
v1.1, section 4.1 "By series" and section 4.2 "URL").

A phone downloads up to two configuration files at boot: the *general configuration file*,
whose name is fixed per model (the tables of section 4.1, reproduced in ``MODELS`` character
for character, including the table's ``f0i20SVhw1.100.cfg`` for the i20S), and a *device
configuration file*: either named after its MAC address with the separators removed
(``001565113af8.cfg``), or a name chosen by the user (``name1.cfg``, or the ID typed on the
LCD for ``$input.cfg``). Supported extensions are ``cfg``, ``txt`` and ``xml`` (section 2.1);
``cfg`` and ``txt`` hold the text format, ``xml`` the XML format (see ``configfile``).

``resolve`` turns a request path (and query) into what the phone asked for:

- ``GeneralFile`` when the last path segment is a model's general file name. Matching is
  case-insensitive (ASCII): TFTP and Windows servers are case-insensitive and operators
  retype names, while no two names of the table differ only in case. The general name wins
  over the MAC reading: the Android names ``f0F060000000.cfg``, ``f0C060000000.cfg`` and
  ``f0C040000000.cfg`` are also twelve hexadecimal digits, and the phone itself cannot tell
  them apart from a MAC file either (section 1.2 step 4: one name, one download). A phone
  with such a MAC reaches its own file through the query form ``?mac=``.
- ``MacFile`` when the stem is exactly twelve hexadecimal digits, either case; ``mac`` is
  lower case. Separated forms (``00:15:65:11:3a:f8.cfg``) are refused, ``:`` being outside
  the name charset: the document says the separators are removed, so no phone asks for them.
  ``00-15-65-11-3a-f8.cfg`` is a valid user name and resolves to a ``NamedFile``.
- ``NamedFile`` otherwise: a user-named file or an ``$input`` ID. ``name`` is the stem, case
  kept (IDs are assigned by the administrator; HTTP paths are case-sensitive).

The query forms of section 4.3 (``http://ip/mac.cfg?mac=$mac.cfg`` and
``http://ip/input.cfg?input=$input.cfg``) name the file in the ``mac`` or ``input``
parameter; the path's last segment is then only checked for safety. Nothing is
percent-decoded: ``%`` is outside the name charset, so encoded traversal (``%2e%2e``) and
double encoding are refused rather than interpreted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Literal, TypeAlias

from acs.provisioning.errors import ProvisioningError

Format: TypeAlias = Literal["text", "xml"]

#: Longest file name (last path segment, extension included) and longest path we look at.
MAX_NAME_LENGTH: Final = 128
MAX_PATH_LENGTH: Final = 1024

_EXTENSIONS: Final[dict[str, Format]] = {"cfg": "text", "txt": "text", "xml": "xml"}
# Letters, digits, '.', '_', '-'; no leading dot, so no '.', '..' or hidden names.
_NAME_RE: Final = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_MAC_RE: Final = re.compile(r"[0-9A-Fa-f]{12}")
_MAC_SEPARATED_RE: Final = re.compile(
    r"[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}"
    r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}"
)


class Family(StrEnum):
    """The three series of section 4.1, each with its own general-file naming scheme."""

    #: "X series low-end color-screen, H series, and access control series":
    #: ``f0<model>hw1.100.cfg``
    LOW_END = "low-end"
    #: "X series high-end color-screen": ``F0V...00000.cfg``
    HIGH_END = "high-end"
    #: "Android telephone sets": ``f0<model>0000000.cfg``; no logo and no mmiset (section 2.5)
    ANDROID = "android"


@dataclass(frozen=True, slots=True)
class Model:
    """One row of the tables of section 4.1.

    ``access_control`` marks the models the document lists for the access table
    (``Auto AList Url``, section 4.4 item 7): i31s, i30, i23s, i20s, i32v and i33V.
    """

    name: str
    general_file: str
    family: Family
    access_control: bool = False


def _table(family: Family, rows: str, access: frozenset[str] = frozenset()) -> list[Model]:
    models = []
    for row in rows.strip().splitlines():
        name, general_file = row.split()
        models.append(Model(name, general_file, family, name in access))
    return models


# Copied from the document's tables, spelling included (I32V/I33V with a capital I; the
# i20S file name with its "SV").
_ROWS: Final = (
    _table(
        Family.LOW_END,
        """
        X1      f0X1hw1.100.cfg
        X2      f0X2hw1.100.cfg
        X3S     f0X3Shw1.100.cfg
        X4      f0X4hw1.100.cfg
        H2S     f0H2Shw1.100.cfg
        H3      f0H3hw1.100.cfg
        H5      f0H5hw1.100.cfg
        i16V    f0i16Vhw1.100.cfg
        i20S    f0i20SVhw1.100.cfg
        i30     f0i30hw1.100.cfg
        i23S    f0i23Shw1.100.cfg
        i31S    f0i31Shw1.100.cfg
        i12     f0i12hw1.100.cfg
        i18S    f0i18Shw1.100.cfg
        PA2     f0PA2hw1.100.cfg
        i13W    f0i13Whw1.100.cfg
        I32V    f0i32Vhw1.100.cfg
        I33V    f0i33Vhw1.100.cfg
        IW30    f0iW30hw1.100.cfg
        EIM-01  f0EIM-01hw1.100.cfg
        """,
        access=frozenset({"i31S", "i30", "i23S", "i20S", "I32V", "I33V"}),
    )
    + _table(
        Family.HIGH_END,
        """
        X5S     F0V0X5S00000.cfg
        X6      F0V00X600000.cfg
        X7      F0V00X700000.cfg
        X7C     F0V0X7C00000.cfg
        X210    F0VX21000000.cfg
        """,
    )
    + _table(
        Family.ANDROID,
        """
        F600    f0F060000000.cfg
        C600    f0C060000000.cfg
        C400    f0C040000000.cfg
        """,
    )
)

#: Every model of the document, by name as the tables spell it, in the tables' order.
MODELS: Final = MappingProxyType({m.name: m for m in _ROWS})

_BY_FOLDED_NAME: Final = {m.name.casefold(): m for m in _ROWS}
_BY_FOLDED_FILE: Final = {m.general_file.casefold(): m for m in _ROWS}


@dataclass(frozen=True, slots=True)
class GeneralFile:
    """The phone asked for its model's general configuration file (always text: ``.cfg``)."""

    model: str

    @property
    def fmt(self) -> Format:
        return "text"


@dataclass(frozen=True, slots=True)
class MacFile:
    """The phone asked for the file named after its MAC (``mac``: 12 lower-case hex digits)."""

    mac: str
    fmt: Format


@dataclass(frozen=True, slots=True)
class NamedFile:
    """The phone asked for a user-named file or an ``$input`` ID (``name``: the stem)."""

    name: str
    fmt: Format


ProvisioningRequest: TypeAlias = GeneralFile | MacFile | NamedFile


def find_model(name: str) -> Model:
    """The table row of a model, by name, case-insensitively (``"i32v"`` finds ``I32V``).

    Raises:
        ProvisioningError: the document lists no such model.
    """
    found = _BY_FOLDED_NAME.get(name.casefold())
    if found is None:
        raise ProvisioningError(f"unknown phone model {name!r}")
    return found


def general_file_name(model: str) -> str:
    """The general configuration file name of a model, exactly as the document's table gives it.

    >>> general_file_name("X6")
    'F0V00X600000.cfg'

    Raises:
        ProvisioningError: the document lists no such model.
    """
    return find_model(model).general_file


def model_for_general_file(name: str) -> str | None:
    """The model whose general configuration file is ``name`` (case-insensitive), else None."""
    found = _BY_FOLDED_FILE.get(name.casefold())
    return found.name if found else None


def normalize_mac(mac: str) -> str:
    """A MAC address as 12 lower-case hex digits, the form of MAC file names (section 4.1).

    Accepts ``001565113AF8``, ``00:15:65:11:3a:f8``, ``00-15-65-11-3A-F8`` and
    ``0015.6511.3af8``.

    Raises:
        ProvisioningError: anything else.
    """
    if _MAC_RE.fullmatch(mac) or _MAC_SEPARATED_RE.fullmatch(mac):
        return re.sub(r"[:.-]", "", mac).lower()
    raise ProvisioningError(f"not a MAC address: {mac!r}")


def mac_file_name(mac: str, fmt: Format = "text") -> str:
    """The file name a phone asks for with ``$mac.cfg`` (or ``$mac.xml``): ``001565113af8.cfg``.

    Args:
        mac: the MAC address in any form ``normalize_mac`` accepts.
        fmt: ``"text"`` gives ``.cfg``, ``"xml"`` gives ``.xml``.

    Raises:
        ProvisioningError: not a MAC address, or an unknown format.
    """
    if fmt == "text":
        return f"{normalize_mac(mac)}.cfg"
    if fmt == "xml":
        return f"{normalize_mac(mac)}.xml"
    raise ProvisioningError(f"unknown configuration format {fmt!r}")


def resolve(path: str, query: str = "") -> ProvisioningRequest:
    """What a phone asks for, from its request path and query (see the module docstring).

    Args:
        path: the request path, not percent-decoded (``/X4/001565113af8.cfg``). It may carry
            its query after ``?`` if ``query`` is empty.
        query: the query string, with or without its leading ``?``. A ``mac`` or ``input``
            parameter (section 4.3's ``mac.cfg?mac=$mac.cfg`` and
            ``input.cfg?input=$input.cfg``) names the file; other parameters are ignored.

    Returns:
        ``GeneralFile``, ``MacFile`` or ``NamedFile``.

    Raises:
        ProvisioningError: an unsafe, empty or overlong name or path segment, an extension
            other than cfg/txt/xml, a ``mac`` parameter that is not a MAC file name, or an
            ambiguous query (both ``mac`` and ``input``, or either twice).
    """
    if "?" in path:
        if query:
            raise ProvisioningError("query given twice: in the path and as an argument")
        path, _, query = path.partition("?")
    if len(path) > MAX_PATH_LENGTH:
        raise ProvisioningError(f"path longer than {MAX_PATH_LENGTH} characters")
    *directories, last = path.split("/")
    for segment in directories:
        if segment:  # leading, trailing and doubled slashes are harmless
            _check_name(segment, "path segment")

    kind, value = _query_file(query)
    if kind is None:
        return _resolve_name(last)
    if last:
        _check_name(last, "path segment")
    if kind == "input":
        return _resolve_name(value)
    stem, fmt = _split(value)
    if not _MAC_RE.fullmatch(stem):
        raise ProvisioningError(f"mac parameter {value!r} is not a MAC file name")
    return MacFile(stem.lower(), fmt)


def _query_file(query: str) -> tuple[Literal["mac", "input"] | None, str]:
    found: list[tuple[Literal["mac", "input"], str]] = []
    for part in query.removeprefix("?").split("&"):
        key, _, value = part.partition("=")
        if key == "mac":
            found.append(("mac", value))
        elif key == "input":
            found.append(("input", value))
    if not found:
        return None, ""
    if len(found) > 1:
        names = " and ".join(key for key, _ in found)
        raise ProvisioningError(f"ambiguous query: {names} both name a file")
    return found[0]


def _check_name(name: str, what: str) -> None:
    if not name:
        raise ProvisioningError(f"empty {what}")
    if len(name) > MAX_NAME_LENGTH:
        raise ProvisioningError(f"{what} longer than {MAX_NAME_LENGTH} characters")
    if not _NAME_RE.fullmatch(name) or ".." in name:
        raise ProvisioningError(
            f"unsafe {what} {name!r}: only letters, digits, '.', '_' and '-', "
            "not starting with '.', no '..'"
        )


def _split(name: str) -> tuple[str, Format]:
    _check_name(name, "file name")
    stem, dot, ext = name.rpartition(".")
    fmt = _EXTENSIONS.get(ext.lower()) if dot else None
    if fmt is None:
        raise ProvisioningError(f"file name {name!r} does not end in .cfg, .txt or .xml")
    return stem, fmt


def _resolve_name(name: str) -> ProvisioningRequest:
    stem, fmt = _split(name)
    general = model_for_general_file(name)
    if general is not None:
        return GeneralFile(general)
    if _MAC_RE.fullmatch(stem):
        return MacFile(stem.lower(), fmt)
    return NamedFile(stem, fmt)
