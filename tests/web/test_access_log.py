"""The lines of HTTP requests: one per management API request (the operator, the status, the
time), one per file transfer on the CPE-facing listener, one per connection request; the
request id on every line of one request, the session id on every line of one session."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from acs import logs
from acs.services import metrics
from acs.simulator import datamodels
from acs.simulator.agent import CpeAgent
from tests.cpe_auth_client import digest_header
from tests.fake_cpe import FakeCpe

DEVICE = "00D09E-IGD-SN0001"
NOW = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG, logger="acs")
    caplog.handler.addFilter(logs.ContextFilter())

    def get(name: str, level: int = logging.DEBUG) -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == name and r.levelno >= level]

    caplog.clear()
    return get


def fields(record: logging.LogRecord, *without: str) -> dict[str, Any]:
    return {k: v for k, v in record.fields.items() if k not in without}


async def test_one_line_per_api_request(api, records):
    assert (await api.get("/api/v1/devices", params={"limit": 5})).status_code == 200
    assert (await api.get("/api/v1/devices", auth=("mallory", "guess-guess"))).status_code == 401
    assert (await api.get("/healthz", auth=None)).status_code == 200
    ok, refused, health = [r for r in records("acs.api") if r.getMessage() == "api request"]
    assert (ok.levelname, ok.getMessage(), fields(ok, "duration_ms")) == (
        "INFO",
        "api request",
        {
            "method": "GET",
            "path": "/api/v1/devices?limit=5",
            "status": 200,
            "operator": "ops",
            "client": "127.0.0.1",
        },
    )
    assert isinstance(ok.fields["duration_ms"], float) and ok.fields["duration_ms"] >= 0
    assert (refused.levelname, refused.fields["status"], refused.fields["operator"]) == (
        "INFO",
        401,
        "mallory",  # who it claimed to be
    )
    assert (health.levelname, health.fields["path"], health.fields["operator"]) == (
        "DEBUG",  # load balancers poll it
        "/healthz",
        None,
    )
    assert len({ok.request_id, refused.request_id, health.request_id}) == 3
    assert ok.session_id is None


async def test_a_connection_request_line_carries_its_api_request_id(api, runtime, records):
    agent = CpeAgent(
        datamodels.gateway("SN0001"), "http://127.0.0.1:9/", username="acs", password="cpe-secret"
    )
    await agent.start()
    try:
        from tests.services.harness import ServiceCpe

        cpe = ServiceCpe(runtime, FakeCpe(agent.model))
        assert (await cpe.inform("0 BOOTSTRAP")).status == 200
        assert (await cpe.empty()).status == 204
        r = await api.post(f"/api/v1/devices/{DEVICE}/connection-request")
        assert r.status_code == 200 and r.json()["ok"] is True
    finally:
        await agent.stop()
    [poke] = records("acs.connreq")
    [request] = records("acs.api")
    url = agent.model.get("InternetGatewayDevice.ManagementServer.ConnectionRequestURL")
    assert (poke.levelname, poke.getMessage(), fields(poke, "latency_ms")) == (
        "INFO",
        "connection request",
        {
            "device": DEVICE,
            "via": "http",
            "target": url,
            "outcome": "ok",
            "status": 200,
            "error": None,
            "reason": "the device's ConnectionRequestURL",
            "tried": "http",
        },
    )
    assert poke.request_id == request.request_id is not None


async def test_a_cwmp_session_over_http_has_one_id_per_request_and_one_session_id(cpe, records):
    fake = FakeCpe()
    auth = httpx.DigestAuth("acs", "cpe-secret")
    r = await cpe.post("/acs", content=fake.inform("0 BOOTSTRAP"), auth=auth)
    assert r.status_code == 200
    r = await cpe.post("/acs", content=b"")
    while r.status_code == 200:
        r = await cpe.post("/acs", content=fake.answer(r.content))
    assert r.status_code == 204
    challenge, opened, ended = records("acs.cwmp")
    assert (challenge.levelname, challenge.fields["reason"]) == (
        "DEBUG",
        "challenge: no credentials",
    )
    assert challenge.session_id is None
    cookie = cpe.cookies["acs_session"]
    assert opened.session_id == ended.session_id == logs.short_session_id(cookie)
    assert cookie not in str(ended.__dict__)  # the cookie authenticates: never logged whole
    assert len({challenge.request_id, opened.request_id, ended.request_id}) == 3
    assert (ended.getMessage(), ended.fields["outcome"], ended.fields["client"]) == (
        "session ended",
        "204",
        "127.0.0.1",
    )


def _transfers() -> tuple[float, float, float]:
    """acs_file_transfers_total ok and refused, and the bytes, over HTTP (this process's)."""
    value = metrics.REGISTRY.get_sample_value
    return (
        value("acs_file_transfers_total", {"protocol": "http", "outcome": "ok"}) or 0.0,
        value("acs_file_transfers_total", {"protocol": "http", "outcome": "refused"}) or 0.0,
        value("acs_file_transfer_bytes_total", {"protocol": "http"}) or 0.0,
    )


async def test_one_line_per_file_transfer(api, cpe, runtime, records):
    counted_before = _transfers()
    content = bytes(range(256)) * 40
    r = await api.put(
        "/api/v1/files/x6.bin", content=content, params={"file_type": "1 Firmware Upgrade Image"}
    )
    assert r.status_code == 201
    first = await cpe.get("/files/x6.bin")
    assert first.status_code == 401
    challenge = first.headers["www-authenticate"]
    header = digest_header(challenge, "acs", "cpe-secret", method="GET", uri="/files/x6.bin")
    r = await cpe.get("/files/x6.bin", headers={"authorization": header})
    assert (r.status_code, len(r.content)) == (200, len(content))
    header = digest_header(challenge, "acs", "cpe-secret", method="GET", uri="/files/x6.bin", nc=2)
    r = await cpe.get("/files/x6.bin", headers={"authorization": header, "range": "bytes=0-99"})
    assert r.status_code == 206
    assert (await cpe.get("/files/x6.bin", params={"t": "e.1.forged"})).status_code == 403
    assert (await cpe.get("/prov/001565113AF8.cfg")).status_code == 401
    lines = [(r.levelname, r.getMessage(), fields(r, "duration_ms")) for r in records("acs.files")]

    def line(
        level: str, status: int, outcome: str, sent: int, auth: str, **more: Any
    ) -> tuple[Any, ...]:
        file = more.pop("file", "/files/x6.bin")
        values = {"protocol": "http", "file": file, "mac": more.pop("mac", None)}
        values.update(client="127.0.0.1", method="GET", status=status, outcome=outcome)
        values.update(bytes=sent, auth=auth, reason=None)
        return (level, "file transfer", values)

    assert lines == [
        line("DEBUG", 401, "refused", 24, "refused: no credentials"),  # the challenge: expected
        line("INFO", 200, "ok", len(content), "digest shared"),
        line("INFO", 206, "ok", 100, "digest shared"),
        line("INFO", 403, "refused", 10, "refused: bad or expired signed url"),
        line("DEBUG", 401, "refused", 24, "refused: no credentials", file="/prov/001565113AF8.cfg"),
    ]
    assert all(r.session_id is None and r.request_id for r in records("acs.files"))
    # counted once per transfer; the expected challenges are not transfers
    after = _transfers()
    assert [a - b for a, b in zip(after, counted_before, strict=True)] == [
        2,
        1,
        len(content) + 100 + 10,
    ]
