"""The server's own secrets: the server secret outside the database, the shared CPE password
as its Digest HA1s only.

The server secret signs Digest nonces and file URLs and seals connection-request passwords;
whoever holds it can forge all of them, so read access to the database must not give it:

==========================  ==========================================================
given                       the secret is
==========================  ==========================================================
``ACS_SECRET_KEY`` (or      that value (every node of a PostgreSQL cluster gives the same)
``ACS_SECRET_KEY_FILE``)
SQLite, nothing given       the key file beside the database, ``<db>.key``: created 0600
                            on the first start, refused if group or others may read it
PostgreSQL, nothing given   a start-up error, unless the database still holds a key of an
                            older acs in ``meta`` (then that one, with a warning saying how
                            to move it out)
==========================  ==========================================================

A key an older acs kept in ``meta`` of a SQLite database is moved to the key file on the
first start (same value: sealed passwords and signed URLs keep working; the file is synced
to disk first) and deleted from the database. A key file that holds another key is a start-up
error saying how to keep either: neither is dropped silently.

The shared CPE password is ``ACS_CWMP_PASSWORD`` when given. Otherwise acs generates one on
its first start, which says it once, and keeps only what Digest (and Basic over TLS, by
hashing the offered password) needs to verify it: its HA1 for ``ACS_CWMP_USERNAME`` and
``ACS_CWMP_REALM`` (row ``cwmp_ha1`` of ``meta``). ``acs cpe-password reset`` makes a new one.
A password an older acs kept in clear (row ``cwmp_password``) is replaced by its HA1 on the
first start.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sqlalchemy import delete, select
from sqlalchemy.engine import make_url

from acs.config import Settings
from acs.cwmp import digest
from acs.db.engine import Database
from acs.db.errors import DatabaseUnavailable
from acs.db.tables import insert_for, meta
from acs.services.cpe_auth import DeviceCredentials, hash_credentials

log = logging.getLogger("acs")

LEGACY_KEY = "secret_key"  # the meta row an older acs kept the secret in
SHARED_HA1 = "cwmp_ha1"  # the shared CPE password's HA1s, with the username and realm
LEGACY_PASSWORD = "cwmp_password"  # noqa: S105 (the meta row an older acs kept it in, in clear)


class SecretKeyUnavailable(DatabaseUnavailable):
    """No server secret acs may use: the message says why and what to do. A
    ``DatabaseUnavailable`` so that ``acs serve`` and the commands refuse it in one line."""


def key_file_of(database_url: str) -> Path | None:
    """``<db>.key`` beside a SQLite database file (named by a path or a ``file:`` URI);
    ``None`` for one in memory."""
    url = make_url(database_url)
    path = url.database
    if path and path.startswith("file:"):  # SQLite's URI filename
        uri = urlsplit(path)
        if url.query.get("mode") == "memory" or "mode=memory" in uri.query:
            return None
        path = unquote(uri.path)
    if not path or path == ":memory:":
        return None
    return Path(path).with_name(Path(path).name + ".key")


def read_key_file(path: Path) -> str:
    """The key in ``path``; refused if anyone but its owner may read or write it."""
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretKeyUnavailable(
                f"the key file {path} may be read by others (mode {stat.S_IMODE(mode):04o}): "
                f"run `chmod 600 {path}`"
            )
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretKeyUnavailable(f"cannot read the key file {path}: {exc}") from None
    if not key:
        raise SecretKeyUnavailable(f"the key file {path} is empty: delete it or put a key in it")
    return key


def write_key_file(path: Path, key: str) -> str:
    """Create ``path`` (mode 0600) holding ``key``; if another process made it first, its key.
    The file and its directory entry are on disk when this returns: a key moved out of the
    database is deleted there next, and a crash must not lose it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_key_file(path)
    except OSError as exc:
        raise SecretKeyUnavailable(f"cannot create the key file {path}: {exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(key + "\n")
            out.flush()
            os.fsync(out.fileno())
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        raise SecretKeyUnavailable(f"cannot write the key file {path}: {exc}") from None
    return key


async def load_secret_key(db: Database, settings: Settings, *, warn: bool = True) -> bytes:
    """The server secret (see the module's table). ``warn``: log the legacy key's warning
    (``acs serve`` warns once, in its parent process, not once per worker)."""
    if settings.secret_key:
        return settings.secret_key.encode()
    async with db.read() as conn:
        legacy = await conn.scalar(select(meta.c.value).where(meta.c.key == LEGACY_KEY))
    if db.is_sqlite:
        return (await _sqlite_key(db, legacy)).encode()
    if legacy is None:
        raise SecretKeyUnavailable(
            "ACS_SECRET_KEY is not set: on PostgreSQL every node needs the same server secret "
            "(ACS_SECRET_KEY or ACS_SECRET_KEY_FILE), e.g. from "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    if warn:
        log.warning(
            "the server secret is kept in the database (table meta, by an older acs): "
            "anyone who can read the database can forge nonces and file URLs. Move it out: "
            "give every node ACS_SECRET_KEY_FILE holding `SELECT value FROM meta WHERE "
            "key = 'secret_key'`, restart them, then `DELETE FROM meta WHERE key = 'secret_key'`"
        )
    return str(legacy).encode()


async def _sqlite_key(db: Database, legacy: str | None) -> str:
    path = key_file_of(db.url)
    if path is None:  # a database in memory lives as long as its process: so does its key
        return legacy or secrets.token_hex(32)
    if path.exists():
        key = read_key_file(path)
        if legacy is not None and legacy != key:
            raise SecretKeyUnavailable(
                f"two different server secrets: the key file {path} and the database's (table "
                "meta, by an older acs). Keep the one the devices' file URLs and sealed "
                "passwords were made with: that in the database is `SELECT value FROM meta "
                f"WHERE key = 'secret_key'`; write it into {path}, or delete that row to keep "
                "the file's"
            )
    else:
        key = write_key_file(path, legacy or secrets.token_hex(32))
        if legacy is not None:
            log.info("the server secret moved from the database to %s", path)
    if legacy is not None:
        async with db.write() as conn:
            await conn.execute(delete(meta).where(meta.c.key == LEGACY_KEY))
    return key


class SharedPasswordUnusable(DatabaseUnavailable):
    """The stored shared CPE password was hashed for another username or realm."""


@dataclass(frozen=True, slots=True)
class SharedPair:
    """The shared CPE credentials, and the password if this start generated it (to say once)."""

    credentials: DeviceCredentials
    generated: str | None = None


def new_cpe_password() -> str:
    return secrets.token_urlsafe(12)


def _stored(username: str, realm: str, password: str) -> str:
    return json.dumps(
        {"username": username, "realm": realm, **hash_credentials(username, password, realm)},
        sort_keys=True,
    )


async def load_shared_pair(db: Database, settings: Settings) -> SharedPair:
    """The shared CPE credentials (see the module docstring): generated on the first start
    (first node wins), an older acs's clear password hashed and deleted."""
    username, realm = settings.cwmp_username, settings.cwmp_realm
    if settings.cwmp_password:
        hashed = hash_credentials(username, settings.cwmp_password, realm)
        return SharedPair(DeviceCredentials(username, hashed))
    generated = None
    async with db.write() as conn:
        rows = await conn.execute(
            select(meta.c.key, meta.c.value).where(meta.c.key.in_([SHARED_HA1, LEGACY_PASSWORD]))
        )
        found = {row.key: row.value for row in rows}
        if SHARED_HA1 in found:
            stored = found[SHARED_HA1]
        else:
            generated = found.get(LEGACY_PASSWORD) or new_cpe_password()
            made = _stored(username, realm, generated)
            await conn.execute(
                insert_for(conn, meta).values(key=SHARED_HA1, value=made).on_conflict_do_nothing()
            )
            stored = await conn.scalar(select(meta.c.value).where(meta.c.key == SHARED_HA1))
            if stored != made or LEGACY_PASSWORD in found:
                generated = None  # another node made it first, or the operator knows it
        if LEGACY_PASSWORD in found:
            await conn.execute(delete(meta).where(meta.c.key == LEGACY_PASSWORD))
            log.info("the shared CPE password is now kept as its Digest HA1 only")
    doc = json.loads(stored)
    if (doc["username"], doc["realm"]) != (username, realm):
        raise SharedPasswordUnusable(
            f"the shared CPE password was made for username {doc['username']!r} and realm "
            f"{doc['realm']!r}, and only its hash is kept: set ACS_CWMP_USERNAME and "
            "ACS_CWMP_REALM back, or run `acs cpe-password reset` (a new password, which every "
            "device must then be given)"
        )
    hashed = {alg: doc[alg] for alg in digest.ALGORITHMS}
    return SharedPair(DeviceCredentials(username, hashed), generated)


async def reset_shared_password(db: Database, settings: Settings) -> str:
    """A new shared CPE password: its HA1s replace the stored ones; returned to say once."""
    password = new_cpe_password()
    made = _stored(settings.cwmp_username, settings.cwmp_realm, password)
    async with db.write() as conn:
        await conn.execute(delete(meta).where(meta.c.key.in_([SHARED_HA1, LEGACY_PASSWORD])))
        await conn.execute(insert_for(conn, meta).values(key=SHARED_HA1, value=made))
    return password
