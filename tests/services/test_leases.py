"""Leases (acs.services.leases): one holder at a time on both databases, renewed by its
holder, taken by another only once expired or released."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from acs.services import leases

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


async def test_one_holder_until_it_expires(db):
    assert await leases.take(db, "xmpp", "a", T0, 30, {"state": "connecting"})
    assert not await leases.take(db, "xmpp", "b", T0 + timedelta(seconds=29), 30)
    # the holder renews (and says something new)
    assert await leases.take(db, "xmpp", "a", T0 + timedelta(seconds=20), 30, {"state": "up"})
    assert not await leases.take(db, "xmpp", "b", T0 + timedelta(seconds=49), 30)
    lease = await leases.read(db, "xmpp")
    assert lease == leases.Lease("xmpp", "a", T0 + timedelta(seconds=50), {"state": "up"})
    assert lease.held(T0 + timedelta(seconds=49)) and not lease.held(T0 + timedelta(seconds=50))
    # not renewed: another takes it, and the old holder cannot renew it back
    assert await leases.take(db, "xmpp", "b", T0 + timedelta(seconds=50), 30)
    assert not await leases.take(db, "xmpp", "a", T0 + timedelta(seconds=51), 30)
    assert (await leases.read(db, "xmpp")).holder == "b"


async def test_release_hands_it_over_at_once(db):
    assert await leases.take(db, "xmpp", "a", T0, 30)
    await leases.release(db, "xmpp", "b", T0)  # not b's: nothing happens
    assert not await leases.take(db, "xmpp", "b", T0 + timedelta(seconds=1), 30)
    await leases.release(db, "xmpp", "a", T0 + timedelta(seconds=2))
    assert await leases.take(db, "xmpp", "b", T0 + timedelta(seconds=2), 30)
    assert await leases.read(db, "other") is None


async def test_of_many_asking_at_once_one_gets_it(db):
    got = await asyncio.gather(*(leases.take(db, "race", f"w{i}", T0, 30) for i in range(8)))
    assert sum(got) == 1
