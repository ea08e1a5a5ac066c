"""Slow and hostile clients against a real `acs serve`: what they cost, and whether a real CPE
still gets through. Short runs, for the figures of a change, not a benchmark.

    python -m bench.slow_clients                     # SQLite, the server's defaults
    python -m bench.slow_clients --slow 3000 --kind headers --sources 12
    python -m bench.slow_clients --hostile 0 --loopers 0 --env ACS_CWMP_MAX_INFLIGHT=100

Measures:
- hostile: server CPU per unauthenticated Inform whose body is 961 KB of 240,000 empty
  elements, sent without credentials and with wrong ones (a valid nonce, a wrong password:
  the first ten of a source, then more);
- loopers: ``--loopers`` clients posting that Inform in a loop, with wrong credentials,
  while a real CPE (acs.simulator's CpeAgent) runs a session: its time;
- slow: ``--slow`` connections that send their request headers (``--kind headers``) or a
  body (``--kind body``) a byte every ``--every`` seconds, spread over ``--sources`` source
  addresses (127.0.0.2, ...), then one real CPE session (acs.simulator's CpeAgent, from
  127.0.0.1): its outcome and time, and how many slow connections the server kept.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import os
import resource
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acs.cwmp import digest
from acs.simulator import datamodels
from acs.simulator.agent import CpeAgent
from bench.meter import cpu_seconds, tree
from bench.serve import Process, serve_acs

PASSWORD = "bench-secret"


def hostile_inform(elements: int = 240_000) -> bytes:
    """An Inform whose body is ``elements`` empty elements after its DeviceId (4 bytes each:
    240,000 make 961 KB, under the 8 MiB body cap and the 250,000-element parse limit)."""
    model = datamodels.gateway("HOSTILE0001")
    agent = CpeAgent(model, "http://unused", username="acs", password="unused")
    inform = agent.inform_body(("2 PERIODIC",))
    cut = inform.index(b"</DeviceId>") + len(b"</DeviceId>")
    return inform[:cut] + b"<a/>" * elements + inform[cut:]


def _post(
    host: str, port: int, body: bytes, authorization: str | None
) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        headers = {"Content-Type": "text/xml"}
        if authorization is not None:
            headers["Authorization"] = authorization
        conn.request("POST", "/", body, headers)
        response = conn.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def wrong_authorization(host: str, port: int, body: bytes) -> str:
    """An Authorization header with a nonce the server issued for this device, and a wrong
    password (the challenge is asked with the same body: the nonce is bound to its DeviceId)."""
    status, headers = _post(host, port, body, None)
    if status != 401:
        raise RuntimeError(f"expected a challenge, got {status}")
    [(_, challenge)] = digest.parse_challenges([headers["www-authenticate"]])
    return digest.client_authorization(challenge, "acs", "wrong-password", method="POST", uri="/")


# acs.services.cwmp.FAILURE_LIMIT: failures of a source before it must show credentials first
FIRST_FAILURES = 10


def measure_hostile(server: Process, cwmp_url: str, count: int) -> dict[str, Any]:
    """Server CPU (ms) per hostile Inform: without credentials; with wrong ones, the first
    ``FIRST_FAILURES`` of the source and ``count`` more after them."""
    host, port = cwmp_url.removeprefix("http://").split(":")
    body = hostile_inform()
    pids = tree(server.pid)
    out: dict[str, Any] = {"body_bytes": len(body)}
    wrong = wrong_authorization(host, int(port), body)
    runs = (
        ("no_credentials", None, count),
        ("wrong_password_first", wrong, FIRST_FAILURES),
        ("wrong_password_then", wrong, count),
    )
    for name, authorization, times in runs:
        statuses = set()
        before = cpu_seconds(pids)
        for _ in range(times):
            statuses.add(_post(host, int(port), body, authorization)[0])
        out[f"{name}_cpu_ms"] = round((cpu_seconds(pids) - before) * 1000 / times, 1)
        out[f"{name}_statuses"] = sorted(statuses)
    return out


def measure_loopers(cwmp_url: str, loopers: int) -> dict[str, Any]:
    """A real CPE's session while ``loopers`` clients post the hostile Inform with wrong
    credentials as fast as they are answered."""
    host, port = cwmp_url.removeprefix("http://").split(":")
    body = hostile_inform()
    wrong = wrong_authorization(host, int(port), body)
    stop = threading.Event()
    sent = [0] * loopers

    def loop(i: int) -> None:
        while not stop.is_set():
            _post(host, int(port), body, wrong)
            sent[i] += 1

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(loopers)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while sum(sent) < FIRST_FAILURES + 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # past the source's first failures (parsed whole)
    before = sum(sent)
    started = time.monotonic()
    try:
        sessions = [asyncio.run(real_session(cwmp_url)) for _ in range(3)]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    rate = (sum(sent) - before) / (time.monotonic() - started)
    return {"sessions_while_looping": sessions, "hostile_requests_per_s": round(rate, 1)}


@dataclass
class SlowClients:
    """``count`` connections sending a request a byte at a time, spread over source addresses."""

    port: int
    count: int
    kind: str  # "headers" or "body"
    sources: int
    every: float
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    closed: int = 0
    refused: int = 0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def open(self) -> None:
        for i in range(self.count):
            source = f"127.0.0.{2 + i % self.sources}"
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", self.port, local_addr=(source, 0)
                )
            except OSError:
                self.refused += 1
                continue
            head = b"POST /acs HTTP/1.1\r\nHost: acs\r\nContent-Type: text/xml\r\n"
            if self.kind == "body":
                head += b"Content-Length: 100000\r\n\r\n<"
            writer.write(head)
            self.writers.append(writer)
            self._tasks.append(asyncio.create_task(self._watch(reader)))
        self._tasks.append(asyncio.create_task(self._trickle()))

    async def _watch(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            await reader.read()  # EOF (or an answer, then EOF): the server let it go
        self.closed += 1

    async def _trickle(self) -> None:
        byte = b"X" if self.kind == "headers" else b"a"
        while True:
            await asyncio.sleep(self.every)
            for writer in self.writers:
                if not writer.is_closing():
                    with contextlib.suppress(OSError):
                        writer.write(byte)

    @property
    def open_now(self) -> int:
        return len(self.writers) - self.closed

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for writer in self.writers:
            writer.close()


async def real_session(cwmp_url: str) -> dict[str, Any]:
    model = datamodels.gateway("REAL0001")
    async with CpeAgent(model, cwmp_url + "/acs", username="acs", password=PASSWORD) as agent:
        report = await agent.session("2 PERIODIC")
    return {
        "ok": report.ok,
        "status": report.status,
        "error": report.error,
        "seconds": round(report.latency, 3),
    }


async def measure_slow(cwmp_url: str, args: argparse.Namespace) -> dict[str, Any]:
    port = int(cwmp_url.rsplit(":", 1)[1])
    baseline = await real_session(cwmp_url)
    slow = SlowClients(port, args.slow, args.kind, args.sources, args.every)
    started = time.monotonic()
    await slow.open()
    await asyncio.sleep(args.settle)
    kept = slow.open_now
    session = await real_session(cwmp_url)
    result = {
        "baseline_session": baseline,
        "slow_opened": len(slow.writers),
        "slow_refused_at_connect": slow.refused,
        "slow_open_at_session": kept,
        "session_with_slow_open": session,
    }
    if args.watch:
        # how long the server keeps them: until all are gone, or --watch seconds
        deadline = started + args.watch
        while slow.open_now and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        result["slow_open_after_watch"] = slow.open_now
        result["watched_seconds"] = round(time.monotonic() - started, 1)
    await slow.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hostile", type=int, default=3, help="hostile Informs of each kind")
    parser.add_argument("--loopers", type=int, default=2, help="hostile clients in a loop")
    parser.add_argument("--slow", type=int, default=2100, help="slow connections (0: none)")
    parser.add_argument("--kind", choices=["headers", "body"], default="body")
    parser.add_argument("--sources", type=int, default=1, help="source addresses 127.0.0.2...")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between their bytes")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before the session")
    parser.add_argument("--watch", type=float, default=0.0, help="then watch them this long")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    args = parser.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as work:
        env = {
            **os.environ,
            "ACS_DATA_DIR": str(Path(work) / "data"),
            "ACS_CWMP_PASSWORD": PASSWORD,
            "ACS_LOG_LEVEL": "warning",
            **dict(item.split("=", 1) for item in args.env),
        }
        server, cwmp_url, _ = serve_acs(env, Path(work) / "server.log")
        try:
            result: dict[str, Any] = {}
            if args.hostile:
                result["hostile"] = measure_hostile(server, cwmp_url, args.hostile)
            if args.loopers:
                result["loopers"] = measure_loopers(cwmp_url, args.loopers)
            if args.slow:
                result["slow"] = asyncio.run(measure_slow(cwmp_url, args))
        finally:
            server.stop()
        for section, values in result.items():
            print(f"{section}:")
            for key, value in values.items():
                print(f"  {key}: {value}")
        tail = server.output().strip().splitlines()[-5:]
        if tail:
            print("server log (last lines):", *tail, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
