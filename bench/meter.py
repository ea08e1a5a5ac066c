"""What the bench reads from /proc about a server under test: its process tree, its CPU time
(and PostgreSQL's), its memory high-water mark."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from bench.serve import Process


def tree(pid: int) -> list[int]:
    """A process and its descendants (``acs serve`` forks its workers)."""
    pids, todo = [], [pid]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                children = (task / "children").read_text().split()
                todo.extend(int(c) for c in children)
        except OSError:
            pass
    return pids


def peak_rss_mb(server: Process) -> float:
    """The server's memory high-water mark: the sum of its processes' VmHWM."""
    total = 0
    for pid in tree(server.pid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return round(total / 1024, 1)


def cpu_seconds(pids: list[int], *, reaped: bool = False) -> float:
    """User plus system CPU time the processes have used so far; ``reaped``: with that of
    their children that have exited (PostgreSQL's backends come and go)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
        if reaped:
            ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    """The PostgreSQL server's processes on this machine (the bench's database is local)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


class CpuMeter:
    """CPU per completed session, split by who spent it: the server under test, PostgreSQL
    (when it is the backend), and the load generator (this process). Unlike sessions/s,
    which depends on the generator and on whatever else the machine runs, this says what a
    session costs the ACS."""

    def __init__(self, server: Process, postgres: bool):
        self.server, self.postgres = server, postgres

    def sample(self) -> tuple[float, float, float]:
        return (
            cpu_seconds(tree(self.server.pid)),
            cpu_seconds(postgres_pids(), reaped=True) if self.postgres else 0.0,
            time.process_time(),
        )

    def per_session(
        self, before: tuple[float, float, float], sessions: int
    ) -> dict[str, float | None]:
        after = self.sample()
        n = max(sessions, 1)
        server, pg, client = (1000 * (a - b) / n for a, b in zip(after, before, strict=True))
        return {
            "server_cpu_ms": round(server, 3),
            "postgres_cpu_ms": round(pg, 3) if self.postgres else None,
            "client_cpu_ms": round(client, 3),
        }


def rss_mb(server: Process) -> float:
    """The server's resident memory now: the sum of its processes' VmRSS."""
    total = 0
    for pid in tree(server.pid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return round(total / 1024, 1)


def open_fds(server: Process) -> int:
    """File descriptors the server's processes hold open now."""
    total = 0
    for pid in tree(server.pid):
        with contextlib.suppress(OSError):  # a worker that just exited
            total += sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    return total
