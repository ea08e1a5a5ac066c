"""The file store: what CPEs download (firmware, configuration, phone books, certificates...).

Metadata lives in the ``files`` table; the bytes live in ``<data dir>/files/<ab>/<sha256>``,
named by their SHA-256, so identical uploads are stored once and a file's ETag is its
digest. Uploads are streamed to disk while hashed: nothing holds a whole file in memory.
With several nodes, ``<data dir>/files`` must be shared storage (or each node gets the
upload through the API); the database says which digests exist.

CPEs fetch files with either credentials (Digest, like the CWMP endpoint) or a signed URL.
A signed URL carries ``t=<token>``: ``e.<unix expiry>.<mac>`` for URLs the ACS puts in a
Download RPC (they expire), ``c.<mac>`` for URLs written into phone configuration files,
bound to the file's content so the rendered configuration (and its version) stays the same
as long as the file does.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import delete, func, select

from acs.cwmp import digest
from acs.db import tables
from acs.db.engine import Database
from acs.db.errors import UNAVAILABLE, InsufficientStorage, is_disk_full
from acs.services import renderings
from acs.services.errors import Invalid, NotFound

f = tables.files

# TR-069 Download FileTypes (A.3.2.8) and the phone kinds of auto provisioning, with the
# file name extensions each kind accepts (none listed: anything).
FILE_KINDS: Final[dict[str, tuple[str, ...]]] = {
    "1 Firmware Upgrade Image": (),
    "2 Web Content": (),
    "3 Vendor Configuration File": (),
    "4 Tone File": (),
    "5 Ringer File": (),
    "phonebook": (".xml", ".vcf", ".csv"),
    "certificate": (".bin", ".crt", ".key", ".ovpn", ".xml", ".pem"),
    "background": (".bmp",),
    "mmiset": (".z",),
    "dialpeer": (".csv",),
    "accesslist": (".csv",),
}
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_CONTENT_TYPES: Final = {
    ".xml": "application/xml",
    ".csv": "text/csv",
    ".vcf": "text/vcard",
    ".bmp": "image/bmp",
    ".pem": "application/x-pem-file",
    ".crt": "application/x-x509-ca-cert",
    ".cfg": "text/plain",
    ".txt": "text/plain",
}


class FileError(Invalid):
    """A file name, or a file_type for it, the store refuses."""


class FileTooLarge(FileError):
    """More bytes than ``ACS_MAX_FILE_BYTES``: the management API answers 413, not 422."""


class FileNotFound(NotFound):
    """No stored file of this name (``name``)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no file {name!r}")
        self.name = name


@dataclass(frozen=True, slots=True)
class FileMeta:
    name: str
    file_type: str
    oui: str | None
    product_class: str | None
    version: str | None
    sha256: str
    size: int
    content_type: str
    created: datetime
    created_by: str | None

    def view(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file_type": self.file_type,
            "oui": self.oui,
            "product_class": self.product_class,
            "version": self.version,
            "sha256": self.sha256,
            "size": self.size,
            "content_type": self.content_type,
            "created": self.created,
            "created_by": self.created_by,
        }


def _meta(row: Any) -> FileMeta:
    return FileMeta(
        row.name,
        row.file_type,
        row.oui,
        row.product_class,
        row.version,
        row.sha256,
        row.size,
        row.content_type,
        row.created,
        row.created_by,
    )


def check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name) or ".." in name:
        raise FileError("file names are 1-200 of A-Z a-z 0-9 . _ - (not starting with . or -)")
    return name


def check_kind(file_type: str, name: str) -> None:
    if file_type not in FILE_KINDS:
        raise FileError(f"file_type must be one of {list(FILE_KINDS)}")
    extensions = FILE_KINDS[file_type]
    if extensions and not name.lower().endswith(extensions):
        raise FileError(f"a {file_type} file ends with one of {list(extensions)}")


class FileStore:
    def __init__(self, db: Database, root: Path, secret: bytes, *, max_bytes: int):
        self.db = db
        self.root = root
        self.max_bytes = max_bytes
        self._key = hashlib.sha256(secret + b"\0file-urls").digest()

    def blob_path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    # --- storing ---------------------------------------------------------------------

    async def store(
        self,
        name: str,
        chunks: AsyncIterator[bytes],
        *,
        file_type: str,
        oui: str | None,
        product_class: str | None,
        version: str | None,
        created_by: str | None,
        now: datetime,
    ) -> FileMeta:
        """Stream an upload to disk, then record it under ``name`` (replacing any file of
        that name; the old bytes go once no file refers to them)."""
        check_name(name)
        check_kind(file_type, name)
        tmp_dir = self.root / "tmp"
        tmp = tmp_dir / f"{secrets.token_hex(8)}.part"
        digest = hashlib.sha256()
        size = 0
        try:
            tmp_dir.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise FileTooLarge(f"file exceeds {self.max_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
            sha = digest.hexdigest()
            final = self.blob_path(sha)
            new_blob = not final.exists()  # identical bytes may be stored already
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        except OSError as exc:
            if is_disk_full(exc):
                raise InsufficientStorage(
                    "insufficient storage: the file store's disk is full "
                    f"({self.root}); free space and upload again"
                ) from exc
            raise
        finally:
            tmp.unlink(missing_ok=True)
        suffix = Path(name).suffix.lower()
        values = {
            "file_type": file_type,
            "oui": oui,
            "product_class": product_class,
            "version": version,
            "sha256": sha,
            "size": size,
            "content_type": _CONTENT_TYPES.get(suffix, "application/octet-stream"),
            "created": now,
            "created_by": created_by,
        }
        try:
            async with self.db.write() as conn:
                old = await conn.scalar(select(f.c.sha256).where(f.c.name == name))
                stmt = tables.insert_for(conn, f).values(name=name, **values)
                await conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_=values))
                await renderings.forget(conn)  # AUTOUPDATE URLs carry the digest
        except Exception as exc:
            # no row refers to bytes this upload brought: they go too (no orphan blob);
            # unless the database cannot say so (a blob kept is better than one missing)
            if new_blob:
                with contextlib.suppress(*UNAVAILABLE):
                    await self._collect(sha)
            if is_disk_full(exc):
                raise InsufficientStorage(
                    "insufficient storage: the database's disk is full; free space and upload again"
                ) from exc
            raise
        if old and old != sha:
            await self._collect(old)
        return await self.get(name)

    async def _collect(self, sha256: str) -> None:
        async with self.db.read() as conn:
            used = await conn.scalar(
                select(func.count()).select_from(f).where(f.c.sha256 == sha256)
            )
        if not used:
            self.blob_path(sha256).unlink(missing_ok=True)

    async def delete(self, name: str) -> None:
        async with self.db.write() as conn:
            sha = await conn.scalar(select(f.c.sha256).where(f.c.name == name))
            if sha is None:
                raise FileNotFound(name)
            await conn.execute(delete(f).where(f.c.name == name))
            await renderings.forget(conn)
        await self._collect(sha)

    # --- reading -----------------------------------------------------------------------

    async def get(self, name: str) -> FileMeta:
        async with self.db.read() as conn:
            row = (await conn.execute(select(f).where(f.c.name == name))).first()
        if row is None:
            raise FileNotFound(name)
        return _meta(row)

    async def list(
        self,
        *,
        file_type: str | None = None,
        oui: str | None = None,
        product_class: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[FileMeta], int]:
        conditions = []
        if file_type is not None:
            conditions.append(f.c.file_type == file_type)
        if oui is not None:
            conditions.append(f.c.oui == oui)
        if product_class is not None:
            conditions.append(f.c.product_class == product_class)
        async with self.db.read() as conn:
            total = await conn.scalar(select(func.count()).select_from(f).where(*conditions))
            rows = await conn.execute(
                select(f).where(*conditions).order_by(f.c.name).limit(limit).offset(offset)
            )
            return [_meta(r) for r in rows], int(total or 0)

    # --- signed URLs -------------------------------------------------------------------

    def _mac(self, *parts: str) -> str:
        return hmac.new(self._key, "\n".join(parts).encode(), "sha256").hexdigest()[:32]

    def expiring_token(self, path: str, expires: int) -> str:
        """A token for ``path`` (e.g. ``/files/fw.bin``) good until ``expires`` (unix)."""
        return f"e.{expires}.{self._mac('e', path, str(expires))}"

    def content_token(self, path: str, sha256: str) -> str:
        """A token for ``path`` good while its content has this digest (no expiry)."""
        return f"c.{self._mac('c', path, sha256)}"

    def check_token(self, token: str, path: str, *, now: float, sha256: str | None) -> bool:
        kind, _, rest = token.partition(".")
        if kind == "e":
            expires, _, mac = rest.partition(".")
            if not expires.isdigit() or int(expires) < now:
                return False
            return digest.equal(mac, self._mac("e", path, expires))
        if kind == "c" and sha256 is not None:
            return digest.equal(rest, self._mac("c", path, sha256))
        return False
