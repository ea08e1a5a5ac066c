"""/api/v1/events, /api/v1/webhooks and device registration through the management API: roles,
audit, paging, refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from acs.services import operators
from tests.services.harness import ServiceCpe, session

NOW = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture
async def admin(runtime):
    await operators.create_operator(runtime.db, "root", "admin", "root-password", NOW)
    return ("root", "root-password")


async def test_events_page_with_a_cursor(api, runtime):
    for _ in range(2):
        await session(ServiceCpe(runtime), "0 BOOTSTRAP", "1 BOOT")
    first = (await api.get("/api/v1/events", params={"limit": 2})).json()
    assert [e["type"] for e in first["data"]] == ["device.registered", "device.bootstrapped"]
    rest = (await api.get("/api/v1/events", params={"after": first["next"]})).json()
    assert [e["type"] for e in rest["data"]] == [
        "device.booted",
        "device.bootstrapped",
        "device.booted",
    ]
    empty = (await api.get("/api/v1/events", params={"after": rest["next"]})).json()
    assert empty == {"data": [], "next": rest["next"]}
    booted = await api.get("/api/v1/events", params={"type": "device.booted"})
    assert len(booted.json()["data"]) == 2
    bad = await api.get("/api/v1/events", params={"type": "device.exploded"})
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("unknown event type 'device.exploded'")


async def test_devices_are_registered_by_operators(api, runtime):
    body = {"oui": "00D09E", "product_class": "IGD", "serial_number": "SN0001", "tags": ["lab"]}
    r = await api.post("/api/v1/devices", json=body)
    assert r.status_code == 201, r.text
    assert (r.json()["id"], r.json()["status"], r.json()["tags"]) == (
        "00D09E-IGD-SN0001",
        "never_seen",
        ["lab"],
    )
    assert (await api.post("/api/v1/devices", json=body)).status_code == 409
    listed = await api.get("/api/v1/devices", params={"status": "never_seen"})
    assert [d["id"] for d in listed.json()["data"]] == ["00D09E-IGD-SN0001"]
    r = await api.post("/api/v1/devices", json={**body, "serial_number": "X", "bogus": 1})
    assert r.status_code == 422


async def test_webhooks_are_for_admins(api, runtime, admin):
    body = {"url": "http://127.0.0.1:9/hook", "event_types": ["device.late"]}
    assert (await api.post("/api/v1/webhooks", json=body)).status_code == 403
    r = await api.post("/api/v1/webhooks", json=body, auth=admin)
    assert r.status_code == 201, r.text
    created = r.json()
    assert len(created["secret"]) >= 32  # generated, shown once
    hook_id = created["id"]
    listed = (await api.get("/api/v1/webhooks", auth=admin)).json()["data"]
    assert [h["id"] for h in listed] == [hook_id]
    assert "secret" not in listed[0]
    r = await api.patch(f"/api/v1/webhooks/{hook_id}", json={"enabled": False}, auth=admin)
    assert (r.status_code, r.json()["enabled"]) == (200, False)
    r = await api.get(f"/api/v1/webhooks/{hook_id}/deliveries", auth=admin)
    assert r.json() == {"data": [], "count": 0}
    bad = await api.post("/api/v1/webhooks", json={"url": "mailto:x@y"}, auth=admin)
    assert bad.status_code == 422
    assert (await api.delete(f"/api/v1/webhooks/{hook_id}", auth=admin)).status_code == 204
    assert (await api.get(f"/api/v1/webhooks/{hook_id}", auth=admin)).status_code == 404
    audit = (await api.get("/api/v1/audit", params={"operator": "root"}, auth=admin)).json()
    assert [(a["method"], a["path"], a["status"]) for a in reversed(audit["data"])] == [
        ("POST", "/api/v1/webhooks", 201),
        ("PATCH", f"/api/v1/webhooks/{hook_id}", 200),
        ("POST", "/api/v1/webhooks", 422),
        ("DELETE", f"/api/v1/webhooks/{hook_id}", 204),
    ]
