"""The management API against misuse: out-of-range offsets, tokens minting longer-lived tokens,
password guessing (audited, logged once, throttled). On SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx
import pytest

from acs.services import operators
from acs.services.throttle import FailureThrottle
from acs.web.api.deps import MAX_OFFSET
from acs.web.api_app import create_api_app

NOW = datetime(2020, 1, 1, tzinfo=UTC)
LISTINGS = [
    "/api/v1/devices",
    "/api/v1/tasks",
    "/api/v1/faults",
    "/api/v1/files",
    "/api/v1/audit",
    "/api/v1/rollouts",
    "/api/v1/phones",
    "/api/v1/work-orders",
    "/api/v1/devices/00D09E-IGD-SN0001/tasks",
]


@pytest.fixture
async def app(runtime):
    await operators.create_operator(runtime.db, "root", "admin", "root-password", NOW)
    return create_api_app(runtime)


@pytest.fixture
async def api(app):
    transport = httpx.ASGITransport(app=app, client=("198.51.100.20", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


ROOT = httpx.BasicAuth("root", "root-password")


@pytest.mark.parametrize("path", LISTINGS)
async def test_offsets_past_64_bits_are_422_and_the_largest_allowed_works(api, path):
    wrong = await api.get(path, params={"offset": 2**63}, auth=ROOT)
    assert wrong.status_code == 422
    assert wrong.json()["detail"][0]["loc"] == ["query", "offset"]
    largest = await api.get(path, params={"offset": MAX_OFFSET}, auth=ROOT)
    assert largest.status_code == 200
    assert largest.json()["data"] == []


async def test_a_token_makes_only_tokens_that_die_no_later_than_itself(api):
    made = await api.post("/api/v1/tokens", json={"name": "short", "ttl_seconds": 120}, auth=ROOT)
    assert made.status_code == 201, made.text
    short = {"authorization": f"Bearer {made.json()['token']}"}
    lasting = await api.post("/api/v1/tokens", json={"name": "forever"}, headers=short)
    assert (lasting.status_code, lasting.json()["detail"]) == (
        403,
        "a token can create only tokens that expire: give ttl_seconds",
    )
    longer = await api.post(
        "/api/v1/tokens", json={"name": "longer", "ttl_seconds": 3600}, headers=short
    )
    assert longer.status_code == 403
    assert longer.json()["detail"].startswith(
        "a token can create only tokens that expire no later than itself: ttl_seconds at most "
    )
    within = await api.post(
        "/api/v1/tokens", json={"name": "within", "ttl_seconds": 60}, headers=short
    )
    assert within.status_code == 201
    # a password still makes a token without expiry
    assert (await api.post("/api/v1/tokens", json={"name": "svc"}, auth=ROOT)).status_code == 201


async def test_failed_sign_ins_are_audited_logged_once_and_throttled(app, api, caplog):
    caplog.set_level(logging.WARNING, logger="acs.api")
    wrong = httpx.BasicAuth("root", "guess")
    for _ in range(10):
        assert (await api.get("/api/v1/devices", auth=wrong)).status_code == 401
    lines = [r.getMessage() for r in caplog.records if r.name == "acs.api"]
    assert lines == [
        "sign-in refused for operator 'root' from 198.51.100.20",
        "10 failed sign-ins from 198.51.100.20 within 60 s (the last for operator 'root'): "
        "refused for the rest of that time",
    ]
    # refused without its password checked, even the right one
    throttled = await api.get("/api/v1/devices", auth=ROOT)
    assert throttled.status_code == 429
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    # another address is not held back, and sees the attempts in the audit log
    other = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("198.51.100.21", 50000)),
        base_url="http://api",
    )
    entries = (await other.get("/api/v1/audit", params={"limit": 20}, auth=ROOT)).json()
    await other.aclose()
    refused = [e for e in entries["data"] if e["status"] in (401, 429)]
    assert len(refused) == 11
    assert {(e["operator"], e["client"], e["method"]) for e in refused} == {
        ("root", "198.51.100.20", "GET")
    }
    assert [e["detail"] for e in refused[:2]] == [
        {"sign_in": "throttled"},
        {"sign_in": "refused", "via": "password"},
    ]


def test_the_throttle_forgets_a_source_after_its_window_and_on_success():
    now = [0.0]
    throttle = FailureThrottle(limit=3, window=10.0, clock=lambda: now[0])
    assert [throttle.failed("a") for _ in range(3)] == [1, 2, 3]
    assert throttle.retry_after("a") == 10
    assert throttle.retry_after("b") == 0
    now[0] = 9.5
    assert throttle.retry_after("a") == 1
    now[0] = 10.0
    assert (throttle.retry_after("a"), throttle.failures("a")) == (0, 0)
    throttle.failed("a")
    throttle.succeeded("a")
    assert throttle.failures("a") == 0
