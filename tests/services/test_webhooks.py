"""Webhooks (services/webhooks.py) against a real HTTP receiver on 127.0.0.1, on SQLite and
PostgreSQL: signed deliveries, retries with backoff while the receiver is down, nothing lost
or sent twice by two dispatchers, leases of a dead dispatcher taken over."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from acs.services import events, webhooks
from acs.services.errors import Invalid
from acs.simulator import datamodels
from tests.fake_cpe import FakeCpe
from tests.services.harness import ServiceCpe, rows, session
from tests.webhook_receiver import Receiver

SECRET = "a-receiver-secret-of-32-chars..."


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


async def hook(runtime, receiver, clock, **kwargs):
    created, secret = await runtime.webhooks.create(
        url=kwargs.pop("url", receiver.url),
        event_types=kwargs.pop("event_types", ["device.registered"]),
        filter_=kwargs.pop("filter_", {}),
        secret=kwargs.pop("secret", SECRET),
        now=clock.dt,
        created_by="admin",
    )
    return created, secret


async def statuses(db) -> list[tuple[str, int]]:
    return [
        (s, n)
        for s, n in await rows(db, "SELECT status, attempts FROM webhook_deliveries ORDER BY id")
    ]


async def test_a_delivery_is_signed_and_says_what_happened(runtime, clock, db, receiver):
    created, secret = await hook(runtime, receiver, clock)
    assert secret == SECRET
    await session(ServiceCpe(runtime), "0 BOOTSTRAP", "1 BOOT")
    assert await runtime.webhooks.dispatch(clock.dt) == (1, 1)
    [got] = receiver.received
    [event] = await events.list_events(db, types=["device.registered"])
    assert got.json == {
        "id": event["id"],
        "type": "device.registered",
        "time": clock.dt.isoformat().replace("+00:00", "Z"),
        "device_id": "00D09E-IGD-SN0001",
        "details": {},
    }
    assert (got.path, got.headers["x-acs-event"], got.headers["content-type"]) == (
        "/hook",
        "device.registered",
        "application/json",
    )
    stamp = int(clock.dt.timestamp())
    mac = hmac.new(SECRET.encode(), f"{stamp}.".encode() + got.body, hashlib.sha256)
    assert got.headers["x-acs-signature"] == f"t={stamp},v1={mac.hexdigest()}"
    [delivery] = (await runtime.webhooks.deliveries(created["id"]))[0]
    assert got.headers["x-acs-delivery"] == str(delivery["id"])
    assert (delivery["status"], delivery["attempts"], delivery["last_status"]) == (
        "delivered",
        1,
        200,
    )
    assert await runtime.webhooks.dispatch(clock.dt) == (0, 0)  # nothing twice
    assert len(receiver.received) == 1


async def test_a_receiver_that_is_down_gets_it_later(runtime, clock, db, receiver):
    await hook(runtime, receiver, clock)
    await receiver.stop()
    await session(ServiceCpe(runtime), "0 BOOTSTRAP", "1 BOOT")
    assert await runtime.webhooks.dispatch(clock.dt) == (1, 1)
    assert await statuses(db) == [("pending", 1)]
    [(error,)] = await rows(db, "SELECT last_error FROM webhook_deliveries")
    assert error.startswith("ConnectError")
    assert await runtime.webhooks.dispatch(clock.dt + timedelta(seconds=9)) == (0, 0)  # backoff
    await receiver.start()  # back, on the same port
    receiver.status = 503
    assert await runtime.webhooks.dispatch(clock.dt + timedelta(seconds=10)) == (0, 1)
    assert await statuses(db) == [("pending", 2)]
    receiver.status = 204
    assert await runtime.webhooks.dispatch(clock.dt + timedelta(seconds=29)) == (0, 0)
    assert await runtime.webhooks.dispatch(clock.dt + timedelta(seconds=31)) == (0, 1)
    assert await statuses(db) == [("delivered", 3)]
    assert [r.json["type"] for r in receiver.received] == ["device.registered"] * 2


async def test_attempts_run_out_and_an_operator_redelivers(make_runtime, clock, receiver):
    rt = await make_runtime(webhook_max_attempts=2)
    rt.cwmp.clock = clock
    created, _ = await hook(rt, receiver, clock)
    receiver.status = 500
    await session(ServiceCpe(rt), "0 BOOTSTRAP", "1 BOOT")
    await rt.webhooks.dispatch(clock.dt)
    await rt.webhooks.dispatch(clock.dt + timedelta(seconds=11))
    assert await statuses(rt.db) == [("failed", 2)]
    assert await rt.webhooks.dispatch(clock.dt + timedelta(days=1)) == (0, 0)
    [delivery], count = await rt.webhooks.deliveries(created["id"], status="failed")
    assert (count, delivery["last_status"], delivery["last_error"]) == (1, 500, "HTTP 500")
    receiver.status = 200
    later = clock.dt + timedelta(days=1)
    await rt.webhooks.redeliver(created["id"], delivery["id"], later)
    assert await rt.webhooks.dispatch(later) == (0, 1)
    assert await statuses(rt.db) == [("delivered", 3)]


async def test_types_and_filters_choose_what_is_delivered(runtime, clock, db, receiver):
    await hook(runtime, receiver, clock, event_types=[], filter_={"device_prefix": "00D09E-IGD-B"})
    for serial in ("A1", "B1"):
        cpe = ServiceCpe(runtime, FakeCpe(datamodels.gateway(serial)))
        await session(cpe, "0 BOOTSTRAP")
    await runtime.webhooks.dispatch(clock.dt)
    assert [(r.json["type"], r.json["device_id"]) for r in receiver.received] == [
        ("device.registered", "00D09E-IGD-B1"),
        ("device.bootstrapped", "00D09E-IGD-B1"),
    ]


async def test_a_new_webhook_gets_events_from_now_on(runtime, clock, db, receiver):
    await session(ServiceCpe(runtime), "0 BOOTSTRAP", "1 BOOT")
    await hook(runtime, receiver, clock, event_types=[])
    assert await runtime.webhooks.dispatch(clock.dt) == (0, 0)
    await session(ServiceCpe(runtime, FakeCpe(datamodels.gateway("SN0002"))), "0 BOOTSTRAP")
    await runtime.webhooks.dispatch(clock.dt)
    assert [r.json["device_id"] for r in receiver.received] == ["00D09E-IGD-SN0002"] * 2


async def test_two_dispatchers_deliver_each_event_once(make_runtime, clock, receiver):
    first = await make_runtime()
    second = await make_runtime()
    first.cwmp.clock = clock
    await hook(first, receiver, clock, event_types=[])
    for n in range(20):
        await session(ServiceCpe(first, FakeCpe(datamodels.gateway(f"SN{n:04d}"))), "0 BOOTSTRAP")
    await asyncio.gather(first.webhooks.dispatch(clock.dt), second.webhooks.dispatch(clock.dt))
    await asyncio.gather(first.webhooks.dispatch(clock.dt), second.webhooks.dispatch(clock.dt))
    ids = [r.json["id"] for r in receiver.received]
    assert len(ids) == 40 and len(set(ids)) == 40  # 20 devices x (registered, bootstrapped)


async def test_a_dead_dispatchers_lease_is_taken_over(runtime, clock, db, receiver):
    await hook(runtime, receiver, clock)
    await session(ServiceCpe(runtime), "0 BOOTSTRAP", "1 BOOT")
    await runtime.webhooks.fan_out(clock.dt)
    async with db.write() as conn:  # a worker leases it, and dies before sending
        assert len(await webhooks._lease(conn, clock.dt, 60, 10)) == 1
    assert await statuses(db) == [("sending", 0)]
    assert await runtime.webhooks.send_due(clock.dt + timedelta(seconds=59)) == 0
    assert await runtime.webhooks.send_due(clock.dt + timedelta(seconds=60)) == 1
    assert await statuses(db) == [("delivered", 1)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "ftp://example.com/x"}, "url must be an http:// or https:// URL with a host"),
        ({"event_types": ["device.exploded"]}, "unknown event type 'device.exploded'"),
        ({"filter_": {"tag": "x"}}, "unknown filter 'tag'; filters: device_id, device_prefix"),
    ],
)
async def test_what_a_webhook_may_not_be(runtime, clock, receiver, kwargs, message):
    with pytest.raises(Invalid) as refused:
        await hook(runtime, receiver, clock, **kwargs)
    assert str(refused.value).startswith(message)
