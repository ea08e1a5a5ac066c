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


# --- TFTP and FTP ------------------------------------------------------------------------------


def test_tftp_and_ftp_are_off_unless_their_port_is_set():
    settings = _settings()
    assert (settings.tftp_port, settings.ftp_port, settings.tftp_networks) == (None, None, ())
    assert settings.ftp_passive_port_range is None


def test_tftp_allow_takes_cidrs_and_hosts_of_both_families():
    settings = _settings(tftp_port=69, tftp_allow=" 192.0.2.0/24, 2001:db8::/32,198.51.100.7")
    assert [str(n) for n in settings.tftp_networks] == [
        "192.0.2.0/24",
        "2001:db8::/32",
        "198.51.100.7/32",
    ]


@pytest.mark.parametrize(
    ("values", "loc", "message"),
    [
        (
            {"tftp_port": 69},
            (),
            "ACS_TFTP_PORT needs ACS_TFTP_ALLOW: the networks whose phones may fetch over TFTP "
            "(it has no authentication, and MAC files carry SIP passwords)",
        ),
        (
            {"tftp_allow": "192.0.2.0/24,lan"},
            ("tftp_allow",),
            "'lan' is not a network: write CIDRs such as 192.0.2.0/24,2001:db8::/32 "
            "(0.0.0.0/0,::/0 for everyone)",
        ),
        (
            {"ftp_passive_ports": "50000"},
            ("ftp_passive_ports",),
            "write lo-hi, such as 50000-50999; got '50000'",
        ),
        (
            {"ftp_passive_ports": "50999-50000"},
            ("ftp_passive_ports",),
            "ports from 1 to 65535, the first no higher; got '50999-50000'",
        ),
        (
            {"ftp_passive_address": "2001:db8::1"},
            ("ftp_passive_address",),
            "an IPv4 address (PASV announces only those): '2001:db8::1'",
        ),
    ],
)
def test_tftp_and_ftp_settings_that_cannot_work_are_refused(values, loc, message):
    with pytest.raises(ValidationError) as refused:
        _settings(**values)
    [error] = refused.value.errors(include_input=False, include_url=False)
    assert (error["loc"], error["msg"]) == (loc, f"Value error, {message}")


def test_ftp_passive_ports_are_a_range():
    settings = _settings(ftp_passive_ports="50000-50009", ftp_passive_address=" 203.0.113.5")
    assert settings.ftp_passive_port_range == range(50000, 50010)
    assert settings.ftp_passive_address == "203.0.113.5"
