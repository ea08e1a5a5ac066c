"""HTTP and HTTPS from one `acs serve`: a pair from `acs tls self-signed` verified by curl, a
CWMP session on each port with the URLs it hands out in its own scheme, Basic only over TLS,
and ACS_TLS_MIN_VERSION as `openssl s_client` finds it."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from acs.cwmp import messages as m
from acs.cwmp import soap
from acs.simulator.datamodels import gateway
from bench.serve import acs_cli, add_operator
from tests.e2e.test_serve import finish_session
from tests.fake_cpe import FakeCpe, device_id
from tests.prosody import require_tool


def self_signed(out: Path, *hosts: str) -> dict[str, str]:
    """`acs tls self-signed`: the settings it printed, as start_server's keywords."""
    args = [a for host in hosts for a in ("--host", host)]
    printed = acs_cli(dict(os.environ), "tls", "self-signed", *args, "--out", str(out))
    lines = printed.decode().splitlines()
    assert lines == [
        f"ACS_CWMP_TLS_CERTFILE={out.resolve() / 'cert.pem'}",
        f"ACS_CWMP_TLS_KEYFILE={out.resolve() / 'key.pem'}",
    ]
    settings = dict(line.split("=", 1) for line in lines)
    return {k.removeprefix("ACS_").lower(): v for k, v in settings.items()}


def serving(server, seconds: float = 30) -> None:
    """Every listener of the first worker serves (the API's /healthz may answer first)."""
    deadline = time.monotonic() + seconds
    while "worker serving" not in server.output():
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)


def test_self_signed_pair_is_verified_by_curl_on_the_https_port(start_server, tmp_path):
    require_tool("curl", "curl")
    from cryptography import x509

    tls = self_signed(tmp_path / "tls", "127.0.0.1", "acs.lab")
    cert, key = Path(tls["cwmp_tls_certfile"]), Path(tls["cwmp_tls_keyfile"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    san = x509.load_pem_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert list(san.value) == [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("acs.lab"),
    ]
    server = start_server(**tls)
    serving(server)
    port = urlsplit(server.cwmp_tls_url).port
    inform = tmp_path / "inform.xml"
    inform.write_bytes(FakeCpe().inform("0 BOOTSTRAP"))

    def curl(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
        # Basic, which the ACS accepts over TLS in its default (digest) mode; curl's Digest
        # would send an empty POST first, which is no Inform
        post = ["-u", "acs:cpe-secret", "-H", "Content-Type: text/xml", "--data-binary"]
        return subprocess.run(
            [
                "curl",
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                *extra,
                *post,
                f"@{inform}",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )

    # an Inform over HTTPS, the certificate verified by address and by name
    ok = curl(f"https://127.0.0.1:{port}/acs", "--cacert", str(cert))
    assert (ok.returncode, ok.stdout) == (0, "200"), ok.stderr
    by_name = curl(
        f"https://acs.lab:{port}/acs",
        "--cacert",
        str(cert),
        "--resolve",
        f"acs.lab:{port}:127.0.0.1",
    )
    assert (by_name.returncode, by_name.stdout) == (0, "200"), by_name.stderr
    # not trusted without it (curl's 60: the peer's certificate cannot be verified)
    untrusted = curl(f"https://127.0.0.1:{port}/acs")
    assert untrusted.returncode == 60, untrusted.stderr


def test_one_server_speaks_cwmp_on_both_ports_each_in_its_own_scheme(start_server, tmp_path):
    """One device a port; the Download URL each is given names the port and scheme it came
    in on, and Basic is refused over HTTP (not allowed) but accepted over HTTPS."""
    tls = self_signed(tmp_path / "tls", "127.0.0.1")
    server = start_server(**tls)
    serving(server)
    cli_env = {**os.environ, "ACS_DATA_DIR": str(tmp_path / "data-a")}
    add_operator(cli_env, "ops", "operator", "ops-password")
    firmware = b"ACS-SIM-FIRMWARE 9.9.9\n"
    r = httpx.put(
        server.api_url + "/api/v1/files/fw.bin",
        content=firmware,
        params={"file_type": "1 Firmware Upgrade Image"},
        auth=("ops", "ops-password"),
    )
    assert r.status_code == 201, r.text
    trust = ssl.create_default_context(cafile=tls["cwmp_tls_certfile"])
    for n, base in enumerate((server.cwmp_url, server.cwmp_tls_url)):
        cpe = FakeCpe(gateway(f"SN{n}"))
        with httpx.Client(verify=trust, auth=httpx.DigestAuth("acs", "cpe-secret")) as c:
            r = c.post(base + "/acs", content=cpe.inform("0 BOOTSTRAP"))
            assert r.status_code == 200
            assert r.headers["set-cookie"].endswith("; Secure") == base.startswith("https:")
            assert finish_session(c, base + "/acs", cpe).status_code == 204
            r = httpx.post(
                f"{server.api_url}/api/v1/devices/{device_id(cpe)}/tasks",
                json={"name": "Download", "file": "fw.bin"},
                auth=("ops", "ops-password"),
            )
            assert r.status_code == 202, r.text
            assert c.post(base + "/acs", content=cpe.inform()).status_code == 200
            request = soap.parse_envelope(c.post(base + "/acs", content=b"").content).message
            assert isinstance(request, m.Download)
            assert request.url.startswith(f"{base}/files/fw.bin?t="), request.url
            assert c.get(request.url).content == firmware  # the scheme's own port serves it
    # Basic: over HTTP refused (ACS_CWMP_ALLOW_BASIC_OVER_HTTP is false), over HTTPS accepted
    cpe = FakeCpe(gateway("SN-basic"))
    refused = httpx.post(server.cwmp_url + "/acs", content=cpe.inform(), auth=("acs", "cpe-secret"))
    assert refused.status_code == 401
    with httpx.Client(verify=trust, auth=("acs", "cpe-secret")) as c:
        r = c.post(server.cwmp_tls_url + "/acs", content=cpe.inform())
        assert r.status_code == 200
        assert finish_session(c, server.cwmp_tls_url + "/acs", cpe).status_code == 204


def s_client(port: int, version: str) -> subprocess.CompletedProcess[str]:
    """A TLS handshake at exactly ``version`` (tls1, tls1_1, tls1_2, tls1_3). The client's
    own security level is lowered to 0, as an old phone's has none: a refusal is the
    server's."""
    return subprocess.run(
        [
            "openssl",
            "s_client",
            "-brief",
            "-connect",
            f"127.0.0.1:{port}",
            f"-{version}",
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )


def handshakes(port: int) -> dict[str, str | None]:
    """Each version: the protocol the server agreed to, or None if it refused."""
    agreed: dict[str, str | None] = {}
    for version in ("tls1", "tls1_1", "tls1_2", "tls1_3"):
        run = s_client(port, version)
        said = [
            line.split(":", 1)[1].strip()
            for line in run.stderr.splitlines()
            if line.startswith("Protocol version:")
        ]
        agreed[version] = said[0] if run.returncode == 0 and said else None
    return agreed


def client_speaks_tls1() -> bool:
    """This OpenSSL still has TLS 1.0 ciphers at security level 0 (some builds drop it)."""
    run = subprocess.run(
        ["openssl", "ciphers", "-s", "-tls1", "DEFAULT:@SECLEVEL=0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return run.returncode == 0 and bool(run.stdout.strip())


def test_tls_min_version_as_openssl_s_client_finds_it(start_server, tmp_path):
    require_tool("openssl", "openssl")
    tls = self_signed(tmp_path / "tls", "127.0.0.1")
    default = start_server("default", **tls)
    serving(default)
    assert handshakes(urlsplit(default.cwmp_tls_url).port) == {
        "tls1": None,
        "tls1_1": None,
        "tls1_2": "TLSv1.2",
        "tls1_3": "TLSv1.3",
    }
    only13 = start_server("only13", tls_min_version="1.3", cwmp_http="off", **tls)
    serving(only13)
    assert handshakes(urlsplit(only13.cwmp_tls_url).port) == {
        "tls1": None,
        "tls1_1": None,
        "tls1_2": None,
        "tls1_3": "TLSv1.3",
    }
    # ACS_CWMP_HTTP=off: nothing listens on the HTTP port
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", urlsplit(only13.cwmp_url).port), timeout=5)
    if not client_speaks_tls1():
        pytest.skip("this OpenSSL has no TLS 1.0 ciphers even at security level 0")
    legacy = start_server("legacy", tls_min_version="1.0", **tls)
    serving(legacy)
    assert handshakes(urlsplit(legacy.cwmp_tls_url).port) == {
        "tls1": "TLSv1",
        "tls1_1": "TLSv1.1",
        "tls1_2": "TLSv1.2",
        "tls1_3": "TLSv1.3",
    }


def test_an_unusable_certificate_is_one_line_before_anything_is_made(tmp_path):
    tls = self_signed(tmp_path / "tls", "127.0.0.1")
    other = self_signed(tmp_path / "other", "127.0.0.1")
    env = {
        **os.environ,
        "ACS_DATA_DIR": str(tmp_path / "data"),
        "ACS_BIND": "127.0.0.1",
        "ACS_CWMP_PORT": "0",
        "ACS_CWMP_TLS_PORT": "0",
        "ACS_API_PORT": "0",
    }
    cases = [
        (
            {"ACS_CWMP_TLS_CERTFILE": str(tmp_path / "none.pem")},
            f"cannot read {tmp_path / 'none.pem'}: No such file or directory",
        ),
        (
            {"ACS_CWMP_TLS_KEYFILE": other["cwmp_tls_keyfile"]},
            f"cannot use {tls['cwmp_tls_certfile']} with {other['cwmp_tls_keyfile']}: "
            "KEY_VALUES_MISMATCH",
        ),
    ]
    for change, said in cases:
        pair = {"ACS_CWMP_TLS_CERTFILE": tls["cwmp_tls_certfile"]}
        pair["ACS_CWMP_TLS_KEYFILE"] = tls["cwmp_tls_keyfile"]
        run = subprocess.run(
            [sys.executable, "-m", "acs.cli", "serve"],
            env={**env, **pair, **change},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 2, run.stderr
        [line] = [line for line in run.stderr.splitlines() if " ERROR " in line]
        assert line.partition(" ERROR acs: ")[2].startswith("CWMP listener (HTTPS): " + said)
        assert not (tmp_path / "data").exists()
    run = subprocess.run(
        [sys.executable, "-m", "acs.cli", "serve"],
        env={**env, "ACS_CWMP_HTTP": "off"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "invalid settings: ACS_CWMP_HTTP=false leaves no CWMP listener: configure a "
        "certificate (ACS_CWMP_TLS_CERTFILE/KEYFILE) for HTTPS"
    )
