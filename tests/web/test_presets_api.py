"""/api/v1/presets: CRUD with roles and audit, the default preset, dry-run."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from acs.services import operators
from acs.simulator import datamodels
from tests.fake_cpe import FakeCpe, device_id
from tests.services.harness import ServiceCpe, session

NOW = datetime(2020, 1, 1, tzinfo=UTC)
NTP = "InternetGatewayDevice.Time.NTPServer1"


@pytest.fixture
async def people(runtime):
    await operators.create_operator(runtime.db, "root", "admin", "root-password", NOW)
    await operators.create_operator(runtime.db, "eve", "viewer", "eve-password", NOW)
    return {"root": ("root", "root-password"), "eve": ("eve", "eve-password")}


async def test_operators_write_presets_viewers_read_them_and_all_is_audited(api, people):
    body = {
        "name": "ntp",
        "weight": 5,
        "filter": {"product_class": "IGD", "parameters": {"DeviceInfo.HardwareVersion": "HW-2"}},
        "events": ["1 BOOT", "2 PERIODIC"],
        "desired": {
            "parameters": {"Time.NTPServer1": {"value": "ntp.example.net"}},
            "periodic_inform_interval": 600,
        },
    }
    refused = await api.post("/api/v1/presets", json=body, auth=people["eve"])
    assert refused.status_code == 403
    r = await api.post("/api/v1/presets", json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["name"], created["version"], created["created_by"]) == ("ntp", 1, "ops")
    listed = (await api.get("/api/v1/presets", auth=people["eve"])).json()["data"]
    assert [p["name"] for p in listed] == ["bootstrap", "ntp"]  # by weight: the default first
    assert listed[0]["desired"] == {"connection_request_credentials": True}

    r = await api.patch("/api/v1/presets/ntp", json={"enabled": False})
    assert (r.status_code, r.json()["enabled"], r.json()["version"]) == (200, False, 2)
    assert (await api.post("/api/v1/presets", json=body)).status_code == 409
    bad = {
        **body,
        "name": "bad",
        "desired": {"parameters": {"X.Count": {"value": "a", "type": "xsd:int"}}},
    }
    r = await api.post("/api/v1/presets", json=bad)
    assert r.status_code == 422 and "is not an integer" in r.text
    r = await api.post("/api/v1/presets", json={**body, "name": "bad", "schedule": "2-4"})
    assert r.status_code == 422
    r = await api.post(
        "/api/v1/presets", json={**body, "name": "fw", "desired": {"firmware": "none.bin"}}
    )
    assert (r.status_code, "no stored file" in r.text) == (422, True)

    # the default preset: changed or switched off, never deleted or renamed
    r = await api.patch("/api/v1/presets/bootstrap", json={"enabled": False})
    assert r.status_code == 200
    assert (await api.delete("/api/v1/presets/bootstrap")).status_code == 409
    assert (await api.patch("/api/v1/presets/bootstrap", json={"name": "x"})).status_code == 409
    assert (await api.delete("/api/v1/presets/ntp")).status_code == 204
    assert (await api.get("/api/v1/presets/ntp")).status_code == 404

    audit = (await api.get("/api/v1/audit", auth=people["root"])).json()["data"]
    assert [(a["method"], a["path"], a["status"]) for a in reversed(audit)] == [
        ("POST", "/api/v1/presets", 403),
        ("POST", "/api/v1/presets", 201),
        ("PATCH", "/api/v1/presets/ntp", 200),
        ("POST", "/api/v1/presets", 409),
        ("POST", "/api/v1/presets", 422),
        ("POST", "/api/v1/presets", 422),
        ("POST", "/api/v1/presets", 422),
        ("PATCH", "/api/v1/presets/bootstrap", 200),
        ("DELETE", "/api/v1/presets/bootstrap", 409),
        ("PATCH", "/api/v1/presets/bootstrap", 409),
        ("DELETE", "/api/v1/presets/ntp", 204),
    ]


async def test_dry_run_says_which_devices_match_and_what_one_would_get(api, runtime, people):
    gateways = [ServiceCpe(runtime, FakeCpe(datamodels.gateway(f"SN{n:04}"))) for n in range(3)]
    for cpe in gateways:
        await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    phone = ServiceCpe(runtime, FakeCpe(datamodels.phone("0c:38:3e:12:34:56")))
    await session(phone, "0 BOOTSTRAP", "1 BOOT")
    body = {
        "name": "ntp",
        "filter": {"oui": "00D09E", "model": "IGD", "mode": "common"},
        "desired": {"parameters": {"Time.NTPServer1": "ntp.example.net"}, "tags": ["ntp"]},
        "enabled": False,  # a dry-run needs no enabled preset
    }
    assert (await api.post("/api/v1/presets", json=body)).status_code == 201
    # the ModelName is known once asked: the gateways' Informs do not carry it
    await runtime.presets.update("ntp", {"filter": {"oui": "00D09E", "mode": "common"}}, now=NOW)
    first = device_id(gateways[0].fake)
    r = await api.get(
        "/api/v1/presets/ntp/dry-run", params={"device_id": first, "limit": 2}, auth=people["eve"]
    )
    assert r.status_code == 200, r.text
    run = r.json()
    assert (run["count"], run["devices"]) == (3, sorted(device_id(c.fake) for c in gateways)[:2])
    device = run["device"]
    assert (device["id"], device["matches"], device["converged"]) == (first, True, False)
    assert device["would"]["refresh"] == [NTP]  # not known yet: asked first
    assert device["would"]["tags"] == ["ntp"]
    assert (await api.get("/api/v1/presets/none/dry-run")).status_code == 404
    r = await api.get("/api/v1/presets/ntp/dry-run", params={"device_id": "nope"})
    assert r.status_code == 404
    await runtime.presets.update("ntp", {"filter": {"mode": "ctc"}}, now=NOW)
    assert (await api.get("/api/v1/presets/ntp/dry-run")).json()["count"] == 0


async def test_dry_run_matches_the_model_on_either_root(api, runtime):
    from acs.db import hot, queries

    gateway = ServiceCpe(runtime)
    phone = ServiceCpe(runtime, FakeCpe(datamodels.phone("0c:38:3e:12:34:56")))
    for cpe in (gateway, phone):
        await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    async with runtime.db.write() as conn:  # as a GetParameterValues answer would
        tx = hot.over(conn)
        await queries.merge_parameters(
            tx, device_id(phone.fake), {"Device.DeviceInfo.ModelName": {"value": "X6"}}
        )
        await queries.merge_parameters(
            tx,
            device_id(gateway.fake),
            {"InternetGatewayDevice.DeviceInfo.ModelName": {"value": "X6"}},
        )
    body = {"name": "x6", "filter": {"model": "X6"}}
    assert (await api.post("/api/v1/presets", json=body)).status_code == 201
    run = (await api.get("/api/v1/presets/x6/dry-run")).json()
    assert run["count"] == 2
    await runtime.presets.update("x6", {"filter": {"model": "X6", "oui": "0C383E"}}, now=NOW)
    run = (await api.get("/api/v1/presets/x6/dry-run")).json()
    assert (run["count"], run["devices"]) == (1, [device_id(phone.fake)])


async def test_dry_run_reads_relative_filter_paths_under_the_devices_root(api, runtime):
    """A filter path under no root is under the device's, as in sessions: the dry-run counts
    a gateway and a phone for it, and a full path only the devices of its root."""
    gateway = ServiceCpe(runtime)
    phone = ServiceCpe(runtime, FakeCpe(datamodels.phone("0c:38:3e:12:34:56")))
    for cpe in (gateway, phone):
        await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    version = "DeviceInfo.SoftwareVersion"  # in every Inform, so in both trees
    body = {"name": "any-root", "filter": {"parameters": {version: "1.0.0"}}}
    assert (await api.post("/api/v1/presets", json=body)).status_code == 201
    assert (await api.get("/api/v1/presets/any-root/dry-run")).json()["devices"] == [
        device_id(gateway.fake)
    ]
    phone_version = phone.fake.model.get(f"Device.{version}")
    await runtime.presets.update(
        "any-root", {"filter": {"parameters": {version: phone_version}}}, now=NOW
    )
    run = (await api.get("/api/v1/presets/any-root/dry-run")).json()
    assert run["devices"] == [device_id(phone.fake)]
    full = {f"InternetGatewayDevice.{version}": phone_version}
    await runtime.presets.update("any-root", {"filter": {"parameters": full}}, now=NOW)
    assert (await api.get("/api/v1/presets/any-root/dry-run")).json()["count"] == 0
