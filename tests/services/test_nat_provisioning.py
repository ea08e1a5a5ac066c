"""NAT traversal provisioning (acs.services.policy.nat): what a device is given for STUN
(TR-111) and XMPP (Annex K) in its bootstrap session, asked of the simulator's data models
through the CWMP service, on both databases."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from acs.cwmp import messages as m
from acs.db import tables
from acs.services.policy import nat
from acs.simulator import datamodels
from tests.fake_cpe import FakeCpe
from tests.services.harness import ServiceCpe, rows, session

GATEWAY = "00D09E-IGD-SN0001"
PHONE = "0C383E-X6-0c383e000006"
MS = "InternetGatewayDevice.ManagementServer."
PMS = "Device.ManagementServer."


async def nat_row(db, device_id: str) -> Any:
    n = tables.nat_traversal
    async with db.read() as conn:
        return (await conn.execute(select(n).where(n.c.device_id == device_id))).first()


def names(requests: list[Any]) -> list[str]:
    return [type(r).__name__ for r in requests]


async def test_stun_is_provisioned_in_the_bootstrap_session(make_runtime):
    runtime = await make_runtime(stun_port=3478, stun_keepalive=20)
    cpe = ServiceCpe(runtime, FakeCpe())
    sent = await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    assert names(sent) == [
        "SetParameterValues",  # bootstrap: connection request credentials, interval
        "GetParameterNames",
        "SetParameterValues",
        "SetParameterAttributes",
    ]
    assert sent[1] == m.GetParameterNames(MS, next_level=True)
    model = cpe.fake.model
    username = model.get(MS + "STUNUsername")
    password = model.get(MS + "STUNPassword")
    assert sent[2].parameter_key == "acs-nat"
    assert [(p.name, p.value, p.type) for p in sent[2].parameter_list] == [
        (MS + "STUNEnable", True, "xsd:boolean"),
        # the host the CPE used to reach the ACS (no Host header: localhost)
        (MS + "STUNServerAddress", "localhost", "xsd:string"),
        (MS + "STUNServerPort", 3478, "xsd:unsignedInt"),
        (MS + "STUNUsername", username, "xsd:string"),
        (MS + "STUNPassword", password, "xsd:string"),
        (MS + "STUNMinimumKeepAlivePeriod", 20, "xsd:unsignedInt"),
        (MS + "STUNMaximumKeepAlivePeriod", 20, "xsd:int"),
    ]
    assert str(username).startswith("stun-") and len(str(password)) >= 16
    assert sent[3] == m.SetParameterAttributes(
        (m.SetParameterAttributesStruct(MS + "UDPConnectionRequestAddress", True, 2),)
    )
    assert model.parameters[MS + "UDPConnectionRequestAddress"].notification == 2
    row = await nat_row(runtime.db, GATEWAY)
    assert row.stun_username == username
    assert runtime.box.open(row.stun_password_enc) == password
    assert (row.xmpp_jid, row.xmpp_account, row.stun_host) == (None, None, None)
    assert row.provisioned == {
        "fingerprint": nat.fingerprint(runtime.settings),
        "time": row.provisioned["time"],
        "stun": True,
        "xmpp": False,
        "xmpp_connection": None,
        "error": None,
    }
    # the tree has what was set, the password without its value
    [(tree,)] = await rows(runtime.db, "SELECT parameters FROM devices")
    tree = tree if isinstance(tree, dict) else __import__("json").loads(tree)
    assert tree[MS + "STUNUsername"]["value"] == username
    assert tree[MS + "STUNPassword"]["value"] == ""


async def test_nothing_more_is_asked_until_a_boot_finds_the_settings_changed(
    make_runtime, tmp_path
):
    runtime = await make_runtime(stun_port=3478)
    cpe = ServiceCpe(runtime, FakeCpe())
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    first = (await nat_row(runtime.db, GATEWAY)).stun_username
    assert await session(cpe, "2 PERIODIC") == []
    assert await session(cpe, "1 BOOT") == []  # the same settings: one lookup, no request
    moved = await make_runtime(stun_port=3479)  # the operator moved the STUN server
    cpe.runtime = moved
    assert names(await session(cpe, "2 PERIODIC")) == []
    again = await session(cpe, "1 BOOT")
    assert names(again) == ["GetParameterNames", "SetParameterValues", "SetParameterAttributes"]
    assert cpe.fake.model.get(MS + "STUNServerPort") == 3479
    assert (await nat_row(runtime.db, GATEWAY)).stun_username not in (None, first)


async def test_off_by_default_and_for_devices_without_stun(make_runtime):
    runtime = await make_runtime()
    cpe = ServiceCpe(runtime, FakeCpe())
    assert names(await session(cpe, "0 BOOTSTRAP", "1 BOOT")) == ["SetParameterValues"]
    assert await nat_row(runtime.db, GATEWAY) is None

    stunned = await make_runtime(stun_port=3478)
    model = datamodels.gateway("SN0002")
    for name in [n for n in model.parameters if ".STUN" in n or "NATDetected" in n]:
        del model.parameters[name]
    bare = ServiceCpe(stunned, FakeCpe(model))
    sent = await session(bare, "0 BOOTSTRAP", "1 BOOT")
    assert names(sent) == ["SetParameterValues", "GetParameterNames"]
    row = await nat_row(stunned.db, "00D09E-IGD-SN0002")
    assert (row.stun_username, row.provisioned["stun"], row.provisioned["error"]) == (
        None,
        False,
        None,
    )
    assert await session(bare, "1 BOOT") == []  # it was asked: not again before a bootstrap


async def test_a_refused_set_is_the_devices_fault_and_recorded(make_runtime):
    runtime = await make_runtime(stun_port=3478)
    model = datamodels.gateway("SN0001")
    model.parameters[MS + "STUNPassword"].writable = False
    cpe = ServiceCpe(runtime, FakeCpe(model))
    sent = await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    assert names(sent) == ["SetParameterValues", "GetParameterNames", "SetParameterValues"]
    row = await nat_row(runtime.db, GATEWAY)
    assert row.stun_username is None
    assert row.provisioned["error"] == "set: fault 9003 Invalid arguments"
    [(code, detail)] = await rows(runtime.db, "SELECT code, detail FROM faults")
    assert code == 9003
    assert "nat_provisioning" in str(detail)


async def test_xmpp_account_connection_and_server_for_a_tr181_device(make_runtime):
    runtime = await make_runtime(
        xmpp_jid="acs@xmpp.example",
        xmpp_password="acs-password",
        xmpp_cpe_domain="cpe.example",
        xmpp_cpe_server="xmpp.example:5222",
    )
    model = datamodels.phone("0c:38:3e:00:00:06")
    cpe = ServiceCpe(runtime, FakeCpe(model))
    sent = await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    assert sent[1:] == [
        m.GetParameterNames(PMS, next_level=True),
        m.GetParameterNames("Device.XMPP.Connection.", next_level=True),
        m.AddObject("Device.XMPP.Connection.", parameter_key="acs-nat"),
        m.AddObject("Device.XMPP.Connection.1.Server.", parameter_key="acs-nat"),
        sent[5],
        m.SetParameterAttributes(
            (m.SetParameterAttributesStruct(PMS + "ConnReqJabberID", True, 2),)
        ),
    ]
    conn = "Device.XMPP.Connection.1."
    password = model.get(conn + "Password")
    assert [(p.name, p.value) for p in sent[5].parameter_list] == [
        (conn + "Enable", True),
        (conn + "Username", "0c383e-x6-0c383e000006"),
        (conn + "Password", password),
        (conn + "Domain", "cpe.example"),
        (conn + "Resource", "cwmp"),
        (conn + "UseTLS", True),
        (conn + "Server.1.Enable", True),
        (conn + "Server.1.ServerAddress", "xmpp.example"),
        (conn + "Server.1.Port", 5222),
        (PMS + "ConnReqXMPPConnection", "Device.XMPP.Connection.1"),
        (PMS + "ConnReqAllowedJabberIDs", "acs@xmpp.example"),
    ]
    row = await nat_row(runtime.db, PHONE)
    assert (row.xmpp_jid, row.xmpp_account) == ("0c383e-x6-0c383e000006@cpe.example", "pending")
    assert runtime.box.open(row.xmpp_password_enc) == password
    assert row.provisioned["xmpp_connection"] == "Device.XMPP.Connection.1"
    [request] = await rows(
        runtime.db, "SELECT kind, device_id, jid, password_enc FROM xmpp_requests"
    )
    assert request[:3] == ("account", PHONE, "0c383e-x6-0c383e000006@cpe.example")
    assert runtime.box.open(request[3]) == password


async def test_xmpp_without_accounts_uses_the_devices_own_connection(make_runtime):
    runtime = await make_runtime(xmpp_jid="acs@xmpp.example", xmpp_password="pw")
    model = datamodels.phone("0c:38:3e:00:00:06")
    none_yet = ServiceCpe(runtime, FakeCpe(model))
    sent = await session(none_yet, "0 BOOTSTRAP", "1 BOOT")
    # no connection and no account to give it: nothing to set
    assert names(sent) == ["SetParameterValues", "GetParameterNames", "GetParameterNames"]
    row = await nat_row(runtime.db, PHONE)
    assert row.provisioned["error"] == "the device has no XMPP.Connection"

    model.parameters["Device.XMPP.Connection.3.Username"] = model.templates[
        "Device.XMPP.Connection."
    ]["Username"]
    sent = await session(none_yet, "0 BOOTSTRAP", "1 BOOT")
    assert [(p.name, p.value) for p in sent[3].parameter_list] == [
        (PMS + "ConnReqXMPPConnection", "Device.XMPP.Connection.3"),
        (PMS + "ConnReqAllowedJabberIDs", "acs@xmpp.example"),
    ]
    assert (await nat_row(runtime.db, PHONE)).xmpp_jid is None
    assert await rows(runtime.db, "SELECT id FROM xmpp_requests") == []


def test_account_jids():
    assert nat.account_jid("00D09E-IGD-SN0001", "d") == "00d09e-igd-sn0001@d"
    assert (
        nat.account_jid("00D09E-IGD%20X-SN1", "d")
        == "cpe-" + (__import__("hashlib").sha256(b"00D09E-IGD%20X-SN1").hexdigest()[:24]) + "@d"
    )
