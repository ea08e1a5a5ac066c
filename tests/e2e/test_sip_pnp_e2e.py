"""SIP PnP end to end on `acs serve`: a real SIP tool (Debian's sipp, as a phone, with
tests/sip/pnp_phone.xml), a scripted phone over UDP for what sipp does not do (leave a NOTIFY
unanswered, send garbage), multicast to 224.0.1.75 on the loopback and in network namespaces
this test makes, and two workers."""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from acs.sip import message as sip
from bench.serve import Process, free_port
from tests.e2e.conftest import add_operator
from tests.e2e.test_serve import _serve_refused

MAC = "0c383e113af8"
OTHER = "0c383e0000aa"
PASSWORD = "cpe-secret"  # the shared CPE password the e2e servers run with
SCENARIO = Path(__file__).parents[1] / "sip" / "pnp_phone.xml"


def tool(name: str, package: str) -> str:
    """The path of a Debian tool the test needs; skipped without it (failed under
    ACS_TEST_REQUIRE_TOOLS=1, as CI runs)."""
    found = shutil.which(name) or shutil.which(f"/usr/sbin/{name}")
    if found is None:
        message = f"no {name} here (Debian's {package} package)"
        if os.environ.get("ACS_TEST_REQUIRE_TOOLS", "") not in ("", "0", "false"):
            pytest.fail(message + " and ACS_TEST_REQUIRE_TOOLS is set", pytrace=False)
        pytest.skip(message)
    return found


def start(start_server, tmp_path, **env: str):
    """`acs serve` with SIP PnP on a free UDP port of 127.0.0.1, an operator "ops"."""
    server = start_server(sip_pnp_port=str(free_port(kind=socket.SOCK_DGRAM)), **env)
    cli_env = {**os.environ, "ACS_DATA_DIR": str(tmp_path / "data-a")}
    if "database_url" in env:
        cli_env["ACS_DATABASE_URL"] = env["database_url"]
    add_operator(cli_env, "ops", "operator", "ops-password")
    found = re.search(r"acs: SIP PnP responder: sip:127\.0\.0\.1:(\d+) ", server.output())
    assert found, server.output()
    server.sip_port = int(found.group(1))
    server.cwmp_port = int(server.cwmp_url.rsplit(":", 1)[1])
    return server


def counts(server) -> dict[tuple[str, str], float]:
    """The node's acs_sip_pnp_* counters: (name, label value) -> count."""
    r = httpx.get(f"{server.api_url}/metrics", auth=("ops", "ops-password"), timeout=30)
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            if sample.name == "acs_sip_pnp_notifies_total":
                found[("notify", sample.labels["outcome"])] = sample.value
            elif sample.name == "acs_sip_pnp_dropped_total":
                found[("dropped", sample.labels["reason"])] = sample.value
    return found


def wait_for_line(server, pattern: str, seconds: float = 15) -> str:
    """The first line of the server's log matching ``pattern``, once it is there."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for line in server.output().splitlines():
            if re.search(pattern, line):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no line matching {pattern!r} in:\n{server.output()[-3000:]}")


# --- a scripted phone -----------------------------------------------------------------------------


class ScriptedPhone:
    """A phone's SIP stack over UDP, with what a test needs to see and to leave undone."""

    def __init__(self, server_port: int, mac: str = MAC, host: str = "127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.host, self.port = self.sock.getsockname()
        self.server = ("127.0.0.1", server_port)
        self.mac = mac
        self.calls = 0

    def close(self) -> None:
        self.sock.close()

    def subscribe(self, dest: tuple[str, int] | None = None, **replace: str) -> str:
        """Send a SUBSCRIBE (``replace`` a header's line by its name, "" to leave it out);
        its Call-ID."""
        self.calls += 1
        call_id = f"{self.calls}-{self.port}@{self.host}"
        lines = {
            "request": f"SUBSCRIBE sip:MAC%3a{self.mac}@224.0.1.75 SIP/2.0",
            "via": f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{self.calls};rport",
            "from": f"From: <sip:MAC%3a{self.mac}@224.0.1.75>;tag=p{self.calls}",
            "to": f"To: <sip:MAC%3a{self.mac}@224.0.1.75>",
            "call_id": f"Call-ID: {call_id}",
            "cseq": "CSeq: 1 SUBSCRIBE",
            "contact": f"Contact: <sip:{self.host}:{self.port}>",
            "event": 'Event: ua-profile;profile-type="device";vendor="Fanvil";model="X6";'
            'version="2.4.1"',
        }
        lines.update(replace)
        text = "\r\n".join(line for line in lines.values() if line)
        self.send((text + "\r\nContent-Length: 0\r\n\r\n").encode(), dest)
        return call_id

    def send(self, datagram: bytes, dest: tuple[str, int] | None = None) -> None:
        self.sock.sendto(datagram, dest or self.server)

    def receive(self, seconds: float = 10) -> tuple[sip.Request | sip.Response, tuple[str, int]]:
        self.sock.settimeout(seconds)
        datagram, source = self.sock.recvfrom(65535)
        return sip.parse(datagram), source

    def nothing_within(self, seconds: float) -> bool:
        self.sock.settimeout(seconds)
        try:
            self.sock.recvfrom(65535)
        except TimeoutError:
            return True
        return False

    def answer(self, notify: sip.Request) -> None:
        """200 to a NOTIFY, sent where its Via says (RFC 3261 section 18.2.2)."""
        via = sip.parse_via(notify.header_values("via")[0])
        lines = [
            "SIP/2.0 200 OK",
            *(f"Via: {value}" for value in notify.header_values("via")),
            f"From: {notify.header('from')}",
            f"To: {notify.header('to')}",
            f"Call-ID: {notify.header('call-id')}",
            f"CSeq: {notify.header('cseq')}",
            "Content-Length: 0",
        ]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode(), (via.host, via.port or 5060))


@pytest.fixture
def phones() -> Iterator[list[ScriptedPhone]]:
    made: list[ScriptedPhone] = []
    yield made
    for phone in made:
        phone.close()


# --- sipp -----------------------------------------------------------------------------------------


def sipp(
    target: str, tmp_path: Path, mac: str, *, local: str = "127.0.0.1", netns: str | None = None
) -> str:
    """sipp as a phone (tests/sip/pnp_phone.xml) against ``target``: the URL its NOTIFY
    carried, once sipp answered it 200 and exited 0."""
    binary = tool("sipp", "sip-tester")
    port = free_port(kind=socket.SOCK_DGRAM) if netns is None else 5060
    log = tmp_path / f"sipp-{mac}.log"
    argv = [binary, target, "-sf", str(SCENARIO), "-m", "1", "-key", "mac", mac,
            "-i", local, "-p", str(port), "-trace_logs", "-log_file", str(log),
            "-trace_err", "-error_file", str(tmp_path / "sipp-errors.log"),
            "-timeout", "30s", "-timeout_error", "-nostdin"]  # fmt: skip
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    run = subprocess.run(argv, cwd=tmp_path, capture_output=True, timeout=60, check=False)
    errors = tmp_path / "sipp-errors.log"
    assert run.returncode == 0, (run.stdout[-2000:], errors.exists() and errors.read_text())
    [line] = log.read_text().splitlines()
    return line.removeprefix("url ")


async def test_sipp_gets_the_url_of_its_configuration_and_the_url_serves_it(start_server, tmp_path):
    server = start(start_server, tmp_path)
    async with httpx.AsyncClient(
        base_url=server.api_url, auth=("ops", "ops-password"), timeout=30
    ) as api:
        r = await api.put("/api/v1/profiles/general/X6", json={"modules": {}})
        assert r.status_code == 200, r.text
        r = await api.put(
            f"/api/v1/phones/{MAC}",
            json={"model": "X6", "modules": {"SIP CONFIG MODULE": {"SIP1 Register User": "1001"}}},
        )
        assert r.status_code == 200, r.text
        r = await api.put(
            f"/api/v1/phones/{MAC}/credentials", json={"username": "desk-1", "password": "pw-1"}
        )
        assert r.status_code == 200, r.text

    url = sipp(f"127.0.0.1:{server.sip_port}", tmp_path, MAC)

    assert url == f"http://127.0.0.1:{server.cwmp_port}/prov/{MAC}.cfg"
    line = wait_for_line(server, r"acs\.sip: pnp notify ")
    assert re.sub(r"duration_ms=[\d.]+", "duration_ms=D", line.partition("acs.sip: ")[2]) == (
        f'pnp notify mac={MAC} vendor=Fanvil model=X6 user_agent="Fanvil X6 2.4.1" '
        f"client=127.0.0.1 url={url} outcome=done status=200 retransmissions=0 duration_ms=D"
    )
    assert counts(server) == {("notify", "done"): 1.0}
    # what a phone then does with the URL: its configuration, with its own credentials
    async with httpx.AsyncClient(auth=httpx.DigestAuth("desk-1", "pw-1")) as phone:
        r = await phone.get(url)
    assert r.status_code == 200, r.text
    assert b"SIP1 Register User :1001\r\n" in r.content


# --- a scripted phone: what sipp does not do ------------------------------------------------------


def test_a_notify_is_sent_again_until_answered_and_junk_is_dropped(start_server, tmp_path, phones):
    server = start(
        start_server,
        tmp_path,
        sip_pnp_mac_prefixes="0c:38:3e",
        sip_pnp_url="tftp://acs.example/$model/$mac.cfg",
    )
    phone = ScriptedPhone(server.sip_port)
    phones.append(phone)
    # noise first: none of it is answered, and the responder goes on answering
    phone.send(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage")
    phone.send(b"OPTIONS sip:" + b"x" * 9000 + b" SIP/2.0\r\n\r\n")
    phone.subscribe(call_id="")
    phone.subscribe(request=f"OPTIONS sip:{MAC}@127.0.0.1 SIP/2.0", cseq="CSeq: 1 OPTIONS")
    phone.subscribe(event="Event: presence")
    yealink = ScriptedPhone(server.sip_port, mac="001565113af8")
    phones.append(yealink)
    yealink.subscribe()
    phone.subscribe(request="SUBSCRIBE sip:pnp@224.0.1.75 SIP/2.0", to="To: <sip:pnp@x>",
                    **{"from": "From: <sip:anonymous@x>;tag=1"})  # fmt: skip
    call_id = phone.subscribe()

    ok, source = phone.receive()
    assert isinstance(ok, sip.Response)
    assert (ok.status, ok.header("call-id"), ok.header("expires")) == (200, call_id, "0")
    assert source == ("127.0.0.1", server.sip_port)
    notify, notifier = phone.receive()
    assert isinstance(notify, sip.Request) and notify.method == "NOTIFY"
    assert notify.body == f"tftp://acs.example/X6/{MAC}.cfg".encode()
    assert (notify.header("call-id"), notify.header("cseq")) == (call_id, "1 NOTIFY")
    assert notify.header("to") == ok.header("from")
    assert notify.header("from") == ok.header("to")
    assert notifier[1] != server.sip_port  # from the subscription's own socket
    first = time.monotonic()
    # left unanswered, it comes again (Timer E, T1 = 0.5 s), the same bytes, the same port
    again, source = phone.receive()
    assert time.monotonic() - first >= 0.4
    assert (again, source) == (notify, notifier)
    phone.answer(again)
    line = wait_for_line(server, r"acs\.sip: pnp notify ")
    assert f"url=tftp://acs.example/X6/{MAC}.cfg outcome=done status=200 retransmissions=1" in line
    assert phone.nothing_within(1.0)  # answered: no third NOTIFY
    # the responder still answers (a SUBSCRIBE sent again gets the same 200)
    phone.send(_again(phone, call_id))
    again_ok, _ = phone.receive()
    assert again_ok == ok
    assert counts(server) == {
        ("notify", "done"): 1.0,
        ("dropped", "malformed"): 2.0,  # the garbage, and the SUBSCRIBE without a Call-ID
        ("dropped", "too_large"): 1.0,
        ("dropped", "method"): 1.0,
        ("dropped", "event"): 1.0,
        ("dropped", "mac_prefix"): 1.0,
        ("dropped", "no_mac"): 1.0,
    }
    assert (
        "SIP PnP: SUBSCRIBE of 001565113af8 (X6) from 127.0.0.1 not answered: MAC "
        "001565113af8 has none of the prefixes"
    ) in server.output()


def _again(phone: ScriptedPhone, call_id: str) -> bytes:
    """The SUBSCRIBE of ``call_id`` again, as the phone first sent it."""
    number = int(call_id.split("-", 1)[0])
    lines = [
        f"SUBSCRIBE sip:MAC%3a{phone.mac}@224.0.1.75 SIP/2.0",
        f"Via: SIP/2.0/UDP {phone.host}:{phone.port};branch=z9hG4bK{number};rport",
        f"From: <sip:MAC%3a{phone.mac}@224.0.1.75>;tag=p{number}",
        f"To: <sip:MAC%3a{phone.mac}@224.0.1.75>",
        f"Call-ID: {call_id}",
        "CSeq: 1 SUBSCRIBE",
        f"Contact: <sip:{phone.host}:{phone.port}>",
        'Event: ua-profile;profile-type="device";vendor="Fanvil";model="X6";version="2.4.1"',
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request) -> dict[str, str]:
    """The server's database: its SQLite default, or the test run's PostgreSQL."""
    if request.param == "postgresql":
        return {"database_url": request.getfixturevalue("pg_url")}
    return {}


def test_known_only_answers_the_phones_the_acs_has(database, start_server, tmp_path, phones):
    server = start(start_server, tmp_path, sip_pnp_known_only="true", **database)
    stranger, known = ScriptedPhone(server.sip_port, OTHER), ScriptedPhone(server.sip_port)
    phones += [stranger, known]
    r = httpx.put(
        f"{server.api_url}/api/v1/phones/{MAC}",
        json={"model": "X6"},
        auth=("ops", "ops-password"),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    stranger.subscribe()
    known.subscribe()
    ok, _ = known.receive()
    assert isinstance(ok, sip.Response) and ok.status == 200
    notify, _ = known.receive()
    assert isinstance(notify, sip.Request)
    assert notify.body == f"http://127.0.0.1:{server.cwmp_port}/prov/{MAC}.cfg".encode()
    known.answer(notify)
    wait_for_line(server, rf"pnp notify mac={MAC} .* outcome=done")
    assert stranger.nothing_within(1.0)
    assert counts(server) == {("notify", "done"): 1.0, ("dropped", "unknown_phone"): 1.0}
    assert (
        f"SIP PnP: SUBSCRIBE of {OTHER} (X6) from 127.0.0.1 not answered: no phone {OTHER} "
        "in the ACS (ACS_SIP_PNP_KNOWN_ONLY)"
    ) in server.output()


def test_two_workers_each_get_the_answers_to_their_notifies(start_server, tmp_path, phones):
    server = start(start_server, tmp_path, workers="2")
    count = 24
    phones += [ScriptedPhone(server.sip_port, mac=f"0c383e{n:06x}") for n in range(count)]
    notifiers = set()
    for phone in phones:  # one at a time: each datagram wakes both workers, one takes it
        phone.subscribe()
        got = [phone.receive(), phone.receive()]  # the 200 and the NOTIFY, in either order
        [notify] = [m for m, _ in got if isinstance(m, sip.Request)]
        notifiers.add(next(source for m, source in got if m is notify))
        phone.answer(notify)
    assert len(notifiers) == count  # a socket of its own for each phone
    deadline = time.monotonic() + 15
    while counts(server).get(("notify", "done")) != count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert counts(server) == {("notify", "done"): float(count)}
    pids = {m.group(1) for m in re.finditer(r" (\d+) INFO acs\.sip: pnp notify", server.output())}
    assert len(pids) == 2, server.output()  # both workers answered phones


# --- multicast ------------------------------------------------------------------------------------


def test_multicast_on_the_loopback_reaches_a_listener_bound_to_an_address(
    start_server, tmp_path, phones
):
    server = start(start_server, tmp_path)
    assert (
        f"SIP PnP responder: sip:127.0.0.1:{server.sip_port} (multicast 224.0.1.75 on the "
        f"interface of 127.0.0.1; answers every phone with http://<address reached>:"
        f"{server.cwmp_port}/prov/$mac.cfg)"
    ) in server.output()
    phone = ScriptedPhone(server.sip_port)
    phones.append(phone)
    # out of the loopback only: IP_MULTICAST_IF, TTL 1
    phone.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    phone.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, struct.pack("b", 1))
    call_id = phone.subscribe(dest=("224.0.1.75", server.sip_port))
    ok, _ = phone.receive()
    assert isinstance(ok, sip.Response) and (ok.status, ok.header("call-id")) == (200, call_id)
    notify, _ = phone.receive()
    assert isinstance(notify, sip.Request)
    phone.answer(notify)
    wait_for_line(server, rf"pnp notify mac={MAC} .* outcome=done")


def test_multicast_in_network_namespaces(tmp_path):
    """A server namespace and a phone namespace joined by a veth pair: the phone (sipp)
    sends its SUBSCRIBE to 224.0.1.75:5060, `acs serve` on 0.0.0.0 answers."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    tool("ip", "iproute2")
    tool("sipp", "sip-tester")
    tag = f"{os.getpid() % 100000}"
    server_ns, phone_ns = f"acs-sip-s{tag}", f"acs-sip-p{tag}"
    peer = ["peer", "name", f"vp{tag}", "netns", phone_ns]
    commands = [
        ["ip", "netns", "add", server_ns],
        ["ip", "netns", "add", phone_ns],
        ["ip", "link", "add", f"vs{tag}", "netns", server_ns, "type", "veth", *peer],
        ["ip", "-n", server_ns, "addr", "add", "10.75.0.1/24", "dev", f"vs{tag}"],
        ["ip", "-n", phone_ns, "addr", "add", "10.75.0.2/24", "dev", f"vp{tag}"],
        ["ip", "-n", server_ns, "link", "set", "lo", "up"],
        ["ip", "-n", phone_ns, "link", "set", "lo", "up"],
        ["ip", "-n", server_ns, "link", "set", f"vs{tag}", "up"],
        ["ip", "-n", phone_ns, "link", "set", f"vp{tag}", "up"],
        # the phone's multicast goes out of its veth (it has no default route)
        ["ip", "-n", phone_ns, "route", "add", "224.0.0.0/4", "dev", f"vp{tag}"],
    ]
    server: Process | None = None
    try:
        for argv in commands:
            run = subprocess.run(argv, capture_output=True, timeout=30, check=False)
            if run.returncode and argv == commands[0]:
                pytest.skip(f"cannot make a network namespace: {run.stderr.decode().strip()}")
            assert run.returncode == 0, (argv, run.stderr.decode())
        env = {
            **os.environ,
            "ACS_DATA_DIR": str(tmp_path / "data"),
            "ACS_CWMP_PASSWORD": PASSWORD,
            "ACS_SECRET_KEY": "e2e-secret",
            "ACS_LOG_LEVEL": "info",
            "ACS_BIND": "0.0.0.0",
            "ACS_CWMP_PORT": "7547",
            "ACS_API_PORT": "7557",
            "ACS_SIP_PNP_PORT": "5060",
        }
        env.pop("ACS_DATABASE_URL", None)
        server = Process.start(
            ["ip", "netns", "exec", server_ns, sys.executable, "-m", "acs.cli", "serve"],
            env,
            tmp_path / "server.log",
        )
        deadline = time.monotonic() + 60
        while "1 worker serving" not in server.output():
            assert server.popen.poll() is None, server.output()
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)
        joined = re.search(r"SIP PnP responder: sip:0\.0\.0\.0:5060 \(multicast 224\.0\.1\.75 "
                           r"on ([^;]+);", server.output())  # fmt: skip
        assert joined, server.output()
        assert set(joined.group(1).split(", ")) == {"lo", f"vs{tag}"}

        url = sipp("224.0.1.75:5060", tmp_path, MAC, local="10.75.0.2", netns=phone_ns)

        # the URL names the server's address on the phone's network, where it was reached
        assert url == f"http://10.75.0.1:7547/prov/{MAC}.cfg"
        line = wait_for_line(server, r"acs\.sip: pnp notify ")
        assert f"client=10.75.0.2 url={url} outcome=done status=200" in line
    finally:
        if server is not None:
            server.stop(timeout=15)
        for ns in (server_ns, phone_ns):  # the veth pair goes with them
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


# --- start-up -------------------------------------------------------------------------------------


def test_a_sip_pnp_port_in_use_is_named_before_anything_is_created(tmp_path):
    base = {
        "ACS_DATA_DIR": str(tmp_path / "new"),
        "ACS_CWMP_PORT": str(free_port()),
        "ACS_API_PORT": str(free_port()),
    }
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        assert _serve_refused({**base, "ACS_SIP_PNP_PORT": str(port)}) == (
            f"SIP PnP responder: cannot listen on 127.0.0.1:{port}: the port is in use "
            "(another acs, or another program, listens there); stop it, or choose another "
            "port with ACS_SIP_PNP_PORT (--sip-pnp-port)"
        )
    port = free_port(kind=socket.SOCK_DGRAM)
    env = {**base, "ACS_SIP_PNP_PORT": str(port), "ACS_TFTP_PORT": str(port)}
    assert _serve_refused({**env, "ACS_TFTP_ALLOW": "127.0.0.0/8"}) == (
        f"the TFTP listener and the SIP PnP responder are both on port {port}: give them "
        "different ports (ACS_TFTP_PORT, ACS_SIP_PNP_PORT)"
    )
    assert not (tmp_path / "new").exists()


def test_joining_the_group_where_the_listener_is_bound():
    from acs.listeners import sip as listener

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bound:
        bound.bind(("localhost", 0))
        member, where = listener.join(bound)
        assert member is not None
        with member:
            assert member.getsockname() == ("224.0.1.75", bound.getsockname()[1])
            assert where == "the interface of 127.0.0.1"
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as bound:
        bound.bind(("::1", 0))
        with pytest.raises(listener.MulticastUnavailable) as refused:
            listener.join(bound)
        assert str(refused.value) == "224.0.1.75 is IPv4 and ACS_BIND is ::1"


def test_a_group_that_cannot_be_joined_is_one_warning_and_unicast_goes_on(tmp_path):
    port = free_port(kind=socket.SOCK_DGRAM)
    env = {
        **os.environ,
        "ACS_DATA_DIR": str(tmp_path / "data"),
        "ACS_BIND": "::1",
        "ACS_CWMP_PORT": str(free_port()),
        "ACS_API_PORT": str(free_port()),
        "ACS_SIP_PNP_PORT": str(port),
        "ACS_LOG_LEVEL": "info",
    }
    env.pop("ACS_DATABASE_URL", None)
    server = Process.start([sys.executable, "-m", "acs.cli", "serve"], env, tmp_path / "log")
    try:
        wait_for_line(server, r"1 worker serving", seconds=60)
        assert wait_for_line(server, r"WARNING acs: SIP PnP").partition("WARNING acs: ")[2] == (
            "SIP PnP responder: cannot join the multicast group 224.0.1.75 (224.0.1.75 is IPv4 "
            "and ACS_BIND is ::1): only phones given this server's address are answered; "
            "ACS_SIP_PNP_MULTICAST=false says so without this warning"
        )
        assert f"SIP PnP responder: sip:[::1]:{port} (unicast only; answers every phone" in (
            server.output()
        )
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as raw:
            raw.bind(("::1", 0))
            phone_port = raw.getsockname()[1]
            lines = [
                f"SUBSCRIBE sip:{MAC}@[::1] SIP/2.0",
                f"Via: SIP/2.0/UDP [::1]:{phone_port};branch=z9hG4bK6",
                f"From: <sip:{MAC}@[::1]>;tag=6",
                f"To: <sip:{MAC}@[::1]>",
                "Call-ID: v6",
                "CSeq: 1 SUBSCRIBE",
                "Event: ua-profile",
                "Content-Length: 0",
            ]
            raw.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), ("::1", port))
            raw.settimeout(10)
            got = [sip.parse(raw.recvfrom(65535)[0]) for _ in range(2)]
        [notify] = [m for m in got if isinstance(m, sip.Request)]
        cwmp_port = env["ACS_CWMP_PORT"]
        assert notify.body == f"http://[::1]:{cwmp_port}/prov/{MAC}.cfg".encode()
    finally:
        server.stop(timeout=15)
    # never answered: the NOTIFY in flight ends with the server, and is said so
    line = wait_for_line(server, r"acs\.sip: pnp notify ")
    assert f"client=::1 url=http://[::1]:{cwmp_port}/prov/{MAC}.cfg outcome=aborted " in line
