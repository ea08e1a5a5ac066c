"""CPEs behind a real NAT (tests/netns.py: network namespaces, iptables MASQUERADE): their
HTTP connection-request listener is out of the ACS's reach, and a task queued with
``connection_request=true`` still runs within seconds, through the STUN binding and a UDP
connection request, or through XMPP (a real Prosody). ``acs serve`` and ``acs simulate``
run as the operator runs them; both databases, two workers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.serve import Process, free_port, serve_acs
from tests.e2e.conftest import add_operator
from tests.netns import Nat, make_nat
from tests.prosody import Prosody, require_prosody

GATEWAY = "00D09E-IGD-NAT00000000"
PHONE_PARAMS = "Device.ManagementServer."


@pytest.fixture
def nat() -> Iterator[Nat]:
    topology = make_nat()
    yield topology
    topology.destroy()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "postgresql":
        return {"ACS_DATABASE_URL": request.getfixturevalue("pg_url")}
    return {}


def _serve(nat: Nat, tmp_path: Path, env: dict[str, str]) -> tuple[Process, str, str]:
    full = {
        **os.environ,
        "ACS_DATA_DIR": str(tmp_path / "data"),
        "ACS_CWMP_PASSWORD": "cpe-secret",
        "ACS_SECRET_KEY": "e2e-secret",
        "ACS_LOG_LEVEL": "info",
        "ACS_WORKERS": "2",
        **env,
    }
    process, cwmp_url, api_url = serve_acs(full, tmp_path / "server.log", host=nat.acs_address)
    cli = {**os.environ, "ACS_DATA_DIR": str(tmp_path / "data")}
    if "ACS_DATABASE_URL" in env:
        cli["ACS_DATABASE_URL"] = env["ACS_DATABASE_URL"]
    add_operator(cli, "ops", "operator", "ops-password")
    return process, cwmp_url, api_url


def _simulate(nat: Nat, cwmp_url: str, tmp_path: Path, *extra: str) -> subprocess.Popen[bytes]:
    """One simulated CPE in the home namespace, behind the NAT, for as long as the test."""
    log = (tmp_path / "simulate.log").open("ab")
    argv = [
        sys.executable, "-m", "acs.cli", "simulate", "--acs-url", cwmp_url + "/acs",
        "--password", "cpe-secret", "--devices", "1", "--ramp", "0", "--duration", "300",
        "--json", str(tmp_path / "simulate.json"), *extra,
    ]  # fmt: skip
    return subprocess.Popen(nat.in_home(argv), stdout=log, stderr=subprocess.STDOUT)


def _until(api: httpx.Client, path: str, check: Any, seconds: float = 60, what: str = "") -> Any:
    """GET ``path`` until ``check(json)`` is true; that JSON."""
    deadline = time.monotonic() + seconds
    body: Any = None
    while time.monotonic() < deadline:
        r = api.get(path)
        if r.status_code == 200:
            body = r.json()
            if check(body):
                return body
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds} s: {what}; last: {body}")


def _queue_with_connection_request(api: httpx.Client, device: str, name: str) -> tuple[Any, float]:
    started = time.monotonic()
    r = api.post(
        f"/api/v1/devices/{device}/tasks",
        params={"connection_request": "true", "wait": "20"},
        json={"name": "GetParameterValues", "parameter_names": [name]},
    )
    return r, time.monotonic() - started


def _unreachable(url: str) -> str:
    """Why a GET of ``url`` from this host (the ACS's) fails: it must."""
    try:
        httpx.get(url, timeout=2)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    raise AssertionError(f"{url} answered from outside the NAT")


def test_stun_binding_and_a_udp_connection_request_through_the_nat(nat, database, tmp_path):
    stun_port = free_port(nat.acs_address, socket.SOCK_DGRAM)
    process, cwmp_url, api_url = _serve(
        nat, tmp_path, {**database, "ACS_STUN_PORT": str(stun_port), "ACS_STUN_KEEPALIVE": "2"}
    )
    cpe = _simulate(nat, cwmp_url, tmp_path, "--stun", "--serial-prefix", "NAT")
    try:
        with httpx.Client(base_url=api_url, auth=("ops", "ops-password"), timeout=60) as api:
            device = _until(
                api,
                f"/api/v1/devices/{GATEWAY}",
                lambda d: (d.get("nat") or {}).get("stun_fresh"),
                what="the device's STUN binding",
            )
            binding = device["nat"]["stun_binding"]
            # the carrier's public address (MASQUERADE), not the CPE's own
            assert binding.rsplit(":", 1)[0] == nat.public_address
            url = device["connection_request_url"]
            assert url.startswith(f"http://{nat.cpe_address}:")
            assert _unreachable(url) in ("ConnectTimeout", "ConnectError")
            params = device["parameters"]
            ms = "InternetGatewayDevice.ManagementServer."
            assert params[ms + "STUNEnable"]["value"] is True
            assert params[ms + "STUNServerAddress"]["value"] == nat.acs_address
            assert device["nat"]["provisioned"]["stun"] is True
            # the device told the ACS too (active notification): the same binding
            _until(
                api,
                f"/api/v1/devices/{GATEWAY}",
                lambda d: d["udp_connection_request_address"] == binding,
                what="UDPConnectionRequestAddress reported",
            )

            r, took = _queue_with_connection_request(api, GATEWAY, ms + "STUNUsername")
            assert r.status_code == 200, r.text
            assert took < 10
            body = r.json()
            assert body["data"][0]["status"] == "done"
            poke = body["connection_request"]
            assert (poke["ok"], poke["method"], poke["target"]) == (True, "udp", binding)
            assert poke["reason"].startswith(f"STUN binding {binding} seen ")
            assert [a["via"] for a in poke["attempts"]] == ["udp", "xmpp"]
            # HTTP was judged behind the NAT and left for last: never needed
            health = api.get("/healthz").json()
            assert health["details"]["stun"]["listening"] == f"{nat.acs_address}:{stun_port}"
    finally:
        cpe.terminate()
        cpe.wait(timeout=30)
        process.stop()
    log = process.output()
    assert f"STUN server: udp {nat.acs_address}:{stun_port}" in log
    assert "stun binding" in log and f"device={GATEWAY}" in log
    assert "connection request" in log and "via=udp" in log


@pytest.fixture
def prosody_on(nat):
    require_prosody()
    server = Prosody("acs.test", host=nat.acs_address, admins=["acs@acs.test"])
    server.register("acs", "acs-password")
    server.start()
    yield server
    server.close()


def test_xmpp_connection_request_through_the_nat(nat, database, prosody_on, tmp_path):
    prosody = prosody_on
    process, cwmp_url, api_url = _serve(
        nat,
        tmp_path,
        {
            **database,
            "ACS_XMPP_JID": "acs@acs.test",
            "ACS_XMPP_PASSWORD": "acs-password",
            "ACS_XMPP_SERVER": prosody.server,
            "ACS_XMPP_CA_FILE": str(prosody.cert),
            "ACS_XMPP_CPE_DOMAIN": "acs.test",
            "ACS_XMPP_CPE_SERVER": prosody.server,
        },
    )
    cpe = _simulate(
        nat, cwmp_url, tmp_path, "--model", "phone", "--xmpp", "--xmpp-ca", str(prosody.cert)
    )
    try:
        with httpx.Client(base_url=api_url, auth=("ops", "ops-password"), timeout=60) as api:
            _until(
                api,
                "/healthz",
                lambda h: h["details"]["xmpp"]["state"] == "connected",
                what="the ACS's XMPP session",
            )
            found = _until(
                api,
                "/api/v1/devices",
                lambda page: page["count"] == 1,
                what="the phone registered",
            )
            phone = found["data"][0]["id"]
            jid_path = PHONE_PARAMS + "ConnReqJabberID"
            device = _until(
                api,
                f"/api/v1/devices/{phone}",
                lambda d: (d["parameters"].get(jid_path) or {}).get("value"),
                what="the phone's JID, reported after it signed in",
            )
            jid = device["parameters"][jid_path]["value"]
            assert jid == f"{phone.lower()}@acs.test/cwmp"
            assert device["nat"]["xmpp_account"] == "created"
            assert _unreachable(device["connection_request_url"]) in (
                "ConnectTimeout",
                "ConnectError",
            )
            for _ in range(3):  # two workers: the one asked may not hold the session
                r, took = _queue_with_connection_request(
                    api, phone, "Device.DeviceInfo.SoftwareVersion"
                )
                assert r.status_code == 200, r.text
                assert took < 10
                poke = r.json()["connection_request"]
                assert (poke["ok"], poke["method"], poke["target"]) == (True, "xmpp", jid)
    finally:
        cpe.terminate()
        cpe.wait(timeout=30)
        process.stop()
    log = process.output()
    assert "xmpp session" in log and "via=xmpp" in log
    assert f"xmpp account device={phone}" in log


def test_a_stun_port_in_use_is_one_line_naming_the_listener(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        env = {
            **os.environ,
            "ACS_DATA_DIR": str(tmp_path / "data"),
            "ACS_BIND": "127.0.0.1",
            "ACS_CWMP_PORT": str(free_port()),
            "ACS_API_PORT": str(free_port()),
            "ACS_STUN_PORT": str(port),
        }
        run = subprocess.run(
            [sys.executable, "-m", "acs.cli", "serve"], env=env, capture_output=True, timeout=60
        )
    assert run.returncode == 2
    [line] = run.stderr.decode().strip().splitlines()
    assert line.endswith(
        f"ERROR acs: STUN server: cannot listen on 127.0.0.1:{port}: the port is in use "
        "(another acs, or another program, listens there); stop it, or choose another port "
        "with ACS_STUN_PORT"
    )
    assert not (tmp_path / "data").exists()
