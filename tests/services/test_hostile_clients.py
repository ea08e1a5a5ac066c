"""Clients that cost without authenticating: large bodies are read only as far as their method
(an Inform's DeviceId) until the request shows credentials, and a source that keeps failing
must show credentials or an open session before any large body of its is parsed whole. The
CPEs that share its address (carrier-grade NAT) go on. On SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest

from acs.cwmp import messages as m
from acs.cwmp import soap
from acs.services import cwmp as service
from acs.services.cwmp import FAILURE_LIMIT, PARSE_FIRST_BYTES
from acs.simulator import datamodels
from tests.fake_cpe import FakeCpe
from tests.services.harness import ServiceCpe, count, session

HOST = "192.0.2.10"  # every ServiceCpe's address unless told: one NAT


def padded(body: bytes, after: bytes, elements: int = 20_000) -> bytes:
    """``body`` with ``elements`` empty elements after ``after`` (20,000: 80 KB)."""
    cut = body.index(after) + len(after)
    return body[:cut] + b"<a/>" * elements + body[cut:]


def hostile_inform(cpe: FakeCpe) -> bytes:
    return padded(cpe.inform("2 PERIODIC"), b"</DeviceId>")


@pytest.fixture
def parses(monkeypatch) -> Counter[bytes]:
    """Bodies parsed whole by the service (soap.parse_envelope, still doing its work)."""
    seen: Counter[bytes] = Counter()
    real = soap.parse_envelope

    def parse_envelope(body: bytes, *args: Any) -> soap.Envelope:
        seen[body] += 1
        return real(body, *args)

    monkeypatch.setattr(soap, "parse_envelope", parse_envelope)
    return seen


def _challenge(reply) -> str:
    assert reply.status == 401, (reply.status, reply.body)
    return dict(reply.headers)["www-authenticate"]


async def test_an_inform_without_credentials_is_challenged_from_its_device_id(runtime, db, parses):
    cpe = ServiceCpe(runtime)
    body = hostile_inform(cpe.fake)
    assert len(body) > PARSE_FIRST_BYTES
    cpe.challenge = _challenge(await cpe.raw(body))
    assert parses[body] == 0
    assert await count(db, "devices") == 0
    # the nonce is bound to the DeviceId it was read from: the device's credentials answer it
    reply = await cpe.raw(body, {"authorization": cpe._auth() or ""})
    assert isinstance(soap.parse_envelope(reply.body).message, m.InformResponse)
    assert parses[body] == 1
    assert await count(db, "devices") == 1
    assert runtime.cwmp.failures.failures(HOST) == 0


async def test_challenges_and_stale_nonces_are_not_failures(runtime, clock):
    cpe = ServiceCpe(runtime)
    for _ in range(FAILURE_LIMIT * 2):
        _challenge(await cpe.raw(hostile_inform(cpe.fake)))
    await session(cpe)
    clock.now += runtime.settings.cwmp_nonce_lifetime + 5
    stale = _challenge(await cpe.raw(cpe.fake.inform(), {"authorization": cpe._auth() or ""}))
    assert stale.endswith("stale=true")
    assert runtime.cwmp.failures.failures(HOST) == 0


async def test_wrong_credentials_are_parsed_whole_only_until_the_source_is_suspect(
    runtime, db, parses, caplog
):
    caplog.set_level(logging.INFO, logger="acs.cwmp")
    wrong = ServiceCpe(runtime, password="not-the-password")
    body = hostile_inform(wrong.fake)
    wrong.challenge = _challenge(await wrong.raw(body))  # a valid nonce for its DeviceId
    for attempt in range(1, FAILURE_LIMIT + 4):
        _challenge(await wrong.raw(body, {"authorization": wrong._auth() or ""}))
        assert parses[body] == min(attempt, FAILURE_LIMIT)
    assert runtime.cwmp.failures.failures(HOST) == FAILURE_LIMIT + 3
    lines = [(r.levelname, r.getMessage(), r.fields.get("reason")) for r in caplog.records]
    assert lines == [
        ("INFO", "session refused", "authentication: digest bad_response"),
        (
            "WARNING",
            "failing source",
            "10 failed requests within 60 s: its large bodies are parsed only after they "
            "show credentials or an open session, and its failures are not logged, for the "
            "rest of that time",
        ),
    ]
    # A CPE behind the same address with its right password: served, its Inform parsed once.
    good = ServiceCpe(runtime, FakeCpe(datamodels.gateway("SN0002")))
    good_body = hostile_inform(good.fake)
    reply = await good.post(good_body)
    assert isinstance(soap.parse_envelope(reply.body).message, m.InformResponse)
    assert parses[good_body] == 1
    assert (await good.empty()).status == 204
    assert await count(db, "devices") == 1
    assert await count(db, "cwmp_sessions") == 0


async def test_a_suspect_source_shows_a_session_before_its_large_bodies_are_parsed(runtime, parses):
    stray = ServiceCpe(runtime, cookies=False)
    junk = padded(stray.fake.request(m.GetRPCMethods()), b"<cwmp:GetRPCMethods>")
    for attempt in range(1, FAILURE_LIMIT + 3):
        reply = await stray.raw(junk)
        assert (reply.status, reply.body) == (
            400,
            b"no open CWMP session: a session starts with an Inform\n",
        )
        assert parses[junk] == min(attempt, FAILURE_LIMIT)
    # a cookieless CPE of the same address, in its session: its large request is served
    cpe = ServiceCpe(runtime, FakeCpe(datamodels.gateway("SN0003")), cookies=False)
    assert isinstance(soap.parse_envelope((await cpe.inform()).body).message, m.InformResponse)
    large = padded(cpe.fake.request(m.GetRPCMethods()), b"<cwmp:GetRPCMethods>")
    reply = await cpe.post(large)
    assert soap.parse_envelope(reply.body).message == m.GetRPCMethodsResponse(m.ACS_METHODS)
    assert parses[large] == 1
    assert (await cpe.empty()).status == 204


async def test_an_inform_whose_start_is_too_long_is_refused_unparsed(runtime, parses):
    cpe = ServiceCpe(runtime)
    body = padded(cpe.fake.inform(), b"<cwmp:Inform>", elements=300)  # before its DeviceId
    body = padded(body, b"</DeviceId>")
    reply = await cpe.raw(body)
    assert (reply.status, reply.body) == (
        400,
        b"refused: the envelope's start (to its method element, an Inform's DeviceId) "
        b"has more than 256 elements\n",
    )
    assert parses[body] == 0
    assert runtime.cwmp.failures.failures(HOST) == 1


async def test_an_unreadable_inform_with_a_device_id_is_challenged_before_its_fault(runtime, db):
    cpe = ServiceCpe(runtime)
    body = cpe.fake.inform().replace(b"<RetryCount>0</RetryCount>", b"<RetryCount>x</RetryCount>")
    cpe.challenge = _challenge(await cpe.raw(body))
    reply = await cpe.raw(body, {"authorization": cpe._auth() or ""})
    fault = soap.parse_envelope(reply.body).message
    assert (fault.fault_code, fault.fault_string) == (
        8003,
        "Inform: RetryCount is not an integer: 'x'",
    )
    assert await count(db, "devices") == 0


async def test_large_bodies_of_a_normal_session_are_parsed_once(runtime, parses):
    cpe = ServiceCpe(runtime)
    body = hostile_inform(cpe.fake)
    reply = await cpe.post(body)
    assert isinstance(service.soap.parse_envelope(reply.body).message, m.InformResponse)
    large = padded(cpe.fake.request(m.GetRPCMethods()), b"<cwmp:GetRPCMethods>")
    assert (await cpe.post(large)).status == 200
    assert (parses[body], parses[large]) == (1, 1)
