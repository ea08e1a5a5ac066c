"""``acs serve`` on real sockets, driven by a scripted CPE over HTTP."""

from __future__ import annotations

import gzip
import http.client
import ipaddress
import sqlite3
import ssl
import subprocess
import sys
import time
import zlib
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from acs.cwmp import messages as m
from acs.cwmp import soap
from acs.simulator import datamodels
from tests.cpe_auth_client import digest_header
from tests.fake_cpe import FakeCpe


class RawCpe:
    """A CPE on http.client: exact control of headers, chunking and connections."""

    def __init__(self, base_url: str, *, password: str = "cpe-secret", cookies: bool = True):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.password = password
        self.cookies = cookies
        self.cookie: str | None = None
        self.challenge: str | None = None
        self.nc = 0
        self.conn: http.client.HTTPConnection | None = None
        self.fake = FakeCpe()

    def new_connection(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)

    def send(
        self,
        body: bytes,
        *,
        headers: list[tuple[str, str]] | None = None,
        chunked: bool = False,
        encoding: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        if self.conn is None:
            self.new_connection()
        assert self.conn is not None
        if encoding == "gzip":
            body = gzip.compress(body)
        elif encoding == "deflate":
            body = zlib.compress(body)
        hdrs = list(headers if headers is not None else [("Content-Type", "text/xml")])
        if encoding:
            hdrs.append(("Content-Encoding", encoding))
        if self.cookies and self.cookie:
            hdrs.append(("Cookie", self.cookie))
        if self.challenge:
            self.nc += 1
            hdrs.append(
                (
                    "Authorization",
                    digest_header(self.challenge, "acs", self.password, uri="/acs", nc=self.nc),
                )
            )
        self.conn.putrequest("POST", "/acs", skip_accept_encoding=True)
        for name, value in hdrs:
            self.conn.putheader(name, value)
        if chunked:
            self.conn.putheader("Transfer-Encoding", "chunked")
            self.conn.endheaders()
            for i in range(0, len(body), 100):
                piece = body[i : i + 100]
                self.conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.conn.send(b"0\r\n\r\n")
        else:
            self.conn.putheader("Content-Length", str(len(body)))
            self.conn.endheaders(body)
        response = self.conn.getresponse()
        data = response.read()
        got = {k.lower(): v for k, v in response.getheaders()}
        if "set-cookie" in got:
            self.cookie = got["set-cookie"].split(";")[0]
        if response.status == 401:
            self.challenge = got["www-authenticate"]
            self.nc = 0
        return response.status, got, data

    def finish(self, body: bytes = b"", **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
        """The empty POST, then answer the ACS's requests like a CPE until the 204."""
        reply = self.send(body, **kwargs)
        for _ in range(50):
            if reply[0] != 200:
                return reply
            reply = self.send(self.fake.answer(reply[2]))
        raise AssertionError("the ACS kept sending requests")


def finish_session(client: httpx.Client, url: str, cpe: FakeCpe) -> httpx.Response:
    """Empty POST, then answer ACS requests until the session ends (204)."""
    r = client.post(url, content=b"")
    for _ in range(50):
        if r.status_code != 200:
            return r
        r = client.post(url, content=cpe.answer(r.content))
    raise AssertionError("the ACS kept sending requests")


def test_sqlite_default_full_session(start_server, tmp_path):
    server = start_server()
    assert (tmp_path / "data-a" / "acs.db").exists()  # created and migrated on first start
    cpe = FakeCpe()
    with httpx.Client(base_url=server.cwmp_url, auth=httpx.DigestAuth("acs", "cpe-secret")) as c:
        r = c.post(
            "/acs",
            content=cpe.inform("0 BOOTSTRAP", "1 BOOT"),
            headers={"content-type": "text/xml"},
        )
        assert r.status_code == 200
        assert isinstance(soap.parse_envelope(r.content).message, m.InformResponse)
        assert "acs_session" in c.cookies
        r = finish_session(c, "/acs", cpe)
        assert (r.status_code, r.content) == (204, b"")
    db = sqlite3.connect(tmp_path / "data-a" / "acs.db")
    assert db.execute("SELECT id, ip FROM devices").fetchall() == [
        ("00D09E-IGD-SN0001", "127.0.0.1")
    ]
    assert db.execute("SELECT count(*) FROM cwmp_sessions").fetchone() == (0,)


def test_wrong_password_over_http(start_server, tmp_path):
    server = start_server()
    r = httpx.post(
        server.cwmp_url + "/", content=FakeCpe().inform(), auth=httpx.DigestAuth("acs", "nope")
    )
    assert r.status_code == 401
    db = sqlite3.connect(tmp_path / "data-a" / "acs.db")
    assert db.execute("SELECT count(*) FROM devices").fetchone() == (0,)


def test_a_digest_answer_with_bytes_beyond_ascii_is_refused_not_a_500(start_server):
    """A header may carry any byte: the comparisons of what the client sent with what the
    server computes refuse it (401), on CWMP and on the file server."""
    server = start_server()
    for nonce, response in (("1.2.\xe9", "00"), ("1.2.ab", "\xe9\xe9")):
        header = (
            f'Digest username="acs", realm="acs", nonce="{nonce}", uri="/", '
            f'response="{response}", qop=auth, nc=00000001, cnonce="a"'
        ).encode("latin-1")
        r = httpx.post(
            server.cwmp_url + "/", content=FakeCpe().inform(), headers={"Authorization": header}
        )
        assert r.status_code == 401, r.text
        r = httpx.get(server.cwmp_url + "/files/x.bin", headers={"Authorization": header})
        assert r.status_code == 401, r.text
        r = httpx.get(server.cwmp_url + "/files/x.bin", params={"t": "c.\xe9"})
        assert r.status_code == 403, r.text  # a token that is not ours
    assert "Traceback" not in server.output()


@pytest.mark.parametrize(
    "empty",
    [
        {"headers": [("Content-Type", "text/xml")], "body": b""},
        {"headers": [("Content-Type", "")], "body": b""},
        {"headers": [], "body": b""},
        {"headers": [("Content-Type", "text/xml; charset=utf-8")], "body": b" \r\n\t \r\n"},
    ],
)
def test_chunked_inform_and_empty_post_variants(start_server, empty):
    server = start_server()
    cpe = RawCpe(server.cwmp_url)
    status, _, _ = cpe.send(cpe.fake.inform(), chunked=True)
    assert status == 401
    status, headers, body = cpe.send(cpe.fake.inform(), chunked=True)
    assert status == 200, body
    assert headers["content-type"] == 'text/xml; charset="utf-8"'
    assert isinstance(soap.parse_envelope(body).message, m.InformResponse)
    status, _, body = cpe.finish(empty["body"], headers=empty["headers"])
    assert (status, body) == (204, b"")


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies(start_server, encoding):
    server = start_server()
    cpe = RawCpe(server.cwmp_url)
    cpe.send(cpe.fake.inform(), encoding=encoding)
    status, _, body = cpe.send(cpe.fake.inform(), encoding=encoding)
    assert status == 200
    assert isinstance(soap.parse_envelope(body).message, m.InformResponse)
    assert cpe.finish(encoding=encoding)[0] == 204


def test_cpe_without_cookies_on_a_new_connection_per_request(start_server):
    server = start_server()
    cpe = RawCpe(server.cwmp_url, cookies=False)
    cpe.send(cpe.fake.inform())
    status, _, _ = cpe.send(cpe.fake.inform())
    assert status == 200
    cpe.new_connection()  # HTTP/1.0-style CPE: fresh TCP connection, no cookie
    status, _, body = cpe.send(b"")
    while status == 200:
        cpe.new_connection()
        status, _, body = cpe.send(cpe.fake.answer(body))
    assert status == 204


def test_oversize_and_bomb_bodies_are_refused(start_server):
    server = start_server(cwmp_max_body_bytes="65536")
    big = b"<x>" + b"a" * 70000 + b"</x>"
    r = httpx.post(server.cwmp_url + "/acs", content=big)
    assert r.status_code == 413
    cpe = RawCpe(server.cwmp_url)
    status, _, _ = cpe.send(big, chunked=True)  # no Content-Length to look at
    assert status == 413
    cpe.new_connection()
    bomb = gzip.compress(b" " * 50_000_000)
    status, _, body = cpe.send(
        bomb, headers=[("Content-Type", "text/xml"), ("Content-Encoding", "gzip")]
    )
    assert status == 413
    assert b"decompressed body exceeds" in body
    r = httpx.post(server.cwmp_url + "/acs", content=b"x", headers={"content-encoding": "br"})
    assert (r.status_code, r.text) == (400, "unsupported Content-Encoding 'br'\n")
    # the server is still fine
    assert httpx.get(server.api_url + "/healthz").json()["status"] == "ok"


def test_hostile_xml_over_http(start_server):
    server = start_server()
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><x>&b;</x>'
    )
    r = httpx.post(server.cwmp_url + "/acs", content=bomb)
    assert r.status_code == 400
    assert r.text.startswith("refused: DTDs and entity declarations are not accepted")


def test_session_hops_between_two_servers_on_postgresql(start_server, pg_url):
    a = start_server("a", database_url=pg_url)
    b = start_server("b", database_url=pg_url)
    cpe = FakeCpe(datamodels.phone("00:15:65:11:3a:f8"))
    auth = httpx.DigestAuth("acs", "cpe-secret")
    with httpx.Client(auth=auth) as c:
        r = c.post(a.cwmp_url + "/acs", content=cpe.inform("1 BOOT"))
        assert r.status_code == 200
        # the next request of the session goes to the other node
        r = c.post(b.cwmp_url + "/acs", content=cpe.request(m.GetRPCMethods()))
        assert soap.parse_envelope(r.content).message == m.GetRPCMethodsResponse(m.ACS_METHODS)
        # the ACS's requests (bootstrap provisioning) alternate between the nodes too
        r = c.post(a.cwmp_url + "/acs", content=b"")
        node = 0
        while r.status_code == 200:
            node += 1
            r = c.post((a, b)[node % 2].cwmp_url + "/acs", content=cpe.answer(r.content))
        assert r.status_code == 204
    # a nonce issued by one node is accepted by the other (stateless nonces)
    with httpx.Client(auth=auth) as c:
        r = c.post(b.cwmp_url + "/acs", content=cpe.inform())
        assert r.status_code == 200
        assert finish_session(c, b.cwmp_url + "/acs", cpe).status_code == 204


def test_serve_refuses_an_unmigrated_postgresql_database(tmp_path, pg_database_url):
    import asyncio

    from sqlalchemy.engine import make_url

    from tests.conftest import _create_pg_database, _drop_pg_database

    name = "acs_test_unmigrated_" + str(abs(hash(str(tmp_path))) % 10**8)
    asyncio.run(_create_pg_database(name))
    url = make_url(pg_database_url).set(database=name).render_as_string(hide_password=False)
    try:
        env = {
            "ACS_DATABASE_URL": url,
            "ACS_CWMP_PORT": "0",
            "ACS_API_PORT": "0",
            "ACS_BIND": "127.0.0.1",
            "ACS_DATA_DIR": str(tmp_path),
        }
        import os

        run = subprocess.run(
            [sys.executable, "-m", "acs.cli", "serve"],
            env={**os.environ, **env},
            capture_output=True,
            timeout=60,
        )
        assert run.returncode != 0
        assert b"run `acs db upgrade`" in run.stderr
        up = subprocess.run(
            [sys.executable, "-m", "acs.cli", "db", "upgrade"],
            env={**os.environ, **env},
            capture_output=True,
            timeout=60,
        )
        assert up.returncode == 0, up.stderr
        assert up.stdout == b"database at head\n"
    finally:
        asyncio.run(_drop_pg_database(name))


def test_two_workers_share_the_listeners(start_server, tmp_path):
    server = start_server(workers="2")
    cpe = FakeCpe()
    auth = httpx.DigestAuth("acs", "cpe-secret")
    pids = set()
    for _ in range(6):  # new connections spread over both workers; sessions still complete
        with httpx.Client(auth=auth) as c:
            r = c.post(server.cwmp_url + "/acs", content=cpe.inform())
            assert r.status_code == 200
            assert finish_session(c, server.cwmp_url + "/acs", cpe).status_code == 204
        metrics = httpx.get(server.api_url + "/healthz").json()
        assert metrics["status"] == "ok"
    # The first worker to come up answers /healthz; the second may still be starting (seen on
    # a loaded 2-core machine), so wait for it, boundedly.
    deadline = time.monotonic() + 30
    while len(pids) < 2 and time.monotonic() < deadline:
        for line in server.output().splitlines():
            if "Started server process" in line:
                pids.add(line.split("[")[-1].rstrip("]"))
        time.sleep(0.1)
    assert len(pids) == 2, server.output()


def _self_signed(tmp_path):
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_basic_auth_over_tls(start_server, tmp_path):
    cert, key = _self_signed(tmp_path)
    server = start_server(cwmp_auth="basic", cwmp_tls_certfile=str(cert), cwmp_tls_keyfile=str(key))
    url = server.cwmp_tls_url + "/acs"
    cpe = FakeCpe()
    trust = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(verify=trust, auth=("acs", "cpe-secret")) as c:
        r = c.post(url, content=cpe.inform("0 BOOTSTRAP"))
        assert r.status_code == 200
        assert r.headers["set-cookie"].endswith("; Secure")
        assert finish_session(c, url, cpe).status_code == 204
    with httpx.Client(verify=trust, auth=("acs", "wrong")) as c:
        r = c.post(url, content=cpe.inform())
        assert (r.status_code, r.headers["www-authenticate"]) == (401, 'Basic realm="acs"')


def test_basic_mode_without_tls_refuses_to_start(tmp_path):
    import os

    env = {
        **os.environ,
        "ACS_CWMP_AUTH": "basic",
        "ACS_DATA_DIR": str(tmp_path),
        "ACS_CWMP_PORT": "0",
        "ACS_API_PORT": "0",
        "ACS_BIND": "127.0.0.1",
    }
    run = subprocess.run(
        [sys.executable, "-m", "acs.cli", "serve"], env=env, capture_output=True, timeout=60
    )
    assert run.returncode == 2
    assert b"ACS_CWMP_AUTH=basic needs TLS" in run.stderr


def test_invalid_settings_are_named_without_echoing_secrets(tmp_path):
    import os

    env = {
        **os.environ,
        "ACS_DATA_DIR": str(tmp_path),
        "ACS_ADMIN_PASSWORD": "short7!",
        "ACS_CWMP_PORT": "not-a-port",
    }
    run = subprocess.run(
        [sys.executable, "-m", "acs.cli", "serve"], env=env, capture_output=True, timeout=60
    )
    assert run.returncode == 2
    err = run.stderr.decode()
    assert "ACS_ADMIN_PASSWORD: String should have at least 8 characters" in err
    assert "ACS_CWMP_PORT:" in err
    assert "short7!" not in err
    assert not (tmp_path / "acs.db").exists()  # refused before touching anything


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_listener_sockets_get_nagle_turned_off(loop: str):
    """asyncio sets TCP_NODELAY only on sockets whose proto says TCP; with Nagle on, a
    response written in two parts waited for the client's delayed ACK (~40 ms a request).
    Both event loops a worker may run on (ACS_EVENT_LOOP)."""
    import asyncio
    import socket

    from acs.server import bind, run_loop

    async def main() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        listener = bind("127.0.0.1", 0)
        server = await asyncio.start_server(handler, sock=listener)
        async with server:
            port = listener.getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            value = await asyncio.wait_for(seen, 10)
            writer.close()
        return value

    assert run_loop(main(), loop) != 0


def test_workers_run_on_uvloop_unless_told_otherwise():
    import uvloop

    from acs.server import loop_factory

    assert loop_factory("auto") is uvloop.new_event_loop  # installed with uvicorn[standard]
    assert loop_factory("uvloop") is uvloop.new_event_loop
    assert loop_factory("asyncio") is None  # asyncio.Runner's default loop


def _serve_refused(env: dict[str, str]) -> str:
    """``acs serve`` that refuses to start: exit code 2, one line on stderr; its message."""
    import os

    run = subprocess.run(
        [sys.executable, "-m", "acs.cli", "serve"],
        env={**os.environ, "ACS_BIND": "127.0.0.1", **env},
        capture_output=True,
        timeout=60,
    )
    lines = run.stderr.decode().splitlines()
    assert (run.returncode, len(lines)) == (2, 1), run.stderr.decode()
    assert run.stdout == b""
    return lines[0].partition(" ERROR acs: ")[2]


def test_a_port_in_use_is_named_before_anything_is_created(tmp_path):
    import socket

    from bench.serve import free_port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "ACS_DATA_DIR": str(tmp_path / "new"),
            "ACS_CWMP_PORT": str(free_port()),
            "ACS_API_PORT": str(port),
        }
        assert _serve_refused(env) == (
            f"management API: cannot listen on 127.0.0.1:{port}: the port is in use (another "
            "acs, or another program, listens there); stop it, or choose another port with "
            "ACS_API_PORT (--api-port)"
        )
        env = {**env, "ACS_CWMP_PORT": str(port), "ACS_API_PORT": str(free_port())}
        assert _serve_refused(env).startswith(
            f"CWMP listener: cannot listen on 127.0.0.1:{port}: the port is in use"
        )
    assert not (tmp_path / "new").exists()


def test_a_postgresql_that_is_down_is_one_line(tmp_path):
    from bench.serve import free_port

    port = free_port()
    env = {
        "ACS_DATA_DIR": str(tmp_path / "new"),
        "ACS_DATABASE_URL": f"postgres://acs:s3cret@127.0.0.1:{port}/acs",
        "ACS_CWMP_PORT": "0",
        "ACS_API_PORT": "0",
        "ACS_LOG_LEVEL": "warning",
    }
    assert _serve_refused(env) == (
        f"cannot reach PostgreSQL at 127.0.0.1:{port}: connection refused; start PostgreSQL, "
        "or fix the host and port in ACS_DATABASE_URL (database "
        f"postgresql+asyncpg://acs:***@127.0.0.1:{port}/acs, data dir {tmp_path}/new)"
    )
    assert not (tmp_path / "new").exists()


def _wait_for(server, text: str, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    while text not in server.output():
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)
    return server.output()


def test_start_up_says_where_and_when_it_serves_in_text(start_server, tmp_path):
    server = start_server()
    cwmp_port, api_port = urlsplit(server.cwmp_url).port, urlsplit(server.api_url).port
    output = _wait_for(server, "worker serving")
    said = [
        line.partition(" INFO acs: ")[2] for line in output.splitlines() if " INFO acs: " in line
    ]
    [pid] = {line.split(" ")[2] for line in output.splitlines() if " INFO acs: " in line}
    data = tmp_path / "data-a"
    assert said == [
        f"using database sqlite+aiosqlite:///{data}/acs.db, data dir {data}",
        f"CWMP listener: http://127.0.0.1:{cwmp_port}/ (auth digest; CPE credentials acs / "
        "<from ACS_CWMP_PASSWORD>)",
        f"management API: http://127.0.0.1:{api_port}/api/v1/docs",
        f"1 worker serving (pid {pid})",
    ]
    # the listeners are announced once serving: after uvicorn started both servers
    lines = output.splitlines()
    started = [n for n, line in enumerate(lines) if "Started server process" in line]
    assert len(started) == 2
    assert max(started) < next(n for n, line in enumerate(lines) if "CWMP listener:" in line)


def test_start_up_lines_as_json_with_two_workers(start_server):
    import json

    server = start_server(workers="2", log_format="json")
    output = _wait_for(server, "2 workers serving")
    docs = [json.loads(line) for line in output.splitlines()]  # every line is one object
    assert {tuple(sorted(d)) for d in docs} == {
        ("level", "logger", "message", "process", "request_id", "session_id", "time")
    }
    ours = [d for d in docs if d["logger"] == "acs"]
    parent = {d["process"] for d in ours}
    workers = sorted(
        int(d["message"].split("[")[1].rstrip("]"))
        for d in docs
        if d["message"].startswith("Started server process")
    )
    assert len(parent) == 1 and len(set(workers)) == 2 and parent.isdisjoint(workers)
    messages = [d["message"] for d in ours]
    assert messages[1].startswith("CWMP listener: http://127.0.0.1:")
    assert messages[2].startswith("management API: http://127.0.0.1:")
    pids = sorted(set(workers))
    assert messages[3:] == [f"2 workers serving (pids {pids[0]}, {pids[1]})"]
    assert {d["level"] for d in ours} == {"INFO"}
    assert all(d["time"].endswith("Z") and d["request_id"] is None for d in docs)
