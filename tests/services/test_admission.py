"""Admission of new sessions: a storm is turned away with 503 + Retry-After at the Inform,
while sessions already admitted are served to the end."""

from __future__ import annotations

import random

from sqlalchemy import text

from acs.cwmp import messages as m
from acs.cwmp import soap
from acs.services.admission import MAX_RETRY_AFTER, MIN_WINDOW, SessionAdmission
from acs.simulator import datamodels
from tests.fake_cpe import FakeCpe
from tests.services.harness import ServiceCpe


class Tick:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limit_counts_open_sessions_until_closed_or_stale():
    tick = Tick()
    a = SessionAdmission(2, session_timeout=30, clock=tick)
    assert a.admit("d1")
    a.opened("s1")
    assert a.admit("d2")
    a.opened("s2")
    assert not a.admit("d3")
    a.closed("s1")
    assert a.admit("d3")
    a.opened("s3")
    assert not a.admit("d4")
    tick.now += 31  # s2 and s3 were never seen to end here: after the timeout they stop counting
    assert a.admit("d4")
    assert a.open_sessions == 0
    a.closed("unknown")  # ended elsewhere, or already forgotten: no effect
    assert a.open_sessions == 0


def test_retry_after_spreads_the_waiting_devices_over_the_completion_rate():
    tick = Tick()
    a = SessionAdmission(2, session_timeout=30, clock=tick, rng=random.Random(7))
    a.opened("busy")
    a.opened("busy2")
    for i in range(398):
        assert not a.admit(f"d{i}")
    for i in range(398):
        assert not a.admit(f"d{i}")  # the same devices again: still 398 waiting, not 796
    slow = [a.retry_after() for _ in range(400)]
    # 400 waiting; nothing measured yet, so 2 sessions in 2 s are assumed: over 1..120 (cap)
    assert min(slow) <= 5 and max(slow) == MAX_RETRY_AFTER
    for i in range(100):  # then 20 sessions a second complete, for 5 s
        a.opened(f"s{i}")
        a.closed(f"s{i}")
        tick.now += 0.05
    fast = [a.retry_after() for _ in range(400)]
    # 400 waiting / 20 per second: spread evenly over 1..20 s
    assert min(fast) <= 3 and 17 <= max(fast) <= 20
    assert 8 <= sum(fast) / len(fast) <= 13
    tick.now += 11  # the window has passed: nobody refused lately, nothing completing
    assert a.retry_after() <= 2


def test_the_assumed_rate_keeps_early_retries_short():
    tick = Tick()
    a = SessionAdmission(500, session_timeout=30, clock=tick, rng=random.Random(3))
    for i in range(500):
        a.opened(f"s{i}")
    for i in range(9500):
        assert not a.admit(f"d{i}")
    a.closed("s0")  # one session ended in the storm's first second: no rate to speak of
    a.closed("s1")
    waits = [a.retry_after() for _ in range(1000)]
    assert max(waits) <= 40  # 10,000 waiting at the assumed 250/s: about 40 s, not minutes


def test_slow_requests_shrink_the_window_and_fast_ones_grow_it_back():
    """Requests served slowly mean more admitted sessions than the database keeps up with:
    fewer are admitted until requests are fast again; then the window grows back to the limit.
    It never goes below MIN_WINDOW (nor above the limit)."""
    tick = Tick()
    a = SessionAdmission(500, session_timeout=30, clock=tick)
    assert a.admitting == 500
    for _ in range(30):  # requests take 4 s (waiting for database connections)
        a.served(4.0)
    shrunk = a.admitting
    assert shrunk < 500
    tick.now += 1.0
    a.served(4.0)
    assert a.admitting < shrunk  # at most once a second, then again
    for _ in range(20):
        tick.now += 1.0
        a.served(4.0)
    assert a.admitting == MIN_WINDOW
    for i in range(MIN_WINDOW):
        assert a.admit(f"d{i}")
        a.opened(f"s{i}")
    assert not a.admit("one-too-many")
    for _ in range(60):  # the backlog drains: requests fast again
        a.served(0.005)
    assert a.admit("one-too-many")
    for _ in range(1000):
        a.served(0.005)
    assert a.admitting == 500


def test_long_sessions_alone_do_not_shrink_the_window():
    """A slow WAN link or a long provisioning session is not load: only the time to serve a
    request counts."""
    tick = Tick()
    a = SessionAdmission(50, session_timeout=300, clock=tick)
    for i in range(50):
        assert a.admit(f"d{i}")
        a.opened(f"s{i}")
    for _ in range(200):
        tick.now += 1.0
        a.served(0.01)
    for i in range(50):
        a.closed(f"s{i}")  # each session lasted minutes
    assert a.admitting == 50


async def test_a_full_worker_refuses_new_informs_but_serves_open_sessions(runtime, db):
    tick = Tick()
    runtime.cwmp.admission = SessionAdmission(2, session_timeout=30, clock=tick)
    cpes = [
        ServiceCpe(runtime, FakeCpe(datamodels.gateway(f"ADM{i}")), host=f"192.0.2.{i + 1}")
        for i in range(3)
    ]
    for cpe in cpes[:2]:
        reply = await cpe.inform()
        assert isinstance(soap.parse_envelope(reply.body).message, m.InformResponse)
    refused = await cpes[2].inform()
    assert refused.status == 503
    assert 1 <= int(dict(refused.headers)["retry-after"]) <= MAX_RETRY_AFTER
    async with db.read() as conn:
        known = await conn.scalar(text("SELECT count(*) FROM devices WHERE id LIKE '%ADM2'"))
    assert known == 0  # refused before anything was written
    assert (await cpes[0].empty()).status == 204  # an admitted session runs to its end
    reply = await cpes[2].inform()  # and frees its place
    assert isinstance(soap.parse_envelope(reply.body).message, m.InformResponse)
    assert (await cpes[1].empty()).status == 204
    assert (await cpes[2].empty()).status == 204


async def test_each_request_transaction_reports_its_time(runtime, monkeypatch):
    """Inform and in-session requests report how long their transaction took (waiting for
    the database included); challenges and refusals, which touch no database, do not."""
    seen: list[float] = []
    monkeypatch.setattr(runtime.cwmp.admission, "served", seen.append)
    statuses: list[int] = []
    handle = runtime.cwmp.handle

    async def counting(request):
        reply = await handle(request)
        statuses.append(reply.status)
        return reply

    monkeypatch.setattr(runtime.cwmp, "handle", counting)
    cpe = ServiceCpe(runtime)
    await cpe.inform()  # a 401 challenge first, then the Inform
    assert statuses == [401, 200] and len(seen) == 1
    assert (await cpe.empty()).status == 204  # (after bootstrap provisioning in between)
    assert len(seen) == len(statuses) - 1 >= 2
    assert all(0 <= s < 5 for s in seen)
