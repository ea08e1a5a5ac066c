"""``acs serve --workers 2`` on real sockets: a worker killed with SIGKILL is respawned in its
slot, the supervisor says which one died and how, and the new worker takes connections."""

from __future__ import annotations

import os
import re
import signal
import time

import httpx

from tests.e2e.test_serve import finish_session
from tests.fake_cpe import FakeCpe


def _wait_for(server, pattern: str, seconds: float = 120) -> re.Match[str]:
    deadline = time.monotonic() + seconds
    while (found := re.search(pattern, server.output())) is None:
        assert time.monotonic() < deadline, server.output()[-4000:]
        time.sleep(0.1)
    return found


def test_a_worker_killed_with_sigkill_is_respawned_and_serves(start_server):
    server = start_server(workers="2")
    started = _wait_for(server, r"2 workers serving \(pids (\d+), (\d+)\)")
    victim, survivor = int(started[1]), int(started[2])
    os.kill(victim, signal.SIGKILL)

    died = _wait_for(server, rf"worker (\d) \(pid {victim}\) killed by SIGKILL; respawning")
    line = next(x for x in server.output().splitlines() if f"(pid {victim}) killed" in x)
    assert line.endswith(
        f"WARNING acs: worker {died[1]} (pid {victim}) killed by SIGKILL; "
        "respawning it in 0.5 s (attempt 1 of 5)"
    )
    again = _wait_for(server, rf"worker {died[1]} serving again \(pid (\d+)\)")
    new = int(again[1])
    assert new not in (victim, survivor)
    os.kill(survivor, 0)  # the other worker was left alone

    # the new worker takes connections: new ones until one of its request lines shows up
    deadline = time.monotonic() + 60
    answered_by_new = f" {new} INFO acs.api: api request"
    while answered_by_new not in server.output():
        assert time.monotonic() < deadline, server.output()[-4000:]
        with httpx.Client() as client:  # a new connection each time
            assert client.get(server.api_url + "/api/v1/devices").status_code == 401
    # and CPE sessions complete on the node of two workers again
    cpe = FakeCpe()
    with httpx.Client(auth=httpx.DigestAuth("acs", "cpe-secret")) as client:
        reply = client.post(server.cwmp_url + "/acs", content=cpe.inform())
        assert reply.status_code == 200
        assert finish_session(client, server.cwmp_url + "/acs", cpe).status_code == 204

    server.process.stop(timeout=30)
    assert server.process.popen.returncode == 0, server.output()[-4000:]
