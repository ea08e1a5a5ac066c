"""A real ``acs serve`` on a PostgreSQL server of the test's own, killed with SIGKILL while
CPEs hold sessions and operators read and write: every answer meanwhile is a 503 with
Retry-After on both listeners, never a 500 or a reset, and service resumes once it is back.
(tests/services/test_storage_outage.py kills it inside one Inform's transaction, in-process;
this is the same over real sockets, under concurrent traffic.)"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from acs.simulator import datamodels
from bench.serve import acs_cli, add_operator
from tests.fake_cpe import FakeCpe

CPES = 4


@dataclass
class Seen:
    """Every answer of one kind of client, by phase."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    without_retry_after: list[str] = field(default_factory=list)
    phase: str = "up"

    def record(self, who: str, answer: httpx.Response | Exception) -> None:
        with self.lock:
            if isinstance(answer, Exception):
                self.answers[(self.phase, who, type(answer).__name__)] += 1
                return
            self.answers[(self.phase, who, str(answer.status_code))] += 1
            if answer.status_code == 503 and "retry-after" not in answer.headers:
                self.without_retry_after.append(f"{who} {answer.request.url.path}")

    def count(self, phase: str, who: str, status: str) -> int:
        with self.lock:
            return self.answers[(phase, who, status)]


def _cpe_loop(url: str, serial: str, seen: Seen, stop: threading.Event) -> None:
    cpe = FakeCpe(datamodels.gateway(serial))
    while not stop.is_set():
        reply: httpx.Response | None = None
        with httpx.Client(auth=httpx.DigestAuth("acs", "cpe-secret"), timeout=30) as client:
            try:
                reply = client.post(url, content=cpe.inform())
                seen.record("cpe", reply)
                if reply.status_code == 200:  # the InformResponse: the empty POST, then RPCs
                    reply = client.post(url, content=b"")
                    seen.record("cpe", reply)
                for _ in range(50):
                    if reply.status_code != 200:
                        break
                    reply = client.post(url, content=cpe.answer(reply.content))
                    seen.record("cpe", reply)
            except httpx.HTTPError as exc:
                seen.record("cpe", exc)
        if reply is None or reply.status_code == 503:
            stop.wait(0.2)  # not Retry-After's 30 s: the test wants to see the outage


def _api_loop(base: str, seen: Seen, stop: threading.Event) -> None:
    with httpx.Client(base_url=base, auth=("ops", "ops-password"), timeout=30) as api:
        while not stop.is_set():
            for method, path, body in (
                ("GET", "/api/v1/devices", None),
                ("GET", "/api/v1/tasks", None),
                ("GET", "/healthz", None),
                ("POST", "/api/v1/devices/00D09E-IGD-CPE0/tasks", [{"name": "Reboot"}]),
            ):
                try:
                    seen.record("api", api.request(method, path, json=body))
                except httpx.HTTPError as exc:
                    seen.record("api", exc)
            stop.wait(0.05)


def _until(condition, seconds: float, what: str, seen: Seen) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: {seen.answers}"
        time.sleep(0.05)


def test_killing_postgresql_under_traffic_is_503_with_retry_after_never_500(
    own_postgres, start_server, tmp_path
):
    env = {**os.environ, "ACS_DATABASE_URL": own_postgres.url, "ACS_DATA_DIR": str(tmp_path)}
    acs_cli(env, "db", "upgrade")
    add_operator(env, "ops", "operator", "ops-password")
    server = start_server("a", database_url=own_postgres.url)
    seen, stop = Seen(), threading.Event()
    cwmp = server.cwmp_url + "/acs"
    threads = [
        threading.Thread(target=_cpe_loop, args=(cwmp, f"CPE{n}", seen, stop)) for n in range(CPES)
    ]
    threads.append(threading.Thread(target=_api_loop, args=(server.api_url, seen, stop)))
    for thread in threads:
        thread.start()
    try:
        _until(lambda: seen.count("up", "cpe", "204") >= CPES, 60, "sessions before", seen)
        _until(lambda: seen.count("up", "api", "202") >= 1, 60, "a task queued before", seen)
        seen.phase = "down"
        own_postgres.kill()
        _until(
            lambda: (
                seen.count("down", "cpe", "503") >= 10 and seen.count("down", "api", "503") >= 8
            ),
            60,
            "503s while the database is down",
            seen,
        )
        seen.phase = "back"
        own_postgres.start()
        _until(
            lambda: (
                seen.count("back", "cpe", "204") >= CPES and seen.count("back", "api", "202") >= 1
            ),
            90,
            "service after the restart",
            seen,
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    statuses = {status for (_, _, status) in seen.answers}
    assert statuses <= {"200", "202", "204", "503"}, seen.answers  # no 500, no reset
    assert seen.without_retry_after == []
    assert "Traceback" not in server.output(), server.output()[-4000:]
