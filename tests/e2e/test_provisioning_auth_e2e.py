"""Who may fetch what, end to end on `acs serve` with curl and ftplib: each
ACS_PROVISIONING_AUTH mode's challenge, Basic and Digest over HTTP and HTTPS, a phone's own
credentials (set through the API) against the shared pair, on HTTP, HTTPS and FTP alike."""

from __future__ import annotations

import asyncio
import ftplib
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_https import self_signed
from tests.e2e.test_tftp_ftp_e2e import (
    MAC,
    OTHER,
    PASSWORD,
    ftp_get,
    ftp_login,
    metrics,
    provision,
    start,
)
from tests.e2e.test_tftp_ftp_e2e import tool as require

OWN = ("desk-1", "desk-1-secret")  # the phone MAC's own provisioning credentials


class Curl:
    """curl against one server: ``get`` gives (status, WWW-Authenticate values, body)."""

    def __init__(self, server, tmp_path: Path, cert: str):
        self.server, self.tmp_path, self.cert = server, tmp_path, cert
        self.curl = require("curl", "curl")

    def get(
        self, path: str, auth: tuple[str, str] | None = None, scheme: str = "--digest", *,
        tls: bool = False,
    ) -> tuple[int, list[str], bytes]:  # fmt: skip
        base = self.server.cwmp_tls_url if tls else self.server.cwmp_url
        body, headers = self.tmp_path / "body", self.tmp_path / "headers"
        argv = [self.curl, "-sS", "-o", str(body), "-D", str(headers), "-w", "%{http_code}"]
        argv += ["--cacert", self.cert] if tls else []
        argv += [scheme, "-u", ":".join(auth)] if auth else []
        done = subprocess.run(
            [*argv, base + path], capture_output=True, timeout=60, check=True, text=True
        )
        # with --digest curl's first request gets the challenge: the last response counts
        responses = [r for r in headers.read_text().replace("\r\n", "\n").split("\n\n") if r]
        last = responses[-1]
        challenges = [
            line.split(":", 1)[1].strip()
            for line in last.splitlines()
            if line.lower().startswith("www-authenticate:")
        ]
        return int(done.stdout), challenges, body.read_bytes()

    def status(self, path: str, *args, **kwargs) -> int:
        return self.get(path, *args, **kwargs)[0]


def serve(start_server, tmp_path: Path, **env: str) -> tuple[Any, Curl]:
    tls = self_signed(tmp_path / "tls", "127.0.0.1")
    server = start(start_server, tmp_path, **tls, **env)
    asyncio.run(provision(server))
    with httpx.Client(base_url=server.api_url, auth=("ops", "ops-password")) as api:
        r = api.put(
            f"/api/v1/phones/{MAC}/credentials", json={"username": OWN[0], "password": OWN[1]}
        )
        assert (r.status_code, r.json()["prov_username"]) == (200, OWN[0])
    return server, Curl(server, tmp_path, tls["cwmp_tls_certfile"])


def test_digest_mode_a_phone_gets_its_own_file_and_the_shared_pair_the_general_ones(
    start_server, tmp_path
):
    server, curl = serve(start_server, tmp_path, provisioning_shared_reads_all="false")
    general, own, other = "/prov/F0V00X600000.cfg", f"/prov/{MAC}.cfg", f"/prov/{OTHER}.cfg"
    status, challenges, _ = curl.get(general)
    assert status == 401
    assert [c.split(" ", 1)[0] for c in challenges] == ["Digest"]  # the mode's challenge
    # a phone's own credentials: its MAC file (by MAC or $input id), the general and stored
    # files; another phone's MAC file is as if missing; over HTTP and HTTPS
    for tls in (False, True):
        status, _, body = curl.get(own, OWN, tls=tls)
        assert (status, b"SIP1 Register User :1001\r\n" in body) == (200, True)
        assert curl.status("/prov/desk42.cfg", OWN, tls=tls) == 200
        assert curl.status(general, OWN, tls=tls) == 200
        assert curl.status("/files/x6-2.5.0.z", OWN, tls=tls) == 200
        assert curl.status(other, OWN, tls=tls) == 404
        assert curl.status("/prov/desk43.cfg", OWN, tls=tls) == 404
    assert curl.status(own, (OWN[0], "wrong")) == 401
    # Basic: over HTTPS always, over plain HTTP not (ACS_PROVISIONING_ALLOW_BASIC_OVER_HTTP)
    assert curl.status(own, OWN, "--basic", tls=True) == 200
    assert curl.status(other, OWN, "--basic", tls=True) == 404
    assert curl.status(own, OWN, "--basic") == 401
    # the shared pair: general and stored files, no phone's MAC file
    shared = ("acs", PASSWORD)
    assert curl.status(general, shared) == 200
    assert curl.status("/files/500.csv", shared, "--basic", tls=True) == 200
    assert curl.status(own, shared) == 404
    assert curl.status("/prov/desk42.cfg", shared, "--basic", tls=True) == 404
    # FTP decides the same
    ftp = ftp_login(server, *OWN)
    try:
        assert b"SIP1 Register User :1001\r\n" in ftp_get(ftp, f"{MAC}.cfg")
        assert ftp_get(ftp, "F0V00X600000.cfg").startswith(b"<<VOIP CONFIG FILE>>")
        with pytest.raises(ftplib.error_perm, match="550 no file"):
            ftp_get(ftp, f"{OTHER}.cfg")
    finally:
        ftp.quit()
    url = f"ftp://127.0.0.1:{server.ftp_port}/{MAC}.cfg"
    fetched = subprocess.run([curl.curl, "-sS", "-u", ":".join(OWN), url], capture_output=True)
    assert (fetched.returncode, b"SIP1 Register User :1001" in fetched.stdout) == (0, True)
    refused = subprocess.run([curl.curl, "-sS", "-u", ":".join(shared), url], capture_output=True)
    assert refused.returncode == 78  # curl: the remote file was not found
    output = server.output()
    assert f'auth="digest phone {MAC}"' in output
    assert f'auth="basic phone {MAC}"' in output
    assert 'reason="shared may not read this MAC file"' in output
    # every transfer is one line naming the device when it is known (here by its own
    # credentials, on its model's general file too) and one count
    for protocol, file in (("http", general), ("https", general), ("ftp", "/F0V00X600000.cfg")):
        assert f"file transfer protocol={protocol} file={file} mac={MAC} " in output, protocol
    counted = asyncio.run(metrics(server))
    for protocol in ("http", "https", "ftp"):
        assert counted[(protocol, "ok")] >= 3, protocol
    assert counted[("http", "missing")] >= 3 and counted[("https", "missing")] >= 3
    assert "Traceback" not in output


def test_basic_mode_challenges_basic_and_the_operator_may_let_the_shared_pair_read_all(
    start_server, tmp_path
):
    server, curl = serve(
        start_server,
        tmp_path,
        provisioning_auth="basic",
        provisioning_allow_basic_over_http="true",
        provisioning_shared_reads_all="true",
    )
    own = f"/prov/{MAC}.cfg"
    assert curl.get(own)[:2] == (401, ['Basic realm="acs"'])
    assert curl.status(own, OWN, "--basic") == 200  # allowed over plain HTTP here
    assert curl.status(own, ("acs", PASSWORD), "--basic") == 200  # the shared pair reads all
    assert curl.status(f"/prov/{OTHER}.cfg", OWN, "--basic", tls=True) == 404
    assert curl.status(own, OWN, "--digest") == 401  # basic means Basic
    assert "Traceback" not in server.output()


def test_any_mode_offers_both_and_basic_only_where_it_is_taken(start_server, tmp_path):
    server, curl = serve(start_server, tmp_path, provisioning_auth="any")
    own = f"/prov/{MAC}.cfg"
    status, challenges, _ = curl.get(own, tls=True)
    assert (status, [c.split(" ", 1)[0] for c in challenges]) == (401, ["Digest", "Basic"])
    status, challenges, _ = curl.get(own)
    assert (status, [c.split(" ", 1)[0] for c in challenges]) == (401, ["Digest"])
    assert curl.status(own, OWN, "--basic", tls=True) == 200
    assert curl.status(own, OWN, "--digest", tls=True) == 200
    assert curl.status(own, OWN, "--digest") == 200
    assert curl.status(own, OWN, "--basic") == 401
    # a redirect (as Yealink RPS / Fanvil FDPS): curl gets the 302 and where to go
    with httpx.Client(base_url=server.api_url, auth=("ops", "ops-password")) as api:
        moved = server.cwmp_url + "/files/"
        assert api.put(f"/api/v1/redirects/{MAC[:6]}", json={"url": moved}).status_code == 200
    argv = [curl.curl, "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}"]
    answer = subprocess.run([*argv, server.cwmp_url + own], capture_output=True, text=True)
    assert answer.stdout == f"302 {moved}{MAC}.cfg"
    assert curl.status(own, OWN, "--digest", tls=True) == 302  # its own credentials too
    assert "Traceback" not in server.output()
