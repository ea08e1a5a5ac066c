"""/metrics of `acs serve` with two workers: one scrape, answered by either worker, counts
what both did (prometheus_client's multiprocess mode), and parses with its own parser."""

from __future__ import annotations

import re
import time
from collections import Counter

import httpx
from prometheus_client.parser import text_string_to_metric_families

from acs.simulator import datamodels
from tests.e2e.test_serve import finish_session
from tests.fake_cpe import FakeCpe


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(url + "/metrics")
    assert r.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def _ended_by_pid(output: str) -> Counter[str]:
    """Lines "session ended ... outcome=204" per worker pid (the text format's 3rd field)."""
    return Counter(
        line.split(" ")[2]
        for line in output.splitlines()
        if " acs.cwmp: session ended " in line and re.search(r" outcome=204\b", line)
    )


def test_one_scrape_counts_the_sessions_of_both_workers(start_server):
    server = start_server(workers="2", metrics_public="true")
    deadline = time.monotonic() + 60
    while "2 workers serving" not in server.output():
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)
    sessions = 0
    auth = httpx.DigestAuth("acs", "cpe-secret")
    # New connections are accepted by whichever worker is quicker; go on until both served
    # some (boundedly), each session a new device on a new connection.
    while len(_ended_by_pid(server.output())) < 2 or sessions < 10:
        assert sessions < 300, server.output()
        cpe = FakeCpe(datamodels.gateway(f"MX{sessions:04d}"))
        with httpx.Client(auth=auth) as c:
            r = c.post(server.cwmp_url + "/acs", content=cpe.inform("0 BOOTSTRAP", "1 BOOT"))
            assert r.status_code == 200
            assert finish_session(c, server.cwmp_url + "/acs", cpe).status_code == 204
        sessions += 1
        deadline = time.monotonic() + 10  # its line is written after the commit
        while sum(_ended_by_pid(server.output()).values()) < sessions:
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.02)
    by_pid = _ended_by_pid(server.output())
    assert len(by_pid) == 2 and sum(by_pid.values()) == sessions
    got = _scrape(server.api_url)
    assert got[("acs_cwmp_sessions_total", (("outcome", "completed"),))] == sessions
    assert got[("acs_cwmp_informs_total", (("event", "0 BOOTSTRAP"),))] == sessions
    assert got[("acs_cwmp_responses_total", (("status", "204"),))] == sessions
    # bootstrap provisioning and the device's own CWMP credentials: two SetParameterValues
    # each, answered
    rpc = (("outcome", "response"), ("rpc", "SetParameterValues"))
    assert got[("acs_cwmp_rpcs_total", rpc)] == 2 * sessions
    assert got[("acs_cwmp_session_duration_seconds_count", ())] == sessions
    assert got[("acs_devices", (("status", "online"),))] == sessions  # from the database
    # each worker's loop is watched; the larger of their recent stalls is exposed
    assert 0 <= got[("acs_event_loop_lag_max_seconds", ())] < 60
