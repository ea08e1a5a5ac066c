"""``acs serve`` with its secrets in files (ACS_<NAME>_FILE), as docker/compose.yaml runs it."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from tests.fake_cpe import FakeCpe


def test_admin_cwmp_password_and_secret_key_from_files(start_server, tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "admin").write_text("admin-from-a-file\n")
    (secrets / "cwmp").write_text("cpe-from-a-file\n")
    (secrets / "key").write_text("key-from-a-file\n")
    server = start_server(
        "files",
        # the fixture's own ACS_CWMP_PASSWORD / ACS_SECRET_KEY would conflict with the files
        cwmp_password="",
        secret_key="",
        admin_password_file=str(secrets / "admin"),
        cwmp_password_file=str(secrets / "cwmp"),
        secret_key_file=str(secrets / "key"),
    )
    with httpx.Client(base_url=server.api_url, timeout=30) as api:
        assert api.get("/api/v1/operators", auth=("admin", "admin-from-a-file")).status_code == 200
        assert api.get("/api/v1/operators", auth=("admin", "wrong-password")).status_code == 401
    assert "CPE credentials acs / <from ACS_CWMP_PASSWORD>" in server.output()
    # a CPE logs in with the password from the file
    cpe = FakeCpe()
    with httpx.Client(base_url=server.cwmp_url, timeout=30) as http:
        inform = cpe.inform("0 BOOTSTRAP", "1 BOOT")
        assert http.post("/acs", content=inform).status_code == 401
        auth = httpx.DigestAuth("acs", "cpe-from-a-file")
        assert http.post("/acs", content=inform, auth=auth).status_code == 200


def test_an_unreadable_secret_file_stops_the_command_naming_the_variable(tmp_path):
    env = {
        **os.environ,
        "ACS_DATA_DIR": str(tmp_path / "data"),
        "ACS_ADMIN_PASSWORD_FILE": str(tmp_path / "no-such-file"),
    }
    run = subprocess.run(
        [sys.executable, "-m", "acs.cli", "serve"], env=env, capture_output=True, timeout=60
    )
    assert run.returncode == 2
    line = f"ACS_ADMIN_PASSWORD_FILE: cannot read {tmp_path / 'no-such-file'}: No such file or"
    assert run.stderr.decode() == f"invalid setting {line} directory\n"  # one line
    assert not (tmp_path / "data").exists()  # refused before touching anything


def test_generated_secrets_stay_out_of_the_database_and_the_password_is_said_once(
    start_server, tmp_path
):
    import re
    import sqlite3
    import stat

    # neither ACS_CWMP_PASSWORD nor ACS_SECRET_KEY: both generated on the first start
    server = start_server("gen", cwmp_password="", secret_key="")
    said = re.search(
        r"CPE credentials acs / (\S+) \(generated now and shown this once: note it\)",
        server.output(),
    )
    assert said is not None, server.output()
    password = said.group(1)
    server.process.stop(timeout=15)
    data = tmp_path / "data-gen"
    assert stat.S_IMODE((data / "acs.db.key").stat().st_mode) == 0o600
    key = (data / "acs.db.key").read_text().strip()
    with sqlite3.connect(data / "acs.db") as db:
        stored = " ".join(v for (v,) in db.execute("SELECT value FROM meta"))
    assert password not in stored and key not in stored

    again = start_server("again", cwmp_password="", secret_key="", data_dir=str(data))
    assert password not in again.output()
    assert (
        "CPE credentials acs / <shown when generated; `acs cpe-password reset` makes a new one>"
        in again.output()
    )
    cpe = FakeCpe()
    with httpx.Client(base_url=again.cwmp_url, timeout=30) as http:
        inform = cpe.inform("0 BOOTSTRAP", "1 BOOT")
        wrong = httpx.DigestAuth("acs", password + "x")
        assert http.post("/acs", content=inform, auth=wrong).status_code == 401
        auth = httpx.DigestAuth("acs", password)
        assert http.post("/acs", content=inform, auth=auth).status_code == 200


def test_postgresql_without_a_server_secret_refuses_to_start_saying_what_to_set(pg_url, tmp_path):
    from bench.serve import free_port

    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in ("ACS_SECRET_KEY", "ACS_SECRET_KEY_FILE")
        },
        "ACS_DATABASE_URL": pg_url,
        "ACS_DATA_DIR": str(tmp_path / "data"),
        "ACS_CWMP_PORT": str(free_port()),
        "ACS_API_PORT": str(free_port()),
    }
    run = subprocess.run(
        [sys.executable, "-m", "acs.cli", "serve"], env=env, capture_output=True, timeout=120
    )
    assert run.returncode == 2
    said = run.stderr.decode()
    assert "ERROR acs: ACS_SECRET_KEY is not set: on PostgreSQL every node needs the same " in said
    assert "Traceback" not in said


def test_a_generated_password_is_said_even_when_the_start_fails_after_it(tmp_path):
    """Only its hash is kept: a start that generates the password and then fails (here the
    data dir cannot be made) still says it, or it would be lost."""
    import re

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {
        **os.environ,
        "ACS_DATABASE_URL": f"sqlite:///{tmp_path / 'acs.db'}",
        "ACS_DATA_DIR": str(blocker / "data"),  # under a file: cannot be made
        "ACS_CWMP_PASSWORD": "",
        "ACS_SECRET_KEY": "e2e-secret",
        "ACS_CWMP_PORT": "0",
        "ACS_CWMP_TLS_PORT": "0",
        "ACS_API_PORT": "0",
        "ACS_BIND": "127.0.0.1",
    }
    run = subprocess.run(
        [sys.executable, "-m", "acs.cli", "serve"], env=env, capture_output=True, timeout=60
    )
    output = run.stderr.decode()
    assert run.returncode == 2, output
    assert "cannot create the data dir" in output
    said = re.search(
        r"the shared CPE password generated at this start, not shown since acs did not serve: "
        r"acs / (\S+) \(note it\)",
        output,
    )
    assert said is not None, output
    assert said.group(1) not in (tmp_path / "acs.db").read_bytes().decode("latin-1")
