"""Where the server secret lives (acs.services.server_secrets): never in the database."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from acs.db.engine import Database
from acs.services.cpe_auth import CpeAuthenticator
from acs.services.server_secrets import (
    SecretKeyUnavailable,
    SharedPasswordUnusable,
    key_file_of,
    load_secret_key,
    load_shared_pair,
    reset_shared_password,
)
from tests.conftest import _truncate_pg, make_settings
from tests.cpe_auth_client import basic_header, digest_header

NOW = 1_700_000_000.0
DEVICE = "00D09E-IGD-1"


# meta rows that hold no secret (the presets' version is seeded by its migration)
NOT_SECRETS = {"presets_version"}


async def _meta(db: Database) -> dict[str, str]:
    """The meta rows other than ``NOT_SECRETS``: where a secret could be kept."""
    async with db.read() as conn:
        rows = await conn.execute(text("SELECT key, value FROM meta"))
        return {k: v for k, v in rows if k not in NOT_SECRETS}


async def _put_legacy_key(db: Database, key: str) -> None:
    async with db.write() as conn:
        await conn.execute(
            text("INSERT INTO meta (key, value) VALUES ('secret_key', :v)"), {"v": key}
        )


@pytest.fixture
async def sqlite_db(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Database]:
    path = tmp_path / "acs.db"
    shutil.copyfile(sqlite_template, path)
    db = Database(f"sqlite+aiosqlite:///{path}")
    yield db
    await db.dispose()


@pytest.fixture
async def pg_db(pg_database_url: str) -> AsyncIterator[Database]:
    await _truncate_pg(pg_database_url)
    db = Database(pg_database_url)
    yield db
    await db.dispose()


async def test_sqlite_makes_a_key_file_of_its_owners_beside_the_database(sqlite_db, tmp_path):
    settings = make_settings(sqlite_db.url, tmp_path, secret_key=None)
    key = await load_secret_key(sqlite_db, settings)
    path = tmp_path / "acs.db.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == key.decode() + "\n"
    assert len(key) == 64
    assert await load_secret_key(sqlite_db, settings) == key  # the next start reads it
    assert await _meta(sqlite_db) == {}


async def test_a_database_named_by_a_file_uri_keeps_its_key_file_too(sqlite_template, tmp_path):
    shutil.copyfile(sqlite_template, tmp_path / "acs.db")
    db = Database(f"sqlite+aiosqlite:///file:{tmp_path}/acs.db?mode=rwc&uri=true")
    try:
        settings = make_settings(db.url, tmp_path, secret_key=None)
        key = await load_secret_key(db, settings)
        assert (tmp_path / "acs.db.key").read_text() == key.decode() + "\n"
        assert await load_secret_key(db, settings) == key  # the next start: the same key
    finally:
        await db.dispose()
    # in memory, however it is named: no file, the key lives with the process
    for url in ("sqlite+aiosqlite://", "sqlite+aiosqlite:///file:m?mode=memory&uri=true"):
        assert key_file_of(url) is None, url


async def test_a_key_file_others_may_read_is_refused_naming_the_fix(sqlite_db, tmp_path):
    path = tmp_path / "acs.db.key"
    path.write_text("k" * 64)
    path.chmod(0o644)
    settings = make_settings(sqlite_db.url, tmp_path, secret_key=None)
    with pytest.raises(SecretKeyUnavailable) as exc:
        await load_secret_key(sqlite_db, settings)
    assert str(exc.value) == (
        f"the key file {path} may be read by others (mode 0644): run `chmod 600 {path}`"
    )


async def test_an_empty_key_file_is_refused(sqlite_db, tmp_path):
    path = tmp_path / "acs.db.key"
    path.write_text("\n")
    path.chmod(0o600)
    with pytest.raises(SecretKeyUnavailable, match="is empty"):
        await load_secret_key(sqlite_db, make_settings(sqlite_db.url, tmp_path, secret_key=None))


async def test_sqlite_moves_an_older_acs_key_out_of_the_database(sqlite_db, tmp_path, caplog):
    await _put_legacy_key(sqlite_db, "legacy-key")
    caplog.set_level(logging.INFO, "acs")
    key = await load_secret_key(sqlite_db, make_settings(sqlite_db.url, tmp_path, secret_key=None))
    assert key == b"legacy-key"  # the same key: sealed passwords and URLs keep working
    assert (tmp_path / "acs.db.key").read_text() == "legacy-key\n"
    assert await _meta(sqlite_db) == {}
    assert f"the server secret moved from the database to {tmp_path / 'acs.db.key'}" in (
        caplog.messages
    )


async def test_a_moved_key_is_on_disk_before_the_database_forgets_it(
    sqlite_db, tmp_path, monkeypatch
):
    """The key file and its directory are synced before the legacy row is deleted."""
    await _put_legacy_key(sqlite_db, "legacy-key")
    synced: list[str] = []
    fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    await load_secret_key(sqlite_db, make_settings(sqlite_db.url, tmp_path, secret_key=None))
    assert synced == [str(tmp_path / "acs.db.key"), str(tmp_path)]
    assert await _meta(sqlite_db) == {}


async def test_a_key_file_and_a_different_database_key_are_refused(sqlite_db, tmp_path):
    """Neither is dropped silently: the message says how to keep either."""
    await _put_legacy_key(sqlite_db, "legacy-key")
    path = tmp_path / "acs.db.key"
    path.write_text("file-key\n")
    path.chmod(0o600)
    settings = make_settings(sqlite_db.url, tmp_path, secret_key=None)
    with pytest.raises(SecretKeyUnavailable, match="two different server secrets"):
        await load_secret_key(sqlite_db, settings)
    assert await _meta(sqlite_db) == {"secret_key": "legacy-key"}
    path.write_text("legacy-key\n")  # the same key in both: the row goes
    assert await load_secret_key(sqlite_db, settings) == b"legacy-key"
    assert await _meta(sqlite_db) == {}


async def test_a_given_key_is_used_and_nothing_is_written(sqlite_db, tmp_path):
    settings = make_settings(sqlite_db.url, tmp_path, secret_key="given")
    assert await load_secret_key(sqlite_db, settings) == b"given"
    assert not (tmp_path / "acs.db.key").exists()


async def test_postgresql_without_a_key_is_a_clear_start_up_error(pg_db, tmp_path):
    with pytest.raises(SecretKeyUnavailable) as exc:
        await load_secret_key(pg_db, make_settings(pg_db.url, tmp_path, secret_key=None))
    assert str(exc.value).startswith(
        "ACS_SECRET_KEY is not set: on PostgreSQL every node needs the same server secret"
    )
    assert await _meta(pg_db) == {}


async def test_postgresql_keeps_an_older_acs_key_and_says_how_to_move_it(pg_db, tmp_path, caplog):
    await _put_legacy_key(pg_db, "legacy-key")
    settings = make_settings(pg_db.url, tmp_path, secret_key=None)
    caplog.set_level(logging.INFO, "acs")
    assert await load_secret_key(pg_db, settings) == b"legacy-key"
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "Move it out: give every node ACS_SECRET_KEY_FILE" in warning.getMessage()
    caplog.clear()
    assert await load_secret_key(pg_db, settings, warn=False) == b"legacy-key"  # a worker
    assert caplog.records == []


# --- the shared CPE password ------------------------------------------------------------


def _authenticator(settings, pair) -> CpeAuthenticator:
    return CpeAuthenticator(settings, b"k", pair.credentials)


def _digest_ok(auth: CpeAuthenticator, password: str, username: str = "acs") -> bool:
    [challenge] = auth.challenge(NOW, DEVICE)
    header = digest_header(challenge, username, password)
    outcome = auth.check(
        header, method="POST", path="/", tls=False, credentials=None, binding=DEVICE, now=NOW
    )
    return outcome.ok


def _basic_ok(auth: CpeAuthenticator, password: str) -> bool:
    outcome = auth.check(
        basic_header("acs", password),
        method="POST",
        path="/",
        tls=True,
        credentials=None,
        binding=DEVICE,
        now=NOW,
    )
    return outcome.ok


@pytest.fixture
async def any_db(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    yield db
    await db.dispose()


async def test_a_generated_password_is_said_once_and_kept_as_its_ha1_only(any_db, tmp_path):
    settings = make_settings(any_db.url, tmp_path, cwmp_password=None)
    first = await load_shared_pair(any_db, settings)
    password = first.generated
    assert password is not None and len(password) == 16
    stored = await _meta(any_db)
    assert set(stored) == {"cwmp_ha1"}
    assert json.loads(stored["cwmp_ha1"]) == {
        "username": "acs",
        "realm": "acs",
        "MD5": hashlib.md5(f"acs:acs:{password}".encode()).hexdigest(),
        "SHA-256": hashlib.sha256(f"acs:acs:{password}".encode()).hexdigest(),
    }
    again = await load_shared_pair(any_db, settings)  # the next start, or another node
    assert again.generated is None
    assert again.credentials == first.credentials
    auth = _authenticator(settings, again)
    assert _digest_ok(auth, password)
    assert _basic_ok(auth, password)  # Basic over TLS: the offered password is hashed
    assert not _digest_ok(auth, password + "x")
    assert not _basic_ok(auth, password + "x")


async def test_an_older_acs_clear_password_becomes_its_ha1(any_db, tmp_path, caplog):
    async with any_db.write() as conn:
        await conn.execute(
            text("INSERT INTO meta (key, value) VALUES ('cwmp_password', 'old-one')")
        )
    settings = make_settings(any_db.url, tmp_path, cwmp_password=None)
    caplog.set_level(logging.INFO, "acs")
    pair = await load_shared_pair(any_db, settings)
    assert pair.generated is None  # the operator knows it: it was logged at every start
    assert set(await _meta(any_db)) == {"cwmp_ha1"}
    assert "old-one" not in json.dumps(await _meta(any_db))
    assert _digest_ok(_authenticator(settings, pair), "old-one")
    assert "the shared CPE password is now kept as its Digest HA1 only" in caplog.messages


async def test_a_given_password_is_used_and_nothing_is_stored(any_db, tmp_path):
    settings = make_settings(any_db.url, tmp_path, cwmp_password="given-one")
    pair = await load_shared_pair(any_db, settings)
    assert pair.generated is None
    assert await _meta(any_db) == {}
    assert _digest_ok(_authenticator(settings, pair), "given-one")


async def test_a_password_hashed_for_another_username_is_refused_naming_the_way_out(
    any_db, tmp_path
):
    await load_shared_pair(any_db, make_settings(any_db.url, tmp_path, cwmp_password=None))
    renamed = make_settings(any_db.url, tmp_path, cwmp_password=None, cwmp_username="cpe")
    with pytest.raises(SharedPasswordUnusable) as exc:
        await load_shared_pair(any_db, renamed)
    assert str(exc.value) == (
        "the shared CPE password was made for username 'acs' and realm 'acs', and only its hash "
        "is kept: set ACS_CWMP_USERNAME and ACS_CWMP_REALM back, or run `acs cpe-password "
        "reset` (a new password, which every device must then be given)"
    )
    new = await reset_shared_password(any_db, renamed)
    pair = await load_shared_pair(any_db, renamed)
    assert pair.generated is None
    assert _digest_ok(_authenticator(renamed, pair), new, username="cpe")
