"""The management API in process (httpx ASGI transport), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from acs.services import operators
from acs.simulator import datamodels
from acs.web.api_app import create_api_app
from tests.fake_cpe import FakeCpe
from tests.services.harness import ServiceCpe

DEVICE = "00D09E-IGD-SN0001"
NOW = datetime(2020, 1, 1, tzinfo=UTC)  # in the past: a 60 s token made then is dead


@pytest.fixture
async def api(runtime):
    for name, role in (("root", "admin"), ("ops", "operator"), ("eve", "viewer")):
        await operators.create_operator(runtime.db, name, role, f"{name}-password", NOW)
    transport = httpx.ASGITransport(app=create_api_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


def as_(name: str) -> httpx.BasicAuth:
    return httpx.BasicAuth(name, f"{name}-password")


@pytest.fixture
async def device(runtime):
    cpe = ServiceCpe(runtime)
    assert (await cpe.inform("0 BOOTSTRAP")).status == 200
    assert (await cpe.empty()).status == 204
    return cpe


async def test_health_and_openapi_need_no_auth(api):
    assert (await api.get("/healthz")).json()["status"] == "ok"
    schema = (await api.get("/api/v1/openapi.json")).json()
    assert "/api/v1/devices/{device_id}/tasks" in schema["paths"]
    assert (await api.get("/api/v1/docs")).status_code == 200


async def test_authentication_failures(api):
    r = await api.get("/api/v1/devices")
    assert (r.status_code, r.headers["www-authenticate"]) == (401, 'Basic realm="acs", Bearer')
    assert (
        await api.get("/api/v1/devices", auth=httpx.BasicAuth("root", "wrong"))
    ).status_code == 401
    assert (
        await api.get("/api/v1/devices", auth=httpx.BasicAuth("nobody", "x" * 8))
    ).status_code == 401
    r = await api.get("/api/v1/devices", headers={"authorization": "Bearer acs_forged"})
    assert r.status_code == 401
    assert (await api.get("/metrics")).status_code == 401


async def test_roles(api, device):
    assert (await api.get("/api/v1/devices", auth=as_("eve"))).status_code == 200
    r = await api.post(f"/api/v1/devices/{DEVICE}/tasks", json={"name": "Reboot"}, auth=as_("eve"))
    assert (r.status_code, r.json()["detail"]) == (403, "needs the operator role; eve is viewer")
    assert (await api.get("/api/v1/operators", auth=as_("ops"))).status_code == 403
    assert (await api.get("/api/v1/audit", auth=as_("ops"))).status_code == 403
    assert (await api.get("/api/v1/operators", auth=as_("root"))).status_code == 200
    r = await api.post(f"/api/v1/devices/{DEVICE}/tasks", json={"name": "Reboot"}, auth=as_("ops"))
    assert r.status_code == 202
    me = (await api.get("/api/v1/me", auth=as_("ops"))).json()
    assert me == {"name": "ops", "role": "operator", "via": "password"}


async def test_tokens(api):
    r = await api.post("/api/v1/tokens", json={"name": "ci"}, auth=as_("ops"))
    assert r.status_code == 201
    token = r.json()["token"]
    assert token.startswith("acs_") and r.json()["operator"] == "ops"
    bearer = {"authorization": f"Bearer {token}"}
    me = (await api.get("/api/v1/me", headers=bearer)).json()
    assert me == {"name": "ops", "role": "operator", "via": "token"}
    listed = (await api.get("/api/v1/tokens", headers=bearer)).json()
    assert [t["name"] for t in listed] == ["ci"]
    assert "token" not in listed[0]
    r = await api.post("/api/v1/tokens", json={"name": "x", "operator": "eve"}, headers=bearer)
    assert r.status_code == 403
    r = await api.post(
        "/api/v1/tokens", json={"name": "for-eve", "operator": "eve"}, auth=as_("root")
    )
    assert r.status_code == 201
    assert len((await api.get("/api/v1/tokens", auth=as_("root"))).json()) == 2
    eves = r.json()["id"]
    r = await api.delete(f"/api/v1/tokens/{eves}", headers=bearer)
    assert (r.status_code, r.json()) == (404, {"detail": f"no token {eves} of yours"})
    assert (
        await api.delete(f"/api/v1/tokens/{listed[0]['id']}", headers=bearer)
    ).status_code == 204
    assert (await api.get("/api/v1/me", headers=bearer)).status_code == 401


async def test_disabled_operator_and_expired_token(api, runtime):
    token, _ = await operators.create_token(runtime.db, "eve", "old", NOW, ttl=60)
    assert (
        await api.get("/api/v1/me", headers={"authorization": f"Bearer {token}"})
    ).status_code == 401  # it expired long ago (NOW is in the past)
    r = await api.patch("/api/v1/operators/eve", json={"disabled": True}, auth=as_("root"))
    assert r.json()["disabled"] is True
    assert (await api.get("/api/v1/me", auth=as_("eve"))).status_code == 401


async def test_operator_management(api):
    r = await api.post(
        "/api/v1/operators",
        json={"name": "new", "role": "viewer", "password": "longenough"},
        auth=as_("root"),
    )
    assert (r.status_code, r.json()["role"]) == (201, "viewer")
    r = await api.post(
        "/api/v1/operators",
        json={"name": "new", "role": "viewer", "password": "longenough"},
        auth=as_("root"),
    )
    assert (r.status_code, r.json()["detail"]) == (422, "operator 'new' exists already")
    r = await api.post("/api/v1/operators", json={"name": "x", "role": "god"}, auth=as_("root"))
    assert r.status_code == 422
    assert (
        await api.patch("/api/v1/operators/new", json={"role": "operator"}, auth=as_("root"))
    ).json()["role"] == "operator"
    assert (await api.delete("/api/v1/operators/new", auth=as_("root"))).status_code == 204
    assert (await api.delete("/api/v1/operators/new", auth=as_("root"))).status_code == 404
    r = await api.delete("/api/v1/operators/root", auth=as_("root"))
    assert (r.status_code, r.json()["detail"]) == (409, "that would leave no enabled admin")


async def test_audit_log_records_changes_and_refusals(api, device):
    await api.post(f"/api/v1/devices/{DEVICE}/tasks", json={"name": "Reboot"}, auth=as_("ops"))
    await api.put(f"/api/v1/devices/{DEVICE}/tags/lab", auth=as_("eve"))
    await api.get("/api/v1/devices", auth=as_("ops"))  # reads are not audited
    entries = (await api.get("/api/v1/audit", auth=as_("root"))).json()
    assert entries["count"] == 2
    refused, queued = entries["data"]
    assert (queued["operator"], queued["method"], queued["status"]) == ("ops", "POST", 202)
    assert queued["path"] == f"/api/v1/devices/{DEVICE}/tasks"
    assert queued["detail"] == {"device": DEVICE, "tasks": ["Reboot"], "connection_request": False}
    assert (refused["operator"], refused["status"]) == ("eve", 403)


async def test_every_device_endpoint_answers_404_for_an_unknown_device(api):
    auth = as_("ops")
    missing = "00D09E-IGD-NOSUCH"
    calls = [
        api.get(f"/api/v1/devices/{missing}", auth=auth),
        api.delete(f"/api/v1/devices/{missing}", auth=auth),
        api.patch(f"/api/v1/devices/{missing}", json={"mode": "ctc"}, auth=auth),
        api.put(f"/api/v1/devices/{missing}/tags/lab", auth=auth),
        api.post(f"/api/v1/devices/{missing}/tasks", json={"name": "Reboot"}, auth=auth),
        api.post(f"/api/v1/devices/{missing}/connection-request", auth=auth),
        api.post(
            f"/api/v1/devices/{missing}/sip-accounts",
            json=[{"line": 1, "auth_user_name": "1001", "auth_password": "pw"}],
            auth=auth,
        ),
    ]
    for call in calls:
        r = await call
        assert (r.status_code, r.json()) == (404, {"detail": f"no device {missing!r}"}), r.url
    audited = (await api.get("/api/v1/audit", auth=as_("root"))).json()["data"]
    assert len(audited) == 6 and {e["status"] for e in audited} == {404}


async def test_devices_listing_and_filters(api, runtime, device):
    other = ServiceCpe(runtime, FakeCpe(datamodels.phone("00:15:65:11:3a:f8")), host="192.0.2.9")
    assert (await other.inform("0 BOOTSTRAP")).status == 200
    assert (await other.empty()).status == 204
    auth = as_("eve")
    everything = (await api.get("/api/v1/devices", auth=auth)).json()
    assert everything["count"] == 2
    phone = "0C383E-X6-001565113af8"
    assert sorted(d["id"] for d in everything["data"]) == [DEVICE, phone]

    async def ids(**params):
        r = await api.get("/api/v1/devices", params=params, auth=auth)
        assert r.status_code == 200, r.text
        return [d["id"] for d in r.json()["data"]]

    assert await ids(product_class="X6") == [phone]
    assert await ids(oui="00D09E") == [DEVICE]
    assert await ids(mac="00-15-65-11-3A-F8") == [phone]
    assert await ids(software_version="1.0.0") == [DEVICE]
    assert await ids(status="online") == sorted([DEVICE, phone])
    assert await ids(status="silent") == []
    assert await ids(parameter="Device.DeviceInfo.SoftwareVersion=2.4.1") == [phone]
    assert await ids(parameter="Device.DeviceInfo.SoftwareVersion=9") == []
    assert await ids(sort="-product_class") == [phone, DEVICE]
    assert await ids(limit=1, offset=1, sort="id") == [phone]  # "00D09E" < "0C383E"
    r = await api.get("/api/v1/devices", params={"id": [phone, DEVICE], "limit": 1}, auth=auth)
    assert r.json()["count"] == 2 and len(r.json()["data"]) == 1
    await api.put(f"/api/v1/devices/{phone}/tags/floor-3", auth=as_("ops"))
    assert await ids(tag="floor-3") == [phone]
    r = await api.delete(f"/api/v1/devices/{phone}/tags/floor-3", auth=as_("ops"))
    assert r.json() == {"tags": []}
    assert await ids(tag="floor-3") == []
    for bad in (
        {"sort": "password"},
        {"status": "asleep"},
        {"parameter": "nodelimiter"},
        {"parameter": "bad path!=1"},
    ):
        assert (await api.get("/api/v1/devices", params=bad, auth=auth)).status_code == 422
    assert (
        await api.put(f"/api/v1/devices/{phone}/tags/bad tag", auth=as_("ops"))
    ).status_code == 422


async def test_device_detail_and_subtree_and_delete(api, device):
    r = await api.get(f"/api/v1/devices/{DEVICE}", auth=as_("eve"))
    body = r.json()
    assert body["id"] == DEVICE and body["connection_request_credentials_set"] is True
    assert (
        body["parameters"]["InternetGatewayDevice.DeviceInfo.SoftwareVersion"]["value"] == "1.0.0"
    )
    sub = (
        await api.get(
            f"/api/v1/devices/{DEVICE}",
            params={"path": "InternetGatewayDevice.ManagementServer."},
            auth=as_("eve"),
        )
    ).json()["parameters"]
    assert sub and all(k.startswith("InternetGatewayDevice.ManagementServer.") for k in sub)
    # device ids hold "%": clients percent-encode them in paths
    assert (await api.get("/api/v1/devices/missing", auth=as_("eve"))).status_code == 404
    assert (await api.delete(f"/api/v1/devices/{DEVICE}", auth=as_("eve"))).status_code == 403
    assert (await api.delete(f"/api/v1/devices/{DEVICE}", auth=as_("ops"))).status_code == 204
    assert (await api.get(f"/api/v1/devices/{DEVICE}", auth=as_("eve"))).status_code == 404


async def test_malformed_task_bodies_are_refused_and_nothing_is_queued(api, device):
    url = f"/api/v1/devices/{DEVICE}/tasks"
    auth = as_("ops")
    cases = [
        ({"name": "SelfDestruct"}, "SelfDestruct"),
        ({"name": "GetParameterValues", "parameter_names": "x"}, "parameter_names"),
        ({"name": "Download", "file_type": "1 Firmware Upgrade Image"}, "url"),
        ([{"name": "Reboot"}, {"name": "AddObject", "object_name": "X"}], "object_name"),
        (
            {
                "name": "SetParameterValues",
                "parameter_values": [{"name": "A.B", "value": "x", "type": "xsd:boolean"}],
            },
            "not a boolean",
        ),
    ]
    for body, field in cases:
        r = await api.post(url, json=body, auth=auth)
        assert r.status_code == 422, body
        assert field in r.text, (field, r.text)
    r = await api.post(
        url, content=b"{not json", auth=auth, headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert (await api.post(url, json=[], auth=auth)).status_code == 422
    r = await api.post("/api/v1/devices/nope/tasks", json={"name": "Reboot"}, auth=auth)
    assert r.status_code == 404
    assert (await api.get("/api/v1/tasks", auth=auth)).json()["count"] == 0


async def test_tasks_endpoints(api, runtime, device):
    auth = as_("ops")
    r = await api.post(
        f"/api/v1/devices/{DEVICE}/tasks",
        auth=auth,
        json=[
            {
                "name": "GetParameterValues",
                "parameter_names": ["InternetGatewayDevice.DeviceInfo.UpTime"],
            },
            {
                "name": "Download",
                "file_type": "3 Vendor Configuration File",
                "url": "http://f/c.cfg",
                "password": "hush",
            },
        ],
    )
    assert r.status_code == 202
    data = r.json()
    assert data["count"] == 2 and data["connection_request"] is None
    gpv, download = data["data"]
    assert gpv["status"] == "queued" and gpv["created_by"] == "ops"
    assert download["arguments"]["password"] == "********"
    assert (await api.get("/api/v1/tasks", params={"status": "queued"}, auth=auth)).json()[
        "count"
    ] == 2
    assert (await api.get("/api/v1/tasks", params={"name": "Download"}, auth=auth)).json()["data"][
        0
    ]["id"] == download["id"]
    assert (
        await api.get("/api/v1/tasks", params={"status": "bogus"}, auth=auth)
    ).status_code == 422
    # wait: the CPE is not reachable, so the reply says 202 with the tasks still queued
    r = await api.post(
        f"/api/v1/devices/{DEVICE}/tasks?wait=0.3", json={"name": "GetRPCMethods"}, auth=auth
    )
    assert (r.status_code, r.json()["data"][0]["status"]) == (202, "queued")
    cancel = await api.delete(f"/api/v1/tasks/{download['id']}", auth=auth)
    assert cancel.json()["status"] == "cancelled"
    assert (await api.delete(f"/api/v1/tasks/{download['id']}", auth=auth)).status_code == 409
    assert (await api.post(f"/api/v1/tasks/{download['id']}/retry", auth=auth)).json()[
        "status"
    ] == "queued"
    assert (await api.post(f"/api/v1/tasks/{gpv['id']}/retry", auth=auth)).status_code == 409
    assert (await api.get("/api/v1/tasks/999999", auth=auth)).status_code == 404
    await device.inform()
    await device.empty()
    done = (await api.get(f"/api/v1/tasks/{gpv['id']}", auth=auth)).json()
    assert done["status"] == "done" and done["result"]["parameter_list"][0]["value"] == 42
    listed = (await api.get(f"/api/v1/devices/{DEVICE}/tasks", auth=auth)).json()
    assert listed["count"] == 3


async def test_connection_request_failure_is_explained_and_tasks_stay_queued(api, device):
    r = await api.post(
        f"/api/v1/devices/{DEVICE}/tasks?connection_request=true&wait=5",
        json={"name": "GetRPCMethods"},
        auth=as_("ops"),
    )
    assert r.status_code == 202
    body = r.json()
    assert body["connection_request"]["ok"] is False
    assert body["connection_request"]["error"] == (
        "no way to reach the device (http: the device reported no ConnectionRequestURL; "
        "udp: no STUN binding and no UDPConnectionRequestAddress; xmpp: XMPP is off "
        "(ACS_XMPP_JID))"
    )
    assert body["connection_request"]["method"] == "none"
    assert [a["outcome"] for a in body["connection_request"]["attempts"]] == ["skipped"] * 3
    assert body["data"][0]["status"] == "queued"


async def test_faults_endpoint(api, device):
    await api.post(
        f"/api/v1/devices/{DEVICE}/tasks",
        auth=as_("ops"),
        json={"name": "GetParameterValues", "parameter_names": ["Nope.Nothing"]},
    )
    await device.inform()
    await device.empty()
    faults = (await api.get("/api/v1/faults", params={"device_id": DEVICE}, auth=as_("eve"))).json()
    assert faults["count"] == 1
    [fault] = faults["data"]
    assert (fault["code"], fault["source"], fault["meaning"]) == (
        9005,
        "cpe",
        "Invalid parameter name",
    )
    assert (await api.get("/api/v1/faults", params={"code": 9003}, auth=as_("eve"))).json()[
        "count"
    ] == 0


async def test_metrics(api, device):
    from prometheus_client.parser import text_string_to_metric_families

    r = await api.get("/metrics", auth=as_("eve"))
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    devices = {s.labels["status"]: s.value for s in families["acs_devices"].samples}
    assert devices == {"never_seen": 0, "online": 1, "late": 0, "offline": 0, "unknown": 0}
    assert [s.value for s in families["acs_cwmp_sessions_open"].samples] == [0]
    assert families["acs_tasks"].type == "gauge"
    openmetrics = await api.get(
        "/metrics", auth=as_("eve"), headers={"accept": "application/openmetrics-text"}
    )
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.endswith("# EOF\n")


async def test_metrics_can_be_public(make_runtime):
    rt = await make_runtime(metrics_public=True)
    transport = httpx.ASGITransport(app=create_api_app(rt))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        assert (await client.get("/metrics")).status_code == 200


async def test_admin_password_setting_creates_the_admin_once(make_runtime):
    rt = await make_runtime(admin_password="first-password")
    admin = await operators.authenticate_password(rt.db, "admin", "first-password")
    assert admin is not None and admin.role == "admin"
    # a later start (or another node) with another value leaves the existing admin alone
    again = await make_runtime(admin_password="second-password")
    assert await operators.authenticate_password(again.db, "admin", "second-password") is None
    assert await operators.authenticate_password(again.db, "admin", "first-password")
    created = await operators.ensure_admin(again.db, "third-password", datetime.now(UTC))
    assert created is False
    with pytest.raises(operators.OperatorError, match="at least 8"):
        await operators.ensure_admin(again.db, "short", datetime.now(UTC))
