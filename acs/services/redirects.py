"""Redirects, as carriers' redirect services do (Yealink RPS, Fanvil FDPS): a phone (its
12-digit MAC) or a MAC prefix (1-11 hex digits, an OUI is 6) is assigned another
provisioning URL, and its HTTP requests for provisioning files are answered with a 302 there.

The longest prefix that matches a phone wins. The URL may carry ``$mac`` (the phone's MAC,
12 lower-case hex digits); one that ends with ``/`` gets the name the phone asked for
appended, so ``http://other.example/prov/`` sends ``/prov/001565113af8.cfg`` to
``http://other.example/prov/001565113af8.cfg``. HTTP alone redirects: TFTP and FTP have no
way to say it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final

from sqlalchemy import bindparam, delete, func, select

from acs.db import tables
from acs.db.engine import Database
from acs.provisioning.errors import ProvisioningError
from acs.provisioning.url import check_url
from acs.services import errors

d = tables.redirects
_PREFIX_RE: Final = re.compile(r"[0-9a-f]{1,12}")
_SEPARATORS: Final = re.compile(r"[:.-]")


class NotFound(errors.NotFound):
    """No redirect of that prefix."""


def normalize_prefix(prefix: str) -> str:
    """A MAC or MAC prefix as stored: lower-case hex digits, separators (``:``, ``-``,
    ``.``) dropped.

    Raises:
        ProvisioningError: not 1-12 hex digits.
    """
    value = _SEPARATORS.sub("", prefix).lower()
    if not _PREFIX_RE.fullmatch(value):
        raise ProvisioningError(f"a MAC or MAC prefix is 1-12 hex digits, not {prefix!r}")
    return value


def prefixes(mac: str) -> list[str]:
    """Every prefix a redirect of ``mac`` may be stored under, the longest first."""
    return [mac[:n] for n in range(len(mac), 0, -1)]


def location(url: str, mac: str, name: str) -> str:
    """Where a phone asking for ``name`` is sent by a redirect to ``url``."""
    target = url.replace("$mac", mac)
    return target + name if target.endswith("/") else target


# the longest prefix of :prefixes that has a redirect (a column of the file server's lookup)
LONGEST: Final = (
    select(d.c.url)
    .where(d.c.prefix.in_(bindparam("prefixes", expanding=True)))
    .order_by(func.length(d.c.prefix).desc())
    .limit(1)
)


class Redirects:
    """The redirects an operator set (``/api/v1/redirects``)."""

    def __init__(self, db: Database):
        self.db = db

    async def put(self, prefix: str, url: str, *, by: str | None, now: datetime) -> dict[str, Any]:
        """Create or replace the redirect of a MAC or prefix.

        Raises:
            ProvisioningError: a bad prefix or a URL no phone can be given.
        """
        prefix = normalize_prefix(prefix)
        url = check_url(url)
        if not url.lower().startswith(("http://", "https://")):
            raise ProvisioningError("a redirect is an HTTP 302: its URL is http:// or https://")
        values = {"url": url, "created": now, "created_by": by}
        async with self.db.write() as conn:
            stmt = tables.insert_for(conn, d).values(prefix=prefix, **values)
            await conn.execute(stmt.on_conflict_do_update(index_elements=["prefix"], set_=values))
        return await self.get(prefix)

    async def get(self, prefix: str) -> dict[str, Any]:
        prefix = _lookup(prefix)
        async with self.db.read() as conn:
            row = (await conn.execute(select(d).where(d.c.prefix == prefix))).first()
        if row is None:
            raise NotFound(f"no redirect of {prefix}")
        return _view(row)

    async def list(self) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            return [_view(r) for r in await conn.execute(select(d).order_by(d.c.prefix))]

    async def delete(self, prefix: str) -> None:
        prefix = _lookup(prefix)
        async with self.db.write() as conn:
            result = await conn.execute(delete(d).where(d.c.prefix == prefix))
        if not result.rowcount:
            raise NotFound(f"no redirect of {prefix}")


def _lookup(prefix: str) -> str:
    try:
        return normalize_prefix(prefix)
    except ProvisioningError as exc:
        raise NotFound(str(exc)) from None


def _view(row: Any) -> dict[str, Any]:
    return {
        "prefix": row.prefix,
        "url": row.url,
        "created": row.created,
        "created_by": row.created_by,
    }
