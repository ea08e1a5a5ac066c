"""The CWMP exchange against a real database (SQLite and PostgreSQL), without HTTP."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from acs.cwmp import messages as m
from acs.cwmp import session as cs
from acs.cwmp import soap
from acs.cwmp.http import session_cookies
from acs.db import queries
from acs.services import devices
from acs.services.policy import Answered, Component, JsonState, Offer, SessionPolicy
from acs.simulator import datamodels
from tests.cpe_auth_client import basic_header, digest_header
from tests.fake_cpe import FakeCpe, device_id
from tests.services.harness import ServiceCpe, count, rows

DEVICE = "00D09E-IGD-SN0001"


def parse(reply) -> soap.Envelope:
    assert reply.status == 200, (reply.status, reply.body)
    return soap.parse_envelope(reply.body)


async def test_digest_session_end_to_end(make_runtime):
    runtime = await make_runtime(cwmp_digest_algorithms="MD5,SHA-256")
    db = runtime.db
    cpe = ServiceCpe(runtime)
    first = await cpe.raw(cpe.fake.inform("0 BOOTSTRAP", "1 BOOT"))
    assert first.status == 401
    challenges = [v for k, v in first.headers if k == "www-authenticate"]
    assert [c.split("algorithm=")[1].split(",")[0] for c in challenges] == ["MD5", "SHA-256"]
    assert await count(db, "devices") == 0  # nothing written before authentication
    cpe.challenge = challenges[0]
    reply = await cpe.post(cpe.fake.inform("0 BOOTSTRAP", "1 BOOT"))
    env = parse(reply)
    assert isinstance(env.message, m.InformResponse)
    assert cpe.cookie and cpe.cookie.startswith("acs_session=")
    [dev] = await rows(
        db,
        "SELECT id, manufacturer, oui, product_class, serial_number, software_version, "
        "hardware_version, ip, mac, cwmp_version, last_boot, last_bootstrap FROM devices",
    )
    assert dev[:10] == (
        DEVICE,
        "Acme Networks",
        "00D09E",
        "IGD",
        "SN0001",
        "1.0.0",
        "HW-2",
        "192.0.2.10",
        None,
        "1.2",
    )
    assert dev.last_boot is not None and dev.last_bootstrap is not None
    assert await count(db, "cwmp_sessions") == 1
    [inform] = await rows(db, "SELECT device_id, events, peer_host FROM informs")
    events = inform.events if isinstance(inform.events, list) else json.loads(inform.events)
    assert events == [["0 BOOTSTRAP", ""], ["1 BOOT", ""]]
    done = await cpe.empty()
    assert (done.status, done.body) == (204, b"")
    assert await count(db, "cwmp_sessions") == 0


async def test_sha256_digest(make_runtime):
    runtime = await make_runtime(cwmp_digest_algorithms="MD5,SHA-256")
    cpe = ServiceCpe(runtime)
    reply = await cpe.raw(cpe.fake.inform())
    sha = [v for k, v in reply.headers if k == "www-authenticate"][1]
    cpe.challenge = sha
    assert parse(await cpe.post(cpe.fake.inform())).message == m.InformResponse()


def md5_only_answer(challenge: str, username: str, password: str, uri: str) -> str:
    """A CPE that knows only MD5: it answers with MD5 whatever the challenge, under the
    algorithm label of the challenge it read (seen in the field)."""
    label = challenge.split("algorithm=")[1].split(",")[0]
    md5 = digest_header(
        challenge.replace(f"algorithm={label}", "algorithm=MD5"), username, password, uri=uri
    )
    return md5.replace("algorithm=MD5", f"algorithm={label}")


async def test_default_challenge_is_one_md5_header(runtime):
    cpe = ServiceCpe(runtime)
    reply = await cpe.raw(cpe.fake.inform())
    [value] = [v for k, v in reply.headers if k == "www-authenticate"]
    assert reply.status == 401
    assert re.fullmatch(
        r'Digest realm="acs", qop="auth", algorithm=MD5, nonce="[0-9a-f]+\.[0-9a-f]+\.[0-9a-f]+", '
        r'opaque="[0-9a-f]+"',
        value,
    ), value


@pytest.mark.parametrize("pick", [0, -1], ids=["first", "last"])
async def test_md5_only_cpe_reading_either_header_logs_in_by_default(runtime, db, pick):
    cpe = ServiceCpe(runtime)
    reply = await cpe.raw(cpe.fake.inform("0 BOOTSTRAP"))
    challenge = [v for k, v in reply.headers if k == "www-authenticate"][pick]
    auth = md5_only_answer(challenge, "acs", "cpe-secret", "/acs")
    reply = await cpe.raw(cpe.fake.inform("0 BOOTSTRAP"), {"authorization": auth})
    assert parse(reply).message == m.InformResponse()
    assert await count(db, "devices") == 1


async def test_md5_answer_labelled_sha256_is_refused_only_when_sha256_is_offered(make_runtime):
    runtime = await make_runtime(cwmp_digest_algorithms="MD5,SHA-256")
    cpe = ServiceCpe(runtime)
    reply = await cpe.raw(cpe.fake.inform("0 BOOTSTRAP"))
    first, last = [v for k, v in reply.headers if k == "www-authenticate"]
    # reading the last header, the MD5-only CPE labels its MD5 answer SHA-256: wrong by design
    mislabelled = md5_only_answer(last, "acs", "cpe-secret", "/acs")
    assert "algorithm=SHA-256" in mislabelled
    refused = await cpe.raw(cpe.fake.inform("0 BOOTSTRAP"), {"authorization": mislabelled})
    assert refused.status == 401
    assert await count(runtime.db, "devices") == 0
    # the same CPE reading the first header logs in
    auth = md5_only_answer(first, "acs", "cpe-secret", "/acs")
    reply = await cpe.raw(cpe.fake.inform("0 BOOTSTRAP"), {"authorization": auth})
    assert parse(reply).message == m.InformResponse()
    assert await count(runtime.db, "devices") == 1


async def test_wrong_password_writes_nothing(runtime, db):
    cpe = ServiceCpe(runtime, password="wrong")
    reply = await cpe.inform("0 BOOTSTRAP")
    assert reply.status == 401
    assert await count(db, "devices") == 0
    assert await count(db, "informs") == 0
    assert await count(db, "cwmp_sessions") == 0


async def test_wrong_username_and_garbage_authorization(runtime):
    cpe = ServiceCpe(runtime, username="intruder")
    assert (await cpe.inform()).status == 401
    plain = ServiceCpe(runtime)
    for value in ("Digest garbage", "Bearer x", "Basic !!!"):
        assert (await plain.raw(plain.fake.inform(), {"authorization": value})).status == 401


async def test_per_device_credentials_override_the_shared_pair(runtime):
    cpe = ServiceCpe(runtime)
    parse(await cpe.inform("0 BOOTSTRAP"))
    await cpe.empty()
    await devices.set_cwmp_credentials(runtime.db, DEVICE, "dev-user", "dev-pass", "acs")
    [(user, ha1)] = await rows(runtime.db, "SELECT cwmp_username, cwmp_ha1_md5 FROM devices")
    assert user == "dev-user" and len(ha1) == 32 and "dev-pass" not in ha1
    shared = ServiceCpe(runtime)
    assert (await shared.inform()).status == 401
    own = ServiceCpe(runtime, username="dev-user", password="dev-pass")
    assert isinstance(parse(await own.inform()).message, m.InformResponse)
    # another device still uses the shared pair
    other = ServiceCpe(runtime, FakeCpe(datamodels.gateway("SN0002")))
    assert isinstance(parse(await other.inform()).message, m.InformResponse)
    await devices.set_cwmp_credentials(runtime.db, DEVICE, "", None, "acs")
    assert isinstance(parse(await ServiceCpe(runtime).inform()).message, m.InformResponse)


async def test_credentials_for_unknown_device(runtime):
    with pytest.raises(devices.DeviceNotFound):
        await devices.set_cwmp_credentials(runtime.db, "nope", "u", "p", "acs")


async def test_basic_over_http_refused_unless_allowed(make_runtime):
    strict = await make_runtime()
    cpe = ServiceCpe(strict)
    reply = await cpe.raw(cpe.fake.inform(), {"authorization": basic_header("acs", "cpe-secret")})
    assert reply.status == 401
    lenient = await make_runtime(cwmp_allow_basic_over_http=True)
    cpe = ServiceCpe(lenient)
    reply = await cpe.raw(cpe.fake.inform(), {"authorization": basic_header("acs", "cpe-secret")})
    assert isinstance(parse(reply).message, m.InformResponse)
    reply = await ServiceCpe(lenient, host="192.0.2.50").raw(
        cpe.fake.inform(), {"authorization": basic_header("acs", "bad")}
    )
    assert reply.status == 401


async def test_basic_mode_challenges_with_basic(make_runtime):
    rt = await make_runtime(cwmp_auth="basic", cwmp_allow_basic_over_http=True)
    cpe = ServiceCpe(rt)
    reply = await cpe.raw(cpe.fake.inform())
    assert (reply.status, dict(reply.headers)["www-authenticate"]) == (401, 'Basic realm="acs"')


async def test_auth_none(make_runtime):
    rt = await make_runtime(cwmp_auth="none")
    cpe = ServiceCpe(rt)
    assert isinstance(parse(await cpe.raw(cpe.fake.inform())).message, m.InformResponse)


async def test_stale_nonce_is_rechallenged_with_stale_true(runtime, clock):
    cpe = ServiceCpe(runtime)
    parse(await cpe.inform())
    await cpe.empty()
    clock.now += runtime.settings.cwmp_nonce_lifetime + 5
    reply = await cpe.raw(cpe.fake.inform(), {"authorization": cpe._auth() or ""})
    assert reply.status == 401
    assert dict(reply.headers)["www-authenticate"].endswith("stale=true")
    assert isinstance(parse(await cpe.inform()).message, m.InformResponse)


async def test_strict_mode_refuses_replayed_nonce_count(make_runtime):
    rt = await make_runtime(cwmp_digest_strict=True)
    cpe = ServiceCpe(rt)
    parse(await cpe.inform())
    await cpe.empty()
    replay = digest_header(cpe.challenge or "", "acs", "cpe-secret", uri="/acs", nc=1)
    reply = await cpe.raw(cpe.fake.inform(), {"authorization": replay})
    assert reply.status == 401
    fresh = digest_header(cpe.challenge or "", "acs", "cpe-secret", uri="/acs", nc=9)
    assert parse(await cpe.raw(cpe.fake.inform(), {"authorization": fresh})).message == (
        m.InformResponse()
    )


async def test_strict_mode_refuses_a_replayed_nonce_count_inside_a_session(make_runtime):
    rt = await make_runtime(cwmp_digest_strict=True)
    cpe = ServiceCpe(rt)
    parse(await cpe.inform())  # used nc=1
    replay = digest_header(cpe.challenge or "", "acs", "cpe-secret", uri="/acs", nc=1)
    reply = await cpe.raw(b"", {"authorization": replay})
    assert reply.status == 401
    # refused with a challenge to answer, like any other refusal
    assert any(k == "www-authenticate" and "Digest" in v for k, v in reply.headers)


async def test_lenient_mode_tolerates_nonce_reuse_with_nc_1(runtime):
    cpe = ServiceCpe(runtime)
    parse(await cpe.inform())
    await cpe.empty()
    same = digest_header(cpe.challenge or "", "acs", "cpe-secret", uri="/acs", nc=1)
    for _ in range(3):
        assert parse(await cpe.raw(cpe.fake.inform(), {"authorization": same})).message == (
            m.InformResponse()
        )
        assert (await cpe.raw(b"")).status == 204


async def test_cpe_without_cookies_tracked_by_connection_then_address(runtime, db):
    cpe = ServiceCpe(runtime, cookies=False)
    parse(await cpe.inform())
    assert (await cpe.empty()).status == 204  # same connection (host, port)
    parse(await cpe.inform())
    cpe.port += 1  # a new TCP connection for the empty POST (HTTP/1.0 style CPE)
    assert (await cpe.raw(b"")).status == 204
    assert await count(db, "cwmp_sessions") == 0


async def test_previous_session_cookie_with_attributes_starts_new_session(runtime, db):
    cpe = ServiceCpe(runtime)
    parse(await cpe.inform())
    old = cpe.cookie
    assert (await cpe.empty()).status == 204
    cpe.cookie = f"{old}; Path=/; HttpOnly"
    parse(await cpe.inform())
    assert cpe.cookie != old
    [(sid,)] = await rows(db, "SELECT id FROM cwmp_sessions")
    assert cpe.cookie == f"acs_session={sid}"
    assert (await cpe.empty()).status == 204


def test_cookie_header_parsing():
    assert session_cookies("acs_session=a; Path=/; HttpOnly") == ["a"]
    assert session_cookies("foo=1, acs_session=b, bar=2") == ["b"]
    assert session_cookies('other=x; acs_session="c"') == ["c"]
    assert session_cookies("acs_session=a; acs_session=b") == ["a", "b"]
    assert session_cookies("") == [] and session_cookies(None) == []


async def test_comma_separated_cookies(runtime):
    cpe = ServiceCpe(runtime)
    parse(await cpe.inform())
    cpe.cookie = f"lang=en, {cpe.cookie}, theme=dark"
    assert (await cpe.empty()).status == 204


async def test_inform_mid_session_replaces_it_cleanly(runtime, db):
    cpe = ServiceCpe(runtime, cookies=False)
    parse(await cpe.inform())
    [(first,)] = await rows(db, "SELECT id FROM cwmp_sessions")
    # a connection request raced the session: the CPE starts over on the same connection
    env = parse(await cpe.inform("6 CONNECTION REQUEST"))
    assert isinstance(env.message, m.InformResponse)
    [(second,)] = await rows(db, "SELECT id FROM cwmp_sessions")
    assert second != first
    assert (await cpe.empty()).status == 204
    assert await count(db, "informs") == 2


async def test_inform_from_elsewhere_while_session_open_gets_503(runtime, clock, db):
    cpe = ServiceCpe(runtime)
    parse(await cpe.inform())
    intruder = ServiceCpe(runtime, host="203.0.113.9")
    reply = await intruder.inform()
    assert reply.status == 503
    assert 1 <= int(dict(reply.headers)["retry-after"]) <= 30
    assert await count(db, "informs") == 1
    clock.now += 31  # the first session is abandoned now
    assert isinstance(parse(await intruder.inform()).message, m.InformResponse)
    assert await count(db, "cwmp_sessions") == 1


async def test_abandoned_session_expires(runtime, clock, db):
    cpe = ServiceCpe(runtime)
    parse(await cpe.inform())
    assert await runtime.cwmp.expire_sessions() == 0
    clock.now += 31
    assert await runtime.cwmp.expire_sessions() == 1
    assert await count(db, "cwmp_sessions") == 0
    assert (await cpe.empty()).status == 400  # it is gone for the CPE too


async def test_cpe_session_timeout_header_is_honoured_up_to_a_cap(runtime, clock, db):
    cpe = ServiceCpe(runtime)
    body = soap.render_envelope(
        cpe.fake.model.inform(), namespace=cpe.fake.namespace, cwmp_id="1", session_timeout=120
    )
    parse(await cpe.post(body))
    clock.now += 100
    assert await runtime.cwmp.expire_sessions() == 0
    assert (await cpe.empty()).status == 204


async def test_parameters_merge_and_bootstrap_resets(runtime, db):
    cpe = ServiceCpe(runtime)
    model = cpe.fake.model
    model.set("InternetGatewayDevice.X.Extra", "e", writable=False)
    model.parameters["InternetGatewayDevice.X.Extra"].notification = 2  # in every Inform
    parse(await cpe.inform("0 BOOTSTRAP"))
    await cpe.empty()
    # pretend a GetParameterNames told us writability
    async with db.write() as conn:
        params = (await conn.execute(text("SELECT parameters FROM devices"))).scalar_one()
        params = params if isinstance(params, dict) else json.loads(params)
        params["InternetGatewayDevice.DeviceInfo.SoftwareVersion"]["writable"] = False
        params["InternetGatewayDevice.Old.Param"] = {"value": "o", "type": "xsd:string"}
        cast = ":p" if db.is_sqlite else "CAST(:p AS jsonb)"
        await conn.execute(
            text(f"UPDATE devices SET parameters = {cast}"), {"p": json.dumps(params)}
        )
    model.set("InternetGatewayDevice.DeviceInfo.SoftwareVersion", "1.1.0")
    model.parameters["InternetGatewayDevice.X.Extra"].notification = 0
    parse(await cpe.inform("2 PERIODIC"))
    await cpe.empty()
    [(params, version)] = await rows(db, "SELECT parameters, software_version FROM devices")
    params = params if isinstance(params, dict) else json.loads(params)
    assert version == "1.1.0"
    sw = params["InternetGatewayDevice.DeviceInfo.SoftwareVersion"]
    assert (sw["value"], sw["type"], sw["writable"]) == ("1.1.0", "xsd:string", False)
    assert params["InternetGatewayDevice.X.Extra"]["value"] == "e"  # kept: not in this Inform
    assert "InternetGatewayDevice.Old.Param" in params
    parse(await cpe.inform("0 BOOTSTRAP"))
    await cpe.empty()
    [(params,)] = await rows(db, "SELECT parameters FROM devices")
    params = params if isinstance(params, dict) else json.loads(params)
    assert "InternetGatewayDevice.Old.Param" not in params
    assert "writable" not in params["InternetGatewayDevice.DeviceInfo.SoftwareVersion"]


async def test_known_columns_are_not_erased_by_a_sparse_inform(runtime, db):
    cpe = ServiceCpe(runtime)
    cpe.fake.model.set("InternetGatewayDevice.ManagementServer.ConnectionRequestURL", "http://cr")
    parse(await cpe.inform())
    await cpe.empty()
    del cpe.fake.model.parameters["InternetGatewayDevice.DeviceInfo.SoftwareVersion"]
    del cpe.fake.model.parameters["InternetGatewayDevice.ManagementServer.ConnectionRequestURL"]
    parse(await cpe.inform())
    await cpe.empty()
    [row] = await rows(db, "SELECT software_version, connection_request_url FROM devices")
    assert tuple(row) == ("1.0.0", "http://cr")


async def test_indexed_columns_follow_the_device_and_stay_when_unchanged(runtime, db):
    """The upsert leaves ip, MAC and software version out when an Inform does not change them
    (fewer index writes); when it does, they change."""
    cpe = ServiceCpe(runtime, host="192.0.2.10")
    parse(await cpe.inform())
    await cpe.empty()
    parse(await cpe.inform())  # nothing changed
    await cpe.empty()
    assert [tuple(r) for r in await rows(db, "SELECT ip, software_version FROM devices")] == [
        ("192.0.2.10", "1.0.0")
    ]
    cpe.host = "198.51.100.7"
    cpe.fake.model.set("InternetGatewayDevice.DeviceInfo.SoftwareVersion", "2.0.0")
    parse(await cpe.inform())
    await cpe.empty()
    assert [tuple(r) for r in await rows(db, "SELECT ip, software_version FROM devices")] == [
        ("198.51.100.7", "2.0.0")
    ]


async def _tree(db) -> dict[str, Any]:
    [(params,)] = await rows(db, "SELECT parameters FROM devices")
    return params if isinstance(params, dict) else json.loads(params)


@pytest.mark.parametrize("other_write", ["merge", "delete"])
async def test_an_unchanged_inform_leaves_the_tree_alone_until_something_else_writes_it(
    runtime, db, clock, other_write
):
    """The tree is not rewritten by an Inform carrying what the last one carried (its values
    keep the stamp of when they were written); once anything else wrote the tree, the next
    Inform writes its values again, even if they are the last Inform's."""
    sw = "InternetGatewayDevice.DeviceInfo.SoftwareVersion"
    cpe = ServiceCpe(runtime)
    parse(await cpe.inform("0 BOOTSTRAP"))  # its presets write the tree after the Inform
    await cpe.empty()
    clock.now += 300
    parse(await cpe.inform())
    await cpe.empty()
    written = (await _tree(db))[sw]["updated"]
    clock.now += 300
    parse(await cpe.inform())
    await cpe.empty()
    assert (await _tree(db))[sw]["updated"] == written
    [(last_inform,)] = await rows(db, "SELECT last_inform FROM devices")
    assert str(last_inform).startswith(clock.dt.strftime("%Y-%m-%d %H:%M"))

    async with db.hot_write() as tx:  # a GetParameterValues read another value meanwhile
        if other_write == "merge":
            await queries.merge_parameters(tx, DEVICE, {sw: {"value": "9.9", "type": "xsd:string"}})
        else:
            await queries.delete_parameter_subtree(tx, DEVICE, "InternetGatewayDevice.DeviceInfo.")
    clock.now += 300
    parse(await cpe.inform())  # the same values as the last Inform
    await cpe.empty()
    entry = (await _tree(db))[sw]
    assert entry["value"] == "1.0.0"
    assert entry["updated"] != written


async def test_cpe_requests_are_answered(runtime, db):
    cpe = ServiceCpe(runtime)
    parse(await cpe.inform("7 TRANSFER COMPLETE", "M Download"))
    env = parse(
        await cpe.post(cpe.fake.request(m.TransferComplete("k1", m.FaultStruct(9010, "x"))))
    )
    assert env.message == m.TransferCompleteResponse()
    env = parse(await cpe.post(cpe.fake.request(m.GetRPCMethods())))
    assert env.message == m.GetRPCMethodsResponse(m.ACS_METHODS)
    env = parse(await cpe.post(cpe.fake.request(m.RequestDownload("1 Firmware Upgrade Image"))))
    assert env.message == m.RequestDownloadResponse()
    env = parse(await cpe.post(cpe.fake.request(m.Kicked("c", "r", "a", "http://next"))))
    assert env.message == m.KickedResponse("http://next")
    env = parse(await cpe.post(cpe.fake.request(m.AutonomousTransferComplete("a", "t"))))
    assert env.message == m.AutonomousTransferCompleteResponse()
    unknown = (
        b'<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/" '
        b'xmlns:cwmp="urn:dslforum-org:cwmp-1-2"><soap-env:Header><cwmp:ID>u1</cwmp:ID>'
        b"</soap-env:Header><soap-env:Body><cwmp:X_Acme_Ping/></soap-env:Body></soap-env:Envelope>"
    )
    env = parse(await cpe.post(unknown))
    assert (env.cwmp_id, env.message.fault_code) == ("u1", 8000)
    bad = unknown.replace(
        b"<cwmp:X_Acme_Ping/>",
        b"<cwmp:TransferComplete><FaultStruct><FaultCode>x</FaultCode></FaultStruct>"
        b"</cwmp:TransferComplete>",
    )
    env = parse(await cpe.post(bad))
    assert env.message.fault_code == 8003
    assert "FaultCode is not an integer" in env.message.fault_string
    # an ACS-only method sent by the CPE is "not supported" too
    env = parse(await cpe.post(cpe.fake.request(m.Reboot())))
    assert env.message.fault_code == 8000
    assert (await cpe.empty()).status == 204


async def test_vendor_and_method_events_are_recorded(runtime, db):
    cpe = ServiceCpe(runtime)
    parse(await cpe.inform("X CT-COM BIND", "X 00D09E REBOOTREASON", "M Download"))
    [(last,)] = await rows(db, "SELECT last_events FROM devices")
    last = last if isinstance(last, list) else json.loads(last)
    assert last == ["X CT-COM BIND", "X 00D09E REBOOTREASON", "M Download"]


async def test_unreadable_inform_gets_8003_and_nothing_is_written(runtime, db):
    cpe = ServiceCpe(runtime)
    body = (
        b'<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/" '
        b'xmlns:cwmp="urn:dslforum-org:cwmp-1-0"><soap-env:Header><cwmp:ID>9</cwmp:ID>'
        b"</soap-env:Header><soap-env:Body><cwmp:Inform><RetryCount>many</RetryCount>"
        b"</cwmp:Inform></soap-env:Body></soap-env:Envelope>"
    )
    env = parse(await cpe.raw(body))
    assert (env.cwmp_id, env.message.fault_code) == ("9", 8003)
    no_serial = soap.render_envelope(
        m.Inform(m.DeviceIdStruct("x", "00D09E", "", "")), namespace=soap.CWMP_NAMESPACES["1.0"]
    )
    assert parse(await cpe.raw(no_serial)).message.fault_code == 8003
    assert await count(db, "devices") == 0


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"<not-xml", b"not a CWMP envelope"),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', b"refused"),
        (b"<x>" * 400 + b"</x>" * 400, b"refused"),
    ],
)
async def test_garbage_and_hostile_bodies_get_400_and_write_nothing(runtime, db, body, fragment):
    cpe = ServiceCpe(runtime)
    reply = await cpe.raw(body)
    assert reply.status == 400
    assert fragment in reply.body
    assert await count(db, "devices") == 0


async def test_post_outside_a_session_is_400(runtime):
    cpe = ServiceCpe(runtime)
    reply = await cpe.raw(b"")
    assert (reply.status, reply.body) == (
        400,
        b"no open CWMP session: a session starts with an Inform\n",
    )


async def test_protocol_error_closes_the_session(runtime, db):
    """A move the session table refuses closes the session. No CPE message reaches one in a
    state this code stores (an answer to nothing is a StrayAnswer, see tests/services/
    test_quirks.py), so the stored state is one a request never leaves: the CPE owes
    nothing in it."""
    cpe = ServiceCpe(runtime)
    parse(await cpe.inform())
    async with db.write() as conn:
        [(raw,)] = (await conn.execute(text("SELECT state FROM cwmp_sessions"))).all()
        state = raw if isinstance(raw, dict) else json.loads(raw)
        state["machine"]["state"] = "acs_requests"
        await conn.execute(
            text("UPDATE cwmp_sessions SET state = :s"),
            {"s": json.dumps(state)},
        )
    reply = await cpe.post(b"")
    assert reply.status == 400
    assert b"CWMP protocol error" in reply.body
    assert await count(db, "cwmp_sessions") == 0


async def test_wrong_authorization_mid_session_is_401_and_changes_nothing(runtime, db):
    cpe = ServiceCpe(runtime)
    parse(await cpe.inform())
    [(before,)] = await rows(db, "SELECT updated FROM cwmp_sessions")
    reply = await cpe.raw(b"", {"authorization": digest_header(cpe.challenge or "", "acs", "bad")})
    assert reply.status == 401
    [(after,)] = await rows(db, "SELECT updated FROM cwmp_sessions")
    assert before == after
    assert (await cpe.empty()).status == 204


@dataclass(frozen=True)
class Asked(JsonState):
    sent: bool = False


class AskOnce(Component[Asked]):
    """Sends one GetRPCMethods per session and records what came back."""

    name = "ask"
    State = Asked

    def __init__(self) -> None:
        self.answers: list[Any] = []

    async def on_inform(self, tx, ctx, inform, known):
        return Asked()

    async def next_request(self, tx, ctx, state):
        if state is not None and not state.sent:
            return Offer(m.GetRPCMethods(), "ref-1", Asked(sent=True))
        return None

    async def on_answer(self, tx, ctx, ref_id, answer, state):
        self.answers.append((ctx.device_id, ref_id, answer))
        return Answered(state)


def ask_once(runtime) -> AskOnce:
    hooks = AskOnce()
    runtime.cwmp.policy = SessionPolicy([hooks])
    return hooks


async def test_acs_requests_and_answers_reach_the_hooks(runtime):
    hooks = ask_once(runtime)
    cpe = ServiceCpe(runtime)
    parse(await cpe.inform())
    request = await cpe.post(b"")
    assert isinstance(parse(request).message, m.GetRPCMethods)
    assert (await cpe.post(cpe.fake.answer(request.body))).status == 204
    [(dev, ref_id, event)] = hooks.answers
    assert dev == DEVICE
    assert isinstance(event, cs.ResponseReceived)
    assert ref_id == "ref-1"
    assert event.request.ref == "ask:ref-1"  # the component's name and its own id
    assert "GetParameterValues" in event.response.method_list


async def test_cookieless_cpes_behind_one_address_are_told_apart_by_request_id(runtime):
    hooks = ask_once(runtime)
    a = ServiceCpe(runtime, FakeCpe(datamodels.gateway("NAT-A")), cookies=False, port=1)
    b = ServiceCpe(runtime, FakeCpe(datamodels.gateway("NAT-B")), cookies=False, port=2)
    parse(await a.inform())
    parse(await b.inform())
    req_a = await a.raw(b"")
    req_b = await b.raw(b"")
    assert isinstance(parse(req_a).message, m.GetRPCMethods)
    # both answer on fresh connections from the same address, B first
    a.port, b.port = 11, 12
    assert (await b.raw(b.fake.answer(req_b.body))).status == 204
    assert (await a.raw(a.fake.answer(req_a.body))).status == 204
    assert sorted(dev for dev, *_ in hooks.answers) == [device_id(a.fake), device_id(b.fake)]


async def test_a_cookie_of_an_expired_session_is_not_matched_by_address(runtime, db):
    """Found by a storm: a CPE whose session expired under load came back with its cookie on a
    new connection and was handed another device's session behind the same address."""
    mine = ServiceCpe(runtime, port=1)
    other = ServiceCpe(runtime, FakeCpe(datamodels.gateway("NAT-OTHER")), port=2)
    assert (await mine.inform()).status == 200
    assert (await other.inform()).status == 200
    async with db.write() as conn:  # mine expired (the sweeper closed it)
        await conn.execute(text("DELETE FROM cwmp_sessions WHERE device_id = :d"), {"d": DEVICE})
    mine.port = 3
    reply = await mine.empty()
    assert reply.status == 400
    assert b"no open CWMP session" in reply.body
    assert await count(db, "cwmp_sessions") == 1  # the other device's session untouched
    assert (await other.empty()).status == 204


async def test_cookie_wins_over_many_sessions_from_the_same_address(runtime, db):
    # Found by load: with many open sessions behind one address, a session found by its
    # cookie must not be crowded out by the address matches.
    mine = ServiceCpe(runtime, port=1)
    assert (await mine.inform()).status == 200
    for i in range(60):  # all more recent than mine
        other = ServiceCpe(runtime, FakeCpe(datamodels.gateway(f"NAT{i:03d}")), port=2000 + i)
        assert (await other.inform()).status == 200
    mine.port = 3  # a new connection: only the cookie tells
    assert (await mine.empty()).status == 204
    [(left,)] = await rows(db, "SELECT count(*) FROM cwmp_sessions WHERE device_id = :d", d=DEVICE)
    assert left == 0
    assert await count(db, "cwmp_sessions") == 60
