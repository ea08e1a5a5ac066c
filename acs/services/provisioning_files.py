"""One namespace of provisioning files, the same over HTTP(S), TFTP and FTP.

A phone asks for a *name*: the last segment of the path it was given
(``tftp://acs/X6/001565113af8.cfg``, ``ftp://user:pw@acs/x6-2.5.0.z``,
``http://acs:7547/prov/F0V00X600000.cfg``). Directories before it mean nothing (a phone's
URL may carry any), but each must be a safe name too. ``ProvisioningFiles.open`` maps the name
to what is sent:

1. a **stored file** of exactly that name (firmware, phone books, certificates, backgrounds,
   mmiset, dialPeer, accessList, or any configuration an operator uploaded), as stored;
2. else a **rendered configuration**: the model's general file under its document name, a
   MAC file (any case, ``.cfg``/``.txt``/``.xml``), a user-named file or an ``$input`` id
   (``acs.provisioning.models.resolve``).

A stored file wins over a rendering of the same name: its name was chosen by an operator,
for this file, while a rendered name is a pattern; and a carrier moving from a TFTP directory
uploads its files under the names its phones already ask for. Names are case-sensitive for
stored files and follow ``models.resolve`` for configurations (MAC and general names in any
case). The HTTP query forms of section 4.3 (``mac.cfg?mac=$mac.cfg``,
``input.cfg?input=$input.cfg``) name a configuration and never a stored file.

No name reaches the filesystem: stored bytes are found by their digest, configurations are
rendered from the database. A name is letters, digits, ``.``, ``_`` and ``-``, not starting
with ``.``, without ``..``: ``..``, NUL, ``\\``, ``%`` (encoded separators or dots) and
control characters are refused (``BadName``) before any lookup, on every protocol.

Who may fetch what is one decision, ``may_read``, that HTTP, HTTPS and FTP make through
``open``: a phone's MAC file (stored or rendered, asked for by MAC or by ``$input`` id) goes
to that phone's own credentials, to a signed URL, and to the shared pair only with
``ACS_PROVISIONING_SHARED_READS_ALL``; general files, named profiles and other stored files
to anyone authenticated. TFTP has no authentication (``ACS_TFTP_ALLOW`` says who may ask):
it is ``OPEN``, as everything is with ``ACS_PROVISIONING_AUTH=none``. A refusal is
``NotYours``, answered as a missing file (nothing says that it exists); the log says why.

Every transfer, whatever its protocol, is one log line ``file transfer`` and one count
(``record``): ``Transfer`` says which fields.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Literal

from sqlalchemy import and_, bindparam, literal, select

from acs import logs
from acs.db import tables
from acs.db.errors import StorageError
from acs.provisioning import models as phone_models
from acs.provisioning.errors import ProvisioningError
from acs.services import errors, metrics, redirects, renderings
from acs.services import provisioning as provisioning_service
from acs.services.cpe_auth import CpeAuthenticator, DeviceCredentials, device_credentials
from acs.services.files import FileMeta, FileNotFound, FileStore
from acs.services.single_flight import SingleFlight

log = logging.getLogger("acs.files")

MAX_PATH_LENGTH: Final = 1024
MAX_NAME_LENGTH: Final = 200  # the file store's longest name
_SEGMENT_RE: Final = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_STORED_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # files.check_name's


class BadName(errors.Invalid):
    """A path that names nothing this namespace can hold: empty, too long, or with a segment
    outside the name charset (``..``, NUL, ``\\``, ``%``...). Never looked up."""


class NoSuchFile(errors.NotFound):
    """No stored file has the name, and no configuration renders under it."""


class NotYours(NoSuchFile):
    """A device asked for another phone's MAC file: answered as ``NoSuchFile``; the log
    says why."""


class Redirected(Exception):
    """The phone is assigned another provisioning server (``acs.services.redirects``):
    answer HTTP's 302 to ``location``."""

    def __init__(self, location: str):
        super().__init__(location)
        self.location = location


class ContentUnavailable(StorageError):
    """A stored file's bytes are missing from the file store (``<data dir>/files`` not the
    shared storage it should be?): try again later, as for any storage failure."""


@dataclass(frozen=True, slots=True)
class ProvisioningFile:
    """What to send for a name: a rendered configuration (``content``) or a stored file
    (``path``, opened by whoever sends it). ``etag`` is the stored file's SHA-256 or the
    configuration's version; ``mac`` the phone a MAC file is for."""

    name: str
    size: int
    content_type: str
    etag: str
    content: bytes | None = None
    path: Path | None = None
    sha256: str | None = None
    version: str | None = None
    mac: str | None = None

    @property
    def stored(self) -> bool:
        return self.path is not None


def split_path(path: str) -> str:
    """The name a path asks for (its last segment), once every segment is found safe.

    Leading, trailing-free doubled slashes are harmless (``//X6//a.cfg``); the path may be
    absolute or relative (TFTP clients send either).

    Raises:
        BadName: see the module docstring.
    """
    if len(path) > MAX_PATH_LENGTH:
        raise BadName(f"path longer than {MAX_PATH_LENGTH} characters")
    *directories, name = path.split("/")
    for segment in directories:
        if segment:
            _check_segment(segment, "path segment")
    _check_segment(name, "file name")
    return name


def _check_segment(segment: str, what: str) -> None:
    if not segment:
        raise BadName(f"empty {what}")
    if len(segment) > MAX_NAME_LENGTH:
        raise BadName(f"{what} longer than {MAX_NAME_LENGTH} characters")
    if not _SEGMENT_RE.fullmatch(segment) or ".." in segment:
        raise BadName(
            f"unsafe {what} {segment!r}: only letters, digits, '.', '_' and '-', "
            "not starting with '.', no '..'"
        )


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asks for files, as its protocol proved it: ``open`` (TFTP, or
    ``ACS_PROVISIONING_AUTH=none``), ``signed`` (a signed URL, bound to its path),
    ``shared`` (the shared CPE pair) or ``phone`` (a phone's own credentials; ``mac`` is
    that phone's)."""

    auth: Literal["open", "signed", "shared", "phone"]
    mac: str | None = None

    def __str__(self) -> str:
        return f"phone {self.mac}" if self.auth == "phone" else self.auth


OPEN: Final = Requester("open")
SIGNED: Final = Requester("signed")
SHARED: Final = Requester("shared")


def may_read(requester: Requester, mac: str | None, *, shared_reads_all: bool) -> bool:
    """Whether ``requester`` may have a file; ``mac``: the phone it is the MAC file of
    (also when asked for by ``$input`` id), None for every other file."""
    if mac is None or requester.auth in ("open", "signed"):
        return True
    if requester.auth == "phone":
        return requester.mac == mac
    return shared_reads_all


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a username's password is checked against: the shared pair (``credentials``
    None: the authenticator's own) or one phone's HA1s."""

    requester: Requester
    credentials: DeviceCredentials | None


class ProvisioningFiles:
    """The resolver every protocol uses (see the module docstring), and the password check of
    the protocols that send one in clear (FTP)."""

    def __init__(
        self,
        files: FileStore,
        provisioning: provisioning_service.Provisioning,
        authenticator: CpeAuthenticator,
    ):
        self.files = files
        self.provisioning = provisioning
        self.authenticator = authenticator
        self.settings = provisioning.settings
        self.chunks = Chunks(self.settings.file_cache_mb << 20)
        self._opening: SingleFlight[tuple[Any, ...], ProvisioningFile] = SingleFlight()

    def reader(self, found: ProvisioningFile, offset: int = 0) -> Reader:
        """The bytes of ``found`` from ``offset``, for a file server to send."""
        return Reader(found, self.chunks, offset)

    async def credentials(self, username: str) -> Credentials | None:
        """Whose a username is: the shared pair's, or the phone's that was given it
        (``PUT /api/v1/phones/{mac}/credentials``); None: nobody's. One read at most.

        Raises:
            StorageError (and the drivers' errors): the phones could not be read.
        """
        if username == self.authenticator.shared.username:
            return Credentials(SHARED, None)
        async with self.provisioning.db.read() as conn:
            row = (await conn.execute(_PHONE_CREDENTIALS, {"username": username})).first()
        if row is None:
            return None
        own = device_credentials(username, row.prov_ha1_md5, row.prov_ha1_sha256)
        return None if own is None else Credentials(Requester("phone", row.mac), own)

    async def login(self, username: str, password: str) -> Requester | None:
        """Who logged in with a username and a cleartext password (FTP), or None: the shared
        pair, or a phone's own credentials (checked against their HA1). With
        ``ACS_PROVISIONING_AUTH=none`` anyone may fetch anything.

        Raises:
            StorageError (and the drivers' errors): the phones could not be read.
        """
        if self.settings.provisioning_auth == "none":
            return OPEN
        found = await self.credentials(username)
        if found is None or not self.authenticator.password_matches(
            username, password, found.credentials
        ):
            return None
        return found.requester

    def may_read(self, requester: Requester, mac: str | None) -> bool:
        """``may_read`` with this server's ``ACS_PROVISIONING_SHARED_READS_ALL``."""
        return may_read(
            requester, mac, shared_reads_all=self.settings.provisioning_shared_reads_all
        )

    async def stored(self, path: str) -> FileMeta | None:
        """The stored file a path names, if any: a read, nothing rendered (what the HTTP file
        server checks a content-bound token against before it authenticates anything else).

        Raises:
            BadName: the path is unsafe.
        """
        name = split_path(path)
        if not _STORED_NAME_RE.fullmatch(name):
            return None
        try:
            return await self.files.get(name)
        except FileNotFound:
            return None

    async def open(
        self,
        path: str,
        *,
        query: str = "",
        base_url: str,
        now: datetime,
        requester: Requester,
        redirect: bool = False,
    ) -> ProvisioningFile:
        """What to send for ``path`` (and an HTTP ``query``). Identical requests in flight
        at once share one lookup (a thousand phones booting ask for the same files).

        Args:
            path: as the protocol gave it, not percent-decoded (HTTP's router already decoded
                it once: ``%`` left in it is refused).
            query: an HTTP query; its ``mac`` or ``input`` parameter names a configuration.
            base_url: where the phone reaches the CPE-facing HTTP listener, for the signed
                URLs a configuration's ``AUTOUPDATE`` module carries.
            now: the time of the request.
            requester: who asks (``may_read`` decides).
            redirect: the protocol can redirect (HTTP): a phone with a redirect (asked for
                by its MAC file, or asking with its own credentials) is sent there.

        Raises:
            BadName: an unsafe path or query.
            Redirected: ``redirect`` and the phone is assigned elsewhere.
            NoSuchFile: nothing under that name (``NotYours``: a MAC file the requester may
                not have).
            ProvisioningError: the configuration cannot be rendered (missing variables...).
            ContentUnavailable, StorageError (and the drivers' errors): try again later.
        """
        key = (path, query, base_url, requester, redirect)
        return await self._opening.run(
            key,
            lambda: self._open(
                path,
                query=query,
                base_url=base_url,
                now=now,
                requester=requester,
                redirect=redirect,
            ),
        )

    async def _open(
        self,
        path: str,
        query: str,
        base_url: str,
        now: datetime,
        requester: Requester,
        redirect: bool,
    ) -> ProvisioningFile:
        name = split_path(path)
        try:
            by_query = phone_models.resolve(name, query) if _names_file(query) else None
        except ProvisioningError as exc:
            raise BadName(str(exc)) from None
        wanted = by_query
        if wanted is None:
            try:
                wanted = phone_models.resolve(name)
            except ProvisioningError:
                wanted = None  # not a configuration's name (an extension other than cfg...)
        asked_mac = wanted.mac if isinstance(wanted, phone_models.MacFile) else None
        phone = asked_mac or requester.mac
        # one read: the stored file of that name, the kept rendering of what it asks for,
        # and the phone's redirect
        stored_name = name if by_query is None and _STORED_NAME_RE.fullmatch(name) else ""
        kept_key = renderings.key(wanted) if wanted is not None else ""
        params = {
            "name": stored_name,
            "key": kept_key,
            "base_url": base_url,
            "prefixes": redirects.prefixes(phone) if redirect and phone else [],
        }
        async with self.provisioning.db.read() as conn:
            row = (await conn.execute(_LOOKUP, params)).first()
        if row is not None and row.redirect is not None and phone is not None:
            raise Redirected(redirects.location(row.redirect, phone, name))
        if asked_mac is not None:
            self._check(requester, asked_mac, name)
        if row is not None and row.sha256 is not None:
            blob = self.files.blob_path(row.sha256)
            if not blob.is_file():
                log.error("file %s: content %s missing from %s", row.name, row.sha256, blob)
                raise ContentUnavailable(f"the content of {row.name!r} is missing")
            return ProvisioningFile(
                row.name,
                row.size,
                row.content_type,
                row.sha256,
                path=blob,
                sha256=row.sha256,
                mac=asked_mac,
            )
        if wanted is None:
            raise NoSuchFile(f"no file {name!r}")
        if row is not None and row.version is not None:
            if row.mac is not None:  # an $input id resolves to its phone's MAC file
                self._check(requester, row.mac, name)
            content = bytes(row.content)
            return ProvisioningFile(
                row.file_name,
                len(content),
                row.kept_type,
                row.version,
                content=content,
                version=row.version,
                mac=row.mac,
            )
        try:
            rendered = await self.provisioning.render_kept(
                wanted, key=kept_key, base_url=base_url, now=now
            )
        except provisioning_service.NotFound as exc:
            raise NoSuchFile(str(exc)) from None
        if rendered.mac is not None:
            self._check(requester, rendered.mac, name)
        return ProvisioningFile(
            rendered.file_name,
            len(rendered.content),
            rendered.content_type,
            rendered.version,
            content=rendered.content,
            version=rendered.version,
            mac=rendered.mac,
        )

    async def redirect_for(self, path: str, query: str = "") -> str | None:
        """Where the phone a path names by MAC is redirected (HTTP asks before it answers a
        401: a phone sent elsewhere has no credentials here), or None.

        Raises:
            StorageError (and the drivers' errors): the redirects could not be read.
        """
        try:
            name = split_path(path)
            wanted = phone_models.resolve(name, query if _names_file(query) else "")
        except ProvisioningError:  # BadName too: no phone's name
            return None
        if not isinstance(wanted, phone_models.MacFile):
            return None
        async with self.provisioning.db.read() as conn:
            url = await conn.scalar(redirects.LONGEST, {"prefixes": redirects.prefixes(wanted.mac)})
        return None if url is None else redirects.location(url, wanted.mac, name)

    def _check(self, requester: Requester, mac: str, name: str) -> None:
        if not self.may_read(requester, mac):
            raise NotYours(f"no file {name!r}")


_PHONE_CREDENTIALS: Final = select(
    tables.phones.c.mac, tables.phones.c.prov_ha1_md5, tables.phones.c.prov_ha1_sha256
).where(tables.phones.c.prov_username == bindparam("username"))


_f, _r = tables.files, tables.renderings
_LOOKUP: Final = select(
    _f.c.name,
    _f.c.sha256,
    _f.c.size,
    _f.c.content_type,
    _r.c.file_name,
    _r.c.content_type.label("kept_type"),
    _r.c.version,
    _r.c.mac,
    _r.c.content,
    redirects.LONGEST.scalar_subquery().label("redirect"),
).select_from(
    select(literal(1).label("one"))
    .subquery()
    .outerjoin(_f, _f.c.name == bindparam("name"))
    .outerjoin(_r, and_(_r.c.key == bindparam("key"), _r.c.base_url == bindparam("base_url")))
)

READ_AHEAD: Final = 64 * 1024


class Chunks:
    """Chunks of stored files (``READ_AHEAD`` bytes each, at multiples of it), kept in memory
    up to ``budget`` bytes, the least recently used dropped first. A blob is named by its
    SHA-256 and never changes, so a chunk read for one phone serves every phone fetching the
    same firmware: 1,000 phones booting at once read it once, not once each, and a transfer
    that finds its chunk here needs no thread. Reads of the same chunk in flight are shared."""

    def __init__(self, budget: int):
        self.budget = budget
        self.size = 0
        self._kept: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._reading: SingleFlight[tuple[str, int], bytes] = SingleFlight()

    async def get(self, path: Path, sha256: str, index: int) -> bytes:
        """Chunk ``index`` of the blob at ``path``.

        Raises:
            OSError: the blob cannot be read.
        """
        key = (sha256, index)
        chunk = self._kept.get(key)
        if chunk is not None:
            self._kept.move_to_end(key)
            return chunk
        return await self._reading.run(key, lambda: self._read(key, path))

    async def _read(self, key: tuple[str, int], path: Path) -> bytes:
        chunk = await asyncio.to_thread(_read_chunk, path, key[1] * READ_AHEAD)
        self._kept[key] = chunk
        self.size += len(chunk)
        while self.size > self.budget:
            _, dropped = self._kept.popitem(last=False)
            self.size -= len(dropped)
        return chunk


def _read_chunk(path: Path, offset: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(READ_AHEAD)


class Reader:
    """A file's bytes in order, ``READ_AHEAD`` at a time: a configuration from memory, a
    stored file from its blob through ``chunks`` (read in a thread, never the event loop's).
    ``offset``: where to start (FTP's REST)."""

    def __init__(self, found: ProvisioningFile, chunks: Chunks, offset: int = 0):
        self.found = found
        self.chunks = chunks
        self.offset = offset
        self._closed = False

    @property
    def done(self) -> bool:
        """Every byte read (by the size the file had when it was resolved)."""
        return self.offset >= self.found.size

    async def read(self) -> bytes:
        """The next bytes; ``b""`` at the end."""
        found = self.found
        if found.content is not None:
            chunk = found.content[self.offset : self.offset + READ_AHEAD]
        elif self.done or self._closed:
            chunk = b""  # no thread to learn it
        else:
            assert found.path is not None and found.sha256 is not None
            index, skip = divmod(self.offset, READ_AHEAD)
            chunk = await self.chunks.get(found.path, found.sha256, index)
            chunk = chunk[skip : found.size - index * READ_AHEAD]  # no copy when whole
        self.offset += len(chunk)
        if not chunk or self.done:
            self.close()
        return chunk

    def close(self) -> None:
        self._closed = True


def _names_file(query: str) -> bool:
    return any(
        part.partition("=")[0] in ("mac", "input") for part in query.removeprefix("?").split("&")
    )


# --- one line and one count per transfer ---------------------------------------------------


class Outcome(StrEnum):
    """How a transfer ended, for its log line; ``metric`` is the ``acs_file_transfers``
    label it counts under (ok, refused, missing, redirected, aborted, failed)."""

    OK = "ok"
    NOT_MODIFIED = "not_modified"  # HTTP 304: the phone has it
    REDIRECTED = "redirected"  # HTTP 302: the phone is assigned another server
    NOT_FOUND = "not_found"
    REFUSED = "refused"  # not authenticated, not allowed, a write
    INVALID = "invalid"  # an unsafe name, a configuration that cannot be rendered
    UNAVAILABLE = "unavailable"  # storage failed: try later
    TIMEOUT = "timeout"  # the client stopped answering
    ABORTED = "aborted"  # the client ended it (an ERROR, a closed connection), or shutdown
    ERROR = "error"

    @property
    def metric(self) -> str:
        return _METRIC_OUTCOMES.get(self, "failed")


_METRIC_OUTCOMES: Final = {
    Outcome.OK: "ok",
    Outcome.NOT_MODIFIED: "ok",
    Outcome.REFUSED: "refused",
    Outcome.NOT_FOUND: "missing",
    Outcome.REDIRECTED: "redirected",
    Outcome.ABORTED: "aborted",
}


@dataclass(frozen=True, slots=True)
class Transfer:
    """What one transfer's log line says. ``status``: the protocol's own (HTTP status, FTP
    reply code, TFTP error code sent; None for a TFTP transfer that succeeded)."""

    protocol: str  # http, https, tftp, ftp
    file: str | None
    client: str | None
    method: str  # GET/HEAD, RRQ, RETR/SIZE
    outcome: Outcome
    status: int | None
    bytes: int
    duration_ms: float
    mac: str | None = None
    auth: str | None = None
    reason: str | None = None  # why it failed, when the outcome does not say it all

    def fields(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "file": self.file,
            "mac": self.mac,
            "client": self.client,
            "method": self.method,
            "status": self.status,
            "outcome": self.outcome.value,
            "bytes": self.bytes,
            "duration_ms": self.duration_ms,
            "auth": self.auth,
            "reason": self.reason,
        }


def record(transfer: Transfer, level: int = logging.INFO) -> None:
    """Count ``transfer`` and log its line (the HTTP file server counts here and lets its
    access log write the line: ``count``)."""
    count(transfer)
    if log.isEnabledFor(level):
        log.log(level, "file transfer", extra=logs.fields(**transfer.fields()))


def count(transfer: Transfer) -> None:
    """The one call that counts a transfer (``acs_file_transfers``, ``_bytes``)."""
    metrics.file_transfer(transfer.protocol, transfer.outcome.metric, transfer.bytes)
