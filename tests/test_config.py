"""Settings: the database URL forms acs accepts, and what it says about the others."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from acs.config import Settings


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "resolved"),
    [
        (
            "postgresql://acs:s3cret@db.example/acs",
            "postgresql+asyncpg://acs:s3cret@db.example/acs",
        ),
        ("postgres://acs@db.example:5433/acs", "postgresql+asyncpg://acs@db.example:5433/acs"),
        (
            "postgresql+asyncpg://acs@db/acs?ssl=require",
            "postgresql+asyncpg://acs@db/acs?ssl=require",
        ),
        ("sqlite:////var/lib/acs/acs.db", "sqlite+aiosqlite:////var/lib/acs/acs.db"),
        ("sqlite+aiosqlite:////var/lib/acs/acs.db", "sqlite+aiosqlite:////var/lib/acs/acs.db"),
        ("  sqlite:////var/lib/acs/acs.db\n", "sqlite+aiosqlite:////var/lib/acs/acs.db"),
    ],
)
def test_database_urls_get_the_async_driver(given, resolved):
    assert _settings(database_url=given).resolved_database_url == resolved


def test_a_relative_sqlite_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = _settings(database_url="sqlite:///here/acs.db")
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path}/here/acs.db"


def test_the_default_is_sqlite_in_the_data_dir_and_messages_mask_the_password(tmp_path):
    settings = _settings(data_dir=tmp_path / "d")
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path}/d/acs.db"
    assert settings.storage == (
        f"database sqlite+aiosqlite:///{tmp_path}/d/acs.db, data dir {tmp_path}/d"
    )
    pg = _settings(database_url="postgresql://acs:s3cret@db/acs", data_dir=Path("/srv/acs"))
    assert pg.storage == "database postgresql+asyncpg://acs:***@db/acs, data dir /srv/acs"


FORMS = "postgresql://user:password@host:5432/dbname or sqlite:////absolute/path/acs.db"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("not a url at all s3cret", f"not a database URL: write {FORMS}"),
        ("mysql://acs:s3cret@db/acs", f"acs does not support 'mysql' databases: write {FORMS}"),
        (
            "postgresql+psycopg://acs:s3cret@db/acs",
            "acs talks to postgresql through asyncpg: write postgresql:// "
            "(or postgresql+asyncpg://), not postgresql+psycopg://",
        ),
        (
            "sqlite+pysqlite:////tmp/s3cret.db",
            "acs talks to sqlite through aiosqlite: write sqlite:// (or sqlite+aiosqlite://), "
            "not sqlite+pysqlite://",
        ),
    ],
)
def test_urls_acs_cannot_use_are_refused_saying_which_forms_it_takes(given, message):
    with pytest.raises(ValidationError) as refused:
        _settings(database_url=given)
    [error] = refused.value.errors(include_input=False, include_url=False)
    assert (error["loc"], error["msg"]) == (("database_url",), f"Value error, {message}")
