"""TFTP and FTP end to end on `acs serve`: the one namespace of provisioning files fetched
with the clients phones and operators use (Debian's tftp-hpa `tftp`, atftp, curl, Python's
ftplib), and a scripted TFTP client (bench/tftp_client.py) where a test must lose an ACK,
repeat one, or send what no client sends."""

from __future__ import annotations

import asyncio
import ftplib
import hashlib
import io
import os
import random
import re
import shutil
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from acs.tftp import packets
from bench import tftp_client
from bench.serve import free_port
from tests.e2e.conftest import add_operator

MAC = "001565113af8"
OTHER = "0015651199ff"
PASSWORD = "cpe-secret"  # the shared CPE password the e2e servers run with


def tool(name: str, package: str) -> str:
    """The path of a Debian tool the test needs; skipped without it (failed under
    ACS_TEST_REQUIRE_TOOLS=1, as CI runs)."""
    found = shutil.which(name)
    if found is None:
        message = f"no {name} here (Debian's {package} package)"
        if os.environ.get("ACS_TEST_REQUIRE_TOOLS", "") not in ("", "0", "false"):
            pytest.fail(message + " and ACS_TEST_REQUIRE_TOOLS is set", pytrace=False)
        pytest.skip(message)
    return found


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, timeout=60, check=False)


def start(start_server, tmp_path, **env: str):
    """`acs serve` with TFTP and FTP on free ports of 127.0.0.1, an operator "ops"; the shared
    pair reads every file unless the test says otherwise."""
    env.setdefault("tftp_allow", "127.0.0.0/8")
    env.setdefault("provisioning_shared_reads_all", "true")
    server = start_server(
        tftp_port=str(free_port(kind=socket.SOCK_DGRAM)), ftp_port=str(free_port()), **env
    )
    cli_env = {**os.environ, "ACS_DATA_DIR": str(tmp_path / "data-a")}
    if "database_url" in env:
        cli_env["ACS_DATABASE_URL"] = env["database_url"]
    add_operator(cli_env, "ops", "operator", "ops-password")
    server.cli_env = cli_env
    server.tftp_port = _port(server, "TFTP")
    server.ftp_port = _port(server, "FTP")
    return server


def _port(server, name: str) -> int:
    output = server.output()
    found = re.search(rf"acs: {name} listener: \w+://127\.0\.0\.1:(\d+)/", output)
    assert found, output
    return int(found.group(1))


async def provision(server, *, firmware: bytes = b"") -> dict[str, bytes]:
    """Two X6 phones, the X6 general profile, a firmware image and a phone book; the bytes
    of the stored files by name."""
    stored = {"x6-2.5.0.z": firmware or random.randbytes(300_000), "500.csv": b"a,1001\r\n"}
    kinds = {"x6-2.5.0.z": "1 Firmware Upgrade Image", "500.csv": "phonebook"}
    async with httpx.AsyncClient(
        base_url=server.api_url, auth=("ops", "ops-password"), timeout=60
    ) as api:
        r = await api.put(
            "/api/v1/profiles/general/X6",
            json={"modules": {"GLOBAL CONFIG MODULE": {"Time Zone": "32"}}},
        )
        assert r.status_code == 200, r.text
        for mac, user, input_id in ((MAC, "1001", "desk42"), (OTHER, "1002", "desk43")):
            r = await api.put(
                f"/api/v1/phones/{mac}",
                json={
                    "model": "X6",
                    "input_id": input_id,
                    "variables": {"user": user},
                    "modules": {"SIP CONFIG MODULE": {"SIP1 Register User": "{{user}}"}},
                },
            )
            assert r.status_code == 200, r.text
        for name, content in stored.items():
            r = await api.put(
                f"/api/v1/files/{name}", content=content, params={"file_type": kinds[name]}
            )
            assert r.status_code == 201, r.text
        r = await api.put(
            "/api/v1/assignments",
            json={"scope": "model", "target": "X6", "purpose": "image", "file_name": "x6-2.5.0.z"},
        )
        assert r.status_code in (200, 204), r.text
    return stored


def ftp_login(server, user: str = "acs", password: str = PASSWORD) -> ftplib.FTP:
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", server.ftp_port, timeout=30)
    ftp.login(user, password)
    return ftp


def ftp_get(ftp: ftplib.FTP, path: str) -> bytes:
    out = io.BytesIO()
    ftp.retrbinary(f"RETR {path}", out.write)
    return out.getvalue()


async def metrics(server) -> dict[tuple[str, str], float]:
    """acs_file_transfers_total by (protocol, outcome): the node's (all its workers')."""
    async with httpx.AsyncClient(base_url=server.api_url, auth=("ops", "ops-password")) as api:
        text = (await api.get("/metrics")).text
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "acs_file_transfers_total":
                key = (sample.labels["protocol"], sample.labels["outcome"])
                counts[key] = sample.value
    return counts


# --- one namespace ------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request) -> dict[str, str]:
    """The server's database: its SQLite default, or the test run's PostgreSQL."""
    if request.param == "postgresql":
        return {"database_url": request.getfixturevalue("pg_url")}
    return {}


async def test_every_protocol_serves_the_same_bytes_under_the_same_names(
    database, start_server, tmp_path
):
    tftp = tool("tftp", "tftp-hpa")
    curl = tool("curl", "curl")
    server = start(start_server, tmp_path, **database)
    stored = await provision(server)
    names = ["F0V00X600000.cfg", f"{MAC}.cfg", f"{MAC.upper()}.cfg", f"{MAC}.xml", "desk42.cfg"]
    names += list(stored)
    over_http: dict[str, bytes] = {}
    async with httpx.AsyncClient(auth=httpx.DigestAuth("acs", PASSWORD)) as phone:
        for name in names:
            r = await phone.get(f"{server.cwmp_url}/prov/X6/{name}")
            assert r.status_code == 200, (name, r.text)
            over_http[name] = r.content
        for name, content in stored.items():
            assert over_http[name] == content
            assert (await phone.get(f"{server.cwmp_url}/files/{name}")).content == content
    assert over_http[f"{MAC}.cfg"] == over_http[f"{MAC.upper()}.cfg"] == over_http["desk42.cfg"]
    assert b"SIP1 Register User :1001\r\n" in over_http[f"{MAC}.cfg"]
    assert over_http[f"{MAC}.xml"].startswith(b"<VOIP CONFIG FILE>\r\n<Digests>2.0001</Digests>")

    # tftp-hpa, as a phone given tftp://acs/X6/$mac.cfg
    for name in names:
        got = run([tftp, "-m", "binary", "127.0.0.1", str(server.tftp_port), "-c", "get",
                   f"/X6/{name}", "out"], tmp_path)  # fmt: skip
        assert (got.returncode, got.stdout, got.stderr) == (0, b"", b""), name
        assert (tmp_path / "out").read_bytes() == over_http[name], name
    # curl ftp://acs:password@acs/X6/... (a CWD into X6, SIZE, EPSV, RETR) and ftplib
    for name in names:
        got = run([curl, "-sS", "--user", f"acs:{PASSWORD}",
                   f"ftp://127.0.0.1:{server.ftp_port}/X6/{name}"], tmp_path)  # fmt: skip
        assert (got.returncode, got.stderr) == (0, b""), (name, got.stderr)
        assert got.stdout == over_http[name], name
    ftp = ftp_login(server)
    try:
        for name in names:
            assert ftp_get(ftp, name) == over_http[name], name
            assert ftp.size(name) == len(over_http[name])
    finally:
        ftp.quit()

    # the configurations point at the HTTP listener where the phone reached the ACS, whatever
    # the protocol that fetched them: the same bytes, and the version did not move
    image_url = f"Auto Image Url :{server.cwmp_url}/files/x6-2.5.0.z?t=c.".encode()
    assert image_url in over_http[f"{MAC}.cfg"]
    assert b"Version:2.0001\r\n" in over_http[f"{MAC}.cfg"]
    lines = [line for line in server.output().splitlines() if "file transfer" in line]
    tftp_lines = [line for line in lines if "protocol=tftp" in line]
    assert len(tftp_lines) == len(names)
    assert (
        f"file transfer protocol=tftp file=/X6/{MAC.upper()}.cfg mac={MAC} client=127.0.0.1 "
        f"method=RRQ outcome=ok bytes={len(over_http[f'{MAC}.cfg'])} duration_ms="
    ) in "\n".join(tftp_lines)
    assert (
        "file transfer protocol=ftp file=/X6/x6-2.5.0.z client=127.0.0.1 method=RETR "
        "status=226 outcome=ok bytes=300000 duration_ms="
    ) in "\n".join(lines)
    counts = await metrics(server)
    assert counts[("tftp", "ok")] == len(names)
    assert counts[("ftp", "ok")] == 2 * len(names)
    assert counts[("http", "ok")] == len(names) + len(stored)


# --- no escapes -----------------------------------------------------------------------------


async def test_no_path_leaves_the_namespace_on_any_protocol(start_server, tmp_path):
    # no authentication at all (Digest would refuse an encoded path already: its uri is not
    # the decoded path): only the namespace stands between a request and the data dir
    server = start(start_server, tmp_path, provisioning_auth="none")
    await provision(server)
    (tmp_path / "data-a" / "secret.txt").write_text("not to be served\n")
    escapes = ["../acs.db", "X6/../../acs.db", "..", "/..", "..\\acs.db", "%2e%2e/acs.db",
               "..%2facs.db", "%2e%2e%2facs.db", "files/..%5c..%5cacs.db"]  # fmt: skip
    missing = ["/etc/passwd", "secret.txt", "/secret.txt", "acs.db", "files/acs.db"]

    async def tftp_error(name: str) -> packets.Error | None:
        got = await tftp_client.fetch("127.0.0.1", server.tftp_port, name, timeout=5)
        assert not got.complete and got.blocks == [], name
        return got.error

    for name in escapes:
        error = await tftp_error(name)
        assert error is not None and error.code == packets.ErrorCode.ACCESS_VIOLATION, name
        assert error.message.startswith("unsafe "), (name, error)
    for name in missing:
        error = await tftp_error(name)
        assert error is not None and error.code == packets.ErrorCode.FILE_NOT_FOUND, name
    # a NUL ends TFTP's filename field: what follows it is the mode, never part of the name
    raw = b"\x00\x01secret.txt\x00../acs.db\x00"
    got = await tftp_client.fetch("127.0.0.1", server.tftp_port, "", request=raw, timeout=5)
    assert got.error == packets.Error(0, "transfer mode '../acs.db' not served")
    # and a request that is no TFTP packet gets no answer at all
    raw = b"\x00\x01../acs.db\x00x\x00octet\x00"  # an option without its value
    got = await tftp_client.fetch(
        "127.0.0.1", server.tftp_port, "", request=raw, timeout=0.3, retries=0
    )
    assert (got.error, got.blocks, got.timeouts) == (None, [], 1)

    ftp = ftp_login(server)
    try:
        for name in [*escapes, "a\x00.cfg"]:
            with pytest.raises(ftplib.error_perm) as refused:
                ftp_get(ftp, name)
            assert str(refused.value).startswith("550 unsafe "), name
        for name in missing:
            with pytest.raises(ftplib.error_perm) as refused:
                ftp_get(ftp, name)
            assert str(refused.value).startswith("550 no "), name
        with pytest.raises(ftplib.error_perm) as refused:
            ftp.sendcmd("CWD ../..")
        assert str(refused.value) == "550 no directory '../..'"
        ftp.cwd("..")  # CDUP: the root is its own parent
        assert ftp.pwd() == "/"
    finally:
        ftp.quit()

    async with httpx.AsyncClient(base_url=server.cwmp_url) as phone:
        for path in ["/prov/%2e%2e/acs.db", "/prov/X6/%2e%2e%2f%2e%2e%2facs.db",
                     "/prov/..%5cacs.db", "/prov/a%00.cfg", "/files/%2e%2e"]:  # fmt: skip
            r = await phone.get(path)
            assert r.status_code == 422 and r.text.startswith("unsafe "), (path, r.text)
        for path in ["/prov/etc/passwd", "/files/secret.txt", "/prov/acs.db"]:
            r = await phone.get(path)
            assert r.status_code == 404, (path, r.text)
    assert await metrics(server) == {
        ("tftp", "failed"): len(escapes) + 1,
        ("tftp", "missing"): len(missing),
        ("ftp", "failed"): len(escapes) + 1,
        ("ftp", "missing"): len(missing),
        ("http", "failed"): 5,
        ("http", "missing"): 3,
    }


# --- TFTP ----------------------------------------------------------------------------------


async def test_tftp_options_lost_and_repeated_acks_and_a_stranger(start_server, tmp_path):
    server = start(start_server, tmp_path)
    firmware = random.randbytes(100_000)
    await provision(server, firmware=firmware)
    port = server.tftp_port

    # blksize and tsize, as phones ask (the Fanvil capture shows tsize)
    got = await tftp_client.fetch(
        "127.0.0.1", port, "x6-2.5.0.z", options={"blksize": "1428", "tsize": "0"}
    )
    assert (got.complete, got.content == firmware) == (True, True)
    assert got.oack == {"blksize": "1428", "tsize": "100000"}
    assert got.blocks == list(range(1, 100_000 // 1428 + 2))
    # windowsize: 8 blocks per ACK
    got = await tftp_client.fetch(
        "127.0.0.1", port, "x6-2.5.0.z", options={"blksize": "1024", "windowsize": "8"}
    )
    assert got.content == firmware and got.oack == {"blksize": "1024", "windowsize": "8"}
    assert got.blocks == list(range(1, 99))
    # a lost ACK: the server sends block 3 again after its timeout (1 s asked)
    got = await tftp_client.fetch(
        "127.0.0.1", port, "x6-2.5.0.z", options={"timeout": "1"}, skip_ack=3
    )
    assert got.content == firmware
    assert got.blocks == [1, 2, 3, 3, *range(4, 197)]
    # every ACK twice: each block still comes once (no Sorcerer's Apprentice)
    got = await tftp_client.fetch("127.0.0.1", port, "x6-2.5.0.z", duplicate_acks=True)
    assert got.content == firmware and got.blocks == list(range(1, 197))
    # netascii: line ends as CR LF, a CR as CR NUL; no tsize known in advance for stored files
    got = await tftp_client.fetch("127.0.0.1", port, "500.csv", mode="netascii")
    assert got.content == b"a,1001\r\0\r\n"

    # a datagram to a transfer's port from another port is answered ERROR 5, the
    # transfer goes on
    loop = asyncio.get_running_loop()
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.setblocking(False)
    stranger.bind(("127.0.0.1", 0))
    try:
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.setblocking(False)
        client.bind(("127.0.0.1", 0))
        rrq = packets.Request(packets.Opcode.RRQ, "500.csv", "octet")
        await loop.sock_sendto(client, packets.encode(rrq), ("127.0.0.1", port))
        first, server_tid = await asyncio.wait_for(loop.sock_recvfrom(client, 1024), 10)
        assert packets.decode(first) == packets.Data(1, b"a,1001\r\n")
        await loop.sock_sendto(stranger, packets.encode(packets.Ack(1)), server_tid)
        answer = await asyncio.wait_for(loop.sock_recvfrom(stranger, 1024), 10)
        assert packets.decode(answer[0]) == packets.Error(5, "unknown transfer id")
        await loop.sock_sendto(client, packets.encode(packets.Ack(1)), server_tid)
        client.close()
    finally:
        stranger.close()

    # writes are refused: tftp-hpa's put gets ERROR 2
    tftp = tool("tftp", "tftp-hpa")
    (tmp_path / "up.z").write_bytes(b"x")
    put = run([tftp, "-m", "binary", "127.0.0.1", str(port), "-c", "put", "up.z"], tmp_path)
    assert b"Error code 2: read-only server: no writes" in put.stdout + put.stderr
    # atftp with options, as a phone with a larger block and a window
    atftp = tool("atftp", "atftp")
    got_atftp = run([atftp, "--option", "blksize 1428", "--option", "tsize", "--option",
                     "windowsize 4", "-g", "-r", "x6-2.5.0.z", "-l", "fw", "127.0.0.1",
                     str(port)], tmp_path)  # fmt: skip
    assert got_atftp.returncode == 0, got_atftp
    assert (tmp_path / "fw").read_bytes() == firmware
    output = server.output()
    assert "method=WRQ status=2 outcome=refused" in output
    assert (await metrics(server))[("tftp", "ok")] == 7


async def test_tftp_files_over_32_mb_roll_the_block_number_over(start_server, tmp_path):
    server = start(start_server, tmp_path)
    big = random.randbytes(33 * 1024 * 1024 + 100)  # 67585 blocks of 512
    await provision(server, firmware=big)
    digest = hashlib.sha256(big).hexdigest()
    # a window of 64 keeps 67585 blocks of 512 quick on loopback; the numbers wrap to 0
    got = await tftp_client.fetch(
        "127.0.0.1", server.tftp_port, "x6-2.5.0.z", options={"windowsize": "64", "tsize": "0"}
    )
    assert got.complete and hashlib.sha256(got.content).hexdigest() == digest
    assert got.oack == {"windowsize": "64", "tsize": str(len(big))}
    assert len(got.blocks) == 67_585
    assert got.blocks[65_534:65_538] == [65_535, 0, 1, 2]
    # and tftp-hpa, block by block with 512-byte blocks, as the simplest phone fetches
    tftp = tool("tftp", "tftp-hpa")
    fetched = run([tftp, "-m", "binary", "127.0.0.1", str(server.tftp_port), "-c", "get",
                   "x6-2.5.0.z", "big"], tmp_path)  # fmt: skip
    assert (fetched.returncode, fetched.stdout, fetched.stderr) == (0, b"", b"")
    assert hashlib.sha256((tmp_path / "big").read_bytes()).hexdigest() == digest


async def test_tftp_answers_only_the_allowed_networks_and_two_workers_share_it(
    start_server, tmp_path
):
    server = start(start_server, tmp_path, tftp_allow="127.0.0.1/32", workers="2")
    stored = await provision(server)
    # another loopback address plays a phone outside ACS_TFTP_ALLOW: no answer at all
    got = await tftp_client.fetch(
        "127.0.0.1", server.tftp_port, "500.csv", local_host="127.0.0.2", timeout=0.5, retries=1
    )
    assert (got.complete, got.blocks, got.error, got.timeouts) == (False, [], None, 2)
    # 40 phones at once: each worker takes the requests the kernel hands it, and serves
    # every transfer it took to the end on that transfer's own port
    names = ["x6-2.5.0.z", f"{MAC}.cfg"] * 20
    fetches = await asyncio.gather(
        *(
            tftp_client.fetch("127.0.0.1", server.tftp_port, name, options={"blksize": "1428"})
            for name in names
        )
    )
    assert all(f.complete for f in fetches)
    assert {f.content for f in fetches[::2]} == {stored["x6-2.5.0.z"]}
    assert len({f.server for f in fetches}) == 40  # a port of its own per transfer

    def served() -> list[str]:
        return [
            line.split()[2]
            for line in server.output().splitlines()
            if "protocol=tftp" in line and "outcome=ok" in line
        ]

    # a transfer ends at the server when the phone's last ACK arrives, which the phone sends
    # and forgets: the last lines may come a moment after the fetches returned
    for _ in range(200):
        if len(served()) >= 40:
            break
        await asyncio.sleep(0.025)
    output = server.output()
    assert "TFTP request from 127.0.0.2 refused: not in ACS_TFTP_ALLOW" in output
    assert len(served()) == 40
    assert set(served()) <= set(re.findall(r"pids (\d+), (\d+)", output)[0])
    counts = await metrics(server)  # the node's: both workers'
    assert (counts[("tftp", "ok")], counts[("tftp", "refused")]) == (40, 2)


# --- FTP -----------------------------------------------------------------------------------


async def test_ftp_logins_writes_listings_and_passive_ports(start_server, tmp_path):
    curl = tool("curl", "curl")
    low = free_port()
    server = start(
        start_server,
        tmp_path,
        ftp_passive_ports=f"{low}-{low + 3}",
        provisioning_shared_reads_all="false",
    )
    await provision(server)
    # a phone with provisioning credentials of its own
    async with httpx.AsyncClient(base_url=server.api_url, auth=("ops", "ops-password")) as api:
        r = await api.put(
            f"/api/v1/phones/{MAC}/credentials",
            json={"username": "phone-1", "password": "phone-1-secret"},
        )
        assert r.status_code == 200, r.text
    shared = ftp_login(server)
    try:  # the shared pair: general and stored files, no phone's MAC file
        assert ftp_get(shared, "F0V00X600000.cfg").startswith(b"<<VOIP CONFIG FILE>>")
        assert ftp_get(shared, "500.csv") == b"a,1001\r\n"
        for mac_file in (f"{MAC}.cfg", "desk42.cfg"):
            with pytest.raises(ftplib.error_perm) as refused:
                ftp_get(shared, mac_file)
            assert str(refused.value) == f"550 no file {mac_file!r}"
    finally:
        shared.quit()
    own = ftp_login(server, "phone-1", "phone-1-secret")
    try:
        assert b"SIP1 Register User :1001\r\n" in ftp_get(own, f"{MAC}.cfg")
        assert ftp_get(own, "desk42.cfg") == ftp_get(own, f"{MAC.upper()}.cfg")
        assert ftp_get(own, "F0V00X600000.cfg").startswith(b"<<VOIP CONFIG FILE>>")
        assert ftp_get(own, "500.csv") == b"a,1001\r\n"
        resumed = io.BytesIO()  # REST: a download resumed where it broke off
        own.retrbinary("RETR 500.csv", resumed.write, rest=2)
        assert resumed.getvalue() == b"1001\r\n"
        for other in (f"{OTHER}.cfg", "desk43.cfg"):  # another phone's: as if missing
            with pytest.raises(ftplib.error_perm) as refused:
                ftp_get(own, other)
            assert str(refused.value) == f"550 no file {other!r}"
        # passive data connections from the configured range
        host, port = own.makepasv()
        assert (host, low <= port <= low + 3) == ("127.0.0.1", True)
        # nothing is listed; every write is refused
        assert own.nlst() == []
        for command in ("STOR up.z", "APPE up.z", "DELE 500.csv", "MKD d", "RMD d",
                        "RNFR 500.csv", "SITE CHMOD 777 500.csv"):  # fmt: skip
            with pytest.raises(ftplib.error_perm) as refused:
                if command.startswith(("STOR", "APPE")):
                    own.storbinary(command, io.BytesIO(b"x"))
                else:
                    own.sendcmd(command)
            assert str(refused.value) == (
                "550 read-only: files are uploaded through the management API"
            ), command
    finally:
        own.quit()
    # curl's upload gets the same refusal (curl: exit 25, upload failed)
    (tmp_path / "up.z").write_bytes(b"x")
    up = run([curl, "-sS", "--user", f"acs:{PASSWORD}", "-T", "up.z",
              f"ftp://127.0.0.1:{server.ftp_port}/up.z"], tmp_path)  # fmt: skip
    assert up.returncode == 25 and b"550" in up.stderr
    # wrong passwords: 530; ten in a minute from one address, and it waits
    for attempt in range(10):
        with pytest.raises(ftplib.error_perm) as refused:
            ftp_login(server, "acs", f"guess-{attempt}")
        assert str(refused.value) == "530 wrong username or password"
    with pytest.raises(ftplib.error_perm) as refused:
        ftp_login(server, "acs", PASSWORD)
    assert re.fullmatch(r"530 too many failed logins: try again in \d+ s", str(refused.value))
    bad = run([curl, "-sS", "--user", "acs:nope", f"ftp://127.0.0.1:{server.ftp_port}/500.csv"],
              tmp_path)  # fmt: skip
    assert bad.returncode == 67  # curl: login denied
    output = server.output()
    assert "FTP login refused user=acs client=127.0.0.1 failures=1" in output
    assert "FTP login refused user=acs client=127.0.0.1 failures=10" in output
    assert f'auth="phone {MAC}"' in output
    assert "method=STOR status=550 outcome=refused" in output
    assert "Traceback" not in output


# --- start-up -------------------------------------------------------------------------------


def test_start_up_names_the_tftp_and_ftp_listeners(start_server, tmp_path):
    server = start(start_server, tmp_path, ftp_passive_ports="50000-50009")
    said = [
        line.partition(" INFO acs: ")[2]
        for line in server.output().splitlines()
        if " INFO acs: " in line
    ]
    assert said[3:5] == [
        f"TFTP listener: tftp://127.0.0.1:{server.tftp_port}/ (read-only; allowed: 127.0.0.0/8)",
        f"FTP listener: ftp://127.0.0.1:{server.ftp_port}/ (read-only; passive data ports "
        "50000-50009; provisioning auth digest)",
    ]


def test_a_tftp_or_ftp_port_in_use_is_named_before_anything_is_created(tmp_path):
    from tests.e2e.test_serve import _serve_refused

    base = {
        "ACS_DATA_DIR": str(tmp_path / "new"),
        "ACS_CWMP_PORT": str(free_port()),
        "ACS_API_PORT": str(free_port()),
        "ACS_TFTP_ALLOW": "127.0.0.0/8",
    }
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        assert _serve_refused({**base, "ACS_TFTP_PORT": str(port)}) == (
            f"TFTP listener: cannot listen on 127.0.0.1:{port}: the port is in use (another "
            "acs, or another program, listens there); stop it, or choose another port with "
            "ACS_TFTP_PORT (--tftp-port)"
        )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert _serve_refused({**base, "ACS_FTP_PORT": str(port)}).startswith(
            f"FTP listener: cannot listen on 127.0.0.1:{port}: the port is in use"
        )
    assert _serve_refused({**base, "ACS_FTP_PORT": base["ACS_API_PORT"]}) == (
        f"the management API and the FTP listener are both on port {base['ACS_API_PORT']}: "
        "give them different ports (ACS_API_PORT, ACS_FTP_PORT)"
    )
    assert not (tmp_path / "new").exists()


# --- failures -------------------------------------------------------------------------------


async def test_storage_failures_a_full_worker_and_shutdown(start_server, tmp_path):
    server = start(start_server, tmp_path, tftp_max_transfers="1")
    stored = await provision(server)
    # the firmware's bytes gone from the file store (shared storage not mounted): try later
    sha = hashlib.sha256(stored["x6-2.5.0.z"]).hexdigest()
    (tmp_path / "data-a" / "files" / sha[:2] / sha).unlink()
    got = await tftp_client.fetch("127.0.0.1", server.tftp_port, "x6-2.5.0.z")
    assert got.error == packets.Error(0, "storage unavailable, retry later")
    ftp = ftp_login(server)
    try:
        with pytest.raises(ftplib.error_temp) as refused:
            ftp_get(ftp, "x6-2.5.0.z")
        assert str(refused.value) == "451 storage unavailable, try again later"
    finally:
        ftp.quit()
    async with httpx.AsyncClient(auth=httpx.DigestAuth("acs", PASSWORD)) as phone:
        r = await phone.get(f"{server.cwmp_url}/files/x6-2.5.0.z")
        assert (r.status_code, r.headers["retry-after"]) == (503, "60")

    # one transfer in flight fills this worker (ACS_TFTP_MAX_TRANSFERS=1): another phone's
    # request gets no answer, it will ask again
    loop = asyncio.get_running_loop()
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.setblocking(False)
    holder.bind(("127.0.0.1", 0))
    try:
        rrq = packets.Request(packets.Opcode.RRQ, "500.csv", "octet", {"timeout": "30"})
        await loop.sock_sendto(holder, packets.encode(rrq), ("127.0.0.1", server.tftp_port))
        await asyncio.wait_for(loop.sock_recvfrom(holder, 1024), 10)  # the OACK, left unanswered
        got = await tftp_client.fetch(
            "127.0.0.1", server.tftp_port, "500.csv", timeout=0.3, retries=1
        )
        assert (got.blocks, got.error, got.timeouts) == ([], None, 2)
        # stopping the server ends the transfer in flight, and says so
        server.process.stop()
    finally:
        holder.close()
    output = server.output()
    assert (
        "TFTP request from 127.0.0.1 dropped: this worker serves 1 transfers already "
        "(ACS_TFTP_MAX_TRANSFERS)"
    ) in output
    assert (
        "file transfer protocol=tftp file=500.csv client=127.0.0.1 method=RRQ outcome=aborted "
        "bytes=0"
    ) in output
    assert 'auth=allow-list reason="server stopping"' in output
    assert "protocol=tftp file=x6-2.5.0.z client=127.0.0.1 method=RRQ status=0 " in output
    assert "outcome=unavailable" in output
    assert "Traceback" not in output


async def test_a_phone_that_goes_away_frees_its_place_at_once(start_server, tmp_path):
    """A phone switched off mid-transfer: the server's next retransmission meets an ICMP
    "port unreachable" and the transfer ends there, instead of after every retransmission
    (about 30 s): the one place of a full worker is free for the next phone within seconds."""
    server = start(start_server, tmp_path, tftp_max_transfers="1")
    await provision(server)
    loop = asyncio.get_running_loop()
    gone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        gone.setblocking(False)
        gone.bind(("127.0.0.1", 0))
        rrq = packets.Request(packets.Opcode.RRQ, "500.csv", "octet", {})
        await loop.sock_sendto(gone, packets.encode(rrq), ("127.0.0.1", server.tftp_port))
        data, _ = await asyncio.wait_for(loop.sock_recvfrom(gone, 1024), 10)
        assert packets.decode(data) == packets.Data(1, b"a,1001\r\n")  # never acknowledged
    finally:
        gone.close()
    # asked every 0.5 s for 10 s: the place is free after the server's first retransmission
    got = await tftp_client.fetch("127.0.0.1", server.tftp_port, "500.csv", timeout=0.5, retries=20)
    assert (got.complete, got.content) == (True, b"a,1001\r\n")
    # the phone that left counts as aborted (requests dropped meanwhile, busy: as failed)
    assert (await metrics(server)).get(("tftp", "aborted")) == 1.0
    server.process.stop()
    output = server.output()
    assert (
        "file transfer protocol=tftp file=500.csv client=127.0.0.1 method=RRQ outcome=aborted "
        "bytes=0"
    ) in output
    assert 'reason="the client went away (ICMP port unreachable)"' in output


async def test_a_dual_stack_listener_serves_ipv4_and_ipv6_phones(tmp_path):
    import sys

    from bench.serve import Process

    curl = tool("curl", "curl")
    cwmp, api, ftp_port = free_port(), free_port(), free_port()
    tftp_port = free_port(kind=socket.SOCK_DGRAM)
    env = {
        **os.environ,
        "ACS_DATA_DIR": str(tmp_path / "data"),
        "ACS_CWMP_PASSWORD": PASSWORD,
        "ACS_SECRET_KEY": "e2e-secret",
        "ACS_BIND": "::",
        "ACS_CWMP_PORT": str(cwmp),
        "ACS_API_PORT": str(api),
        "ACS_TFTP_PORT": str(tftp_port),
        "ACS_TFTP_ALLOW": "127.0.0.0/8,::1/128",
        "ACS_FTP_PORT": str(ftp_port),
        "ACS_ADMIN_PASSWORD": "admin-password",
    }
    server = Process.start([sys.executable, "-m", "acs.cli", "serve"], env, tmp_path / "log")
    try:
        server.wait_serving(f"http://127.0.0.1:{api}/healthz", 30)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api}", auth=("admin", "admin-password")
        ) as admin:
            r = await admin.put(
                "/api/v1/files/500.csv", content=b"a,1001\r\n", params={"file_type": "phonebook"}
            )
            assert r.status_code == 201, r.text
        for host in ("127.0.0.1", "::1"):
            got = await tftp_client.fetch(host, tftp_port, "500.csv")
            assert (got.content, got.server[0]) == (b"a,1001\r\n", host)  # the address asked
            url_host = f"[{host}]" if ":" in host else host
            for passive in ("--ftp-pasv", "--disable-epsv"):  # EPSV, then PASV (IPv4 only)
                if passive == "--disable-epsv" and ":" in host:
                    continue
                fetched = run([curl, "-sS", passive, "--user", f"acs:{PASSWORD}",
                               f"ftp://{url_host}:{ftp_port}/500.csv"], tmp_path)  # fmt: skip
                assert (fetched.returncode, fetched.stdout) == (0, b"a,1001\r\n"), fetched
    finally:
        server.stop()
    output = server.output()
    assert "client=::1 method=RRQ outcome=ok" in output
    assert "client=127.0.0.1 method=RRQ outcome=ok" in output
    assert output.count("protocol=ftp file=/500.csv") == 3
