"""bench's slow machine (``--contention N``: N processes spinning beside the server) and its
ports (``ACS_BENCH_PORTS``), on real processes and sockets."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from bench.run import contention
from bench.serve import free_port


def _children() -> set[int]:
    kids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        kids |= {int(pid) for pid in (task / "children").read_text().split()}
    return kids


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_contention_spins_n_processes_for_the_block_and_ends_them():
    before = _children()
    with contention(2):
        spinners = _children() - before
        assert len(spinners) == 2
        deadline = time.monotonic() + 30
        while not all(_cpu_ticks(pid) > 10 for pid in spinners):  # each burns the CPU
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert _children() - before == set()
    with contention(0):
        assert _children() == before


def test_free_ports_stay_in_the_range_asked(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ACS_BENCH_PORTS", "18090-18092")
    held = []
    try:
        for _ in range(3):
            port = free_port()
            assert 18090 <= port <= 18092
            sock = socket.socket()
            sock.bind(("127.0.0.1", port))
            held.append(sock)
        with pytest.raises(OSError, match="no free port in ACS_BENCH_PORTS=18090-18092"):
            free_port()
    finally:
        for sock in held:
            sock.close()
