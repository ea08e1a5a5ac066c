"""The console's server side on SQLite and PostgreSQL (in process, httpx ASGI transport):
sessions, roles and CSRF enforced by the server, the overview's per-minute counts, the
set-based bulk actions, rollouts stopped and resumed, the phone CSV report, audit filters."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from acs.db import tables
from acs.services import console_sessions, devices, operators, overview, rollouts, tasks
from acs.services.console_sessions import Lifetime
from acs.services.provisioning import ImportRefused
from acs.web.api_app import create_api_app

NOW = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)


async def _register(runtime, serials: list[str], product_class: str = "IGD") -> list[str]:
    ids = []
    for serial in serials:
        view = await devices.register(
            runtime.db,
            oui="00D09E",
            product_class=product_class,
            serial_number=serial,
            tags=[],
            mode=None,
            now=NOW,
        )
        ids.append(view["id"])
    return ids


@pytest.fixture
async def console(runtime):
    """The management app with an admin, an operator and a viewer; ``sign_in(name)``."""
    for name, role in (("root", "admin"), ("ops", "operator"), ("eve", "viewer")):
        await operators.create_operator(runtime.db, name, role, f"{name}-password", NOW)
    app = create_api_app(runtime)
    clients: list[httpx.AsyncClient] = []

    async def sign_in(name: str) -> tuple[httpx.AsyncClient, str]:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://console.test"
        )
        clients.append(client)
        r = await client.post(
            "/login", data={"name": name, "password": f"{name}-password", "next": "/devices"}
        )
        assert (r.status_code, r.headers["location"]) == (303, "/devices")
        page = await client.get("/devices")
        csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
        assert csrf is not None
        return client, csrf.group(1)

    yield sign_in
    for client in clients:
        await client.aclose()


async def test_pages_need_a_session_and_forms_need_its_token(console, runtime):
    anonymous = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_api_app(runtime)), base_url="http://console.test"
    )
    async with anonymous:
        r = await anonymous.get("/devices?status=online")
        assert (r.status_code, r.headers["location"]) == (
            303,
            "/login?next=%2Fdevices%3Fstatus%3Donline",
        )
        r = await anonymous.post("/devices/act", data={"action": "reboot"})
        assert r.status_code == 401
        r = await anonymous.post("/login", data={"name": "ops", "password": "wrong"})
        assert r.status_code == 401 and "Wrong name or password" in r.text
    ops, csrf = await console("ops")
    [device] = await _register(runtime, ["S1"])
    forms = {"tag": "lab", "action": "add"}
    r = await ops.post(f"/devices/{device}/tags", data=forms)
    assert r.status_code == 403 and "security token is missing" in r.text
    r = await ops.post(f"/devices/{device}/tags", data={**forms, "csrf": "0" * 64})
    assert r.status_code == 403
    r = await ops.post(
        f"/devices/{device}/tags",
        data={**forms, "csrf": csrf},
        headers={"origin": "http://evil.example"},
    )
    assert (r.status_code, "cross-origin request refused" in r.text) == (403, True)
    r = await ops.post(f"/devices/{device}/tags", data={**forms, "csrf": csrf})
    assert (r.status_code, r.headers["location"]) == (303, f"/devices/{device}?done=tag+lab+added")
    assert (await devices.get_device(runtime.db, device, now=NOW))["tags"] == ["lab"]
    # another operator's token is not this session's
    _other, other_csrf = await console("root")
    r = await ops.post(f"/devices/{device}/tags", data={**forms, "csrf": other_csrf})
    assert r.status_code == 403
    # signing out ends the session on the server: the cookie is worth nothing afterwards
    cookie = ops.cookies["acs_console"]
    r = await ops.post("/logout", data={"csrf": csrf})
    assert r.status_code == 303
    ops.cookies.set("acs_console", cookie)
    r = await ops.get("/devices")
    assert r.status_code == 303


async def test_the_server_enforces_roles_whatever_the_page_shows(console, runtime):
    [device] = await _register(runtime, ["S1"])
    eve, csrf = await console("eve")
    page = await eve.get(f"/devices/{device}")
    assert page.status_code == 200
    assert 'id="reboot"' not in page.text and "Your role can look, not act." in page.text
    for path, data in (
        (f"/devices/{device}/task", {"action": "reboot"}),
        (f"/devices/{device}/delete", {}),
        ("/devices/act", {"action": "reboot", "scope": "all"}),
        ("/admin/operators", {"name": "x", "role": "admin", "password": "12345678"}),
    ):
        r = await eve.post(path, data={**data, "csrf": csrf})
        assert r.status_code == 403, path
    assert (await tasks.list_tasks(runtime.db, device_id=device))[1] == 0
    r = await eve.get("/admin")
    assert r.status_code == 403 and "needs the admin role; eve is viewer" in r.text
    entries, _ = await operators.list_audit(runtime.db, operator="eve", method="POST")
    assert [(e["path"], e["status"]) for e in entries[:4]] == [
        ("/admin/operators", 403),
        ("/devices/act", 403),
        (f"/devices/{device}/delete", 403),
        (f"/devices/{device}/task", 403),
    ]


async def test_a_disabled_operator_or_an_idle_session_is_signed_out(console, runtime):
    ops, _ = await console("ops")
    await operators.update_operator(runtime.db, "ops", disabled=True)
    assert (await ops.get("/devices")).status_code == 303
    life = Lifetime(idle=60, max_age=3600)
    token = await console_sessions.open_session(runtime.db, "root", NOW, life)
    alive = await console_sessions.resume(runtime.db, token, NOW + timedelta(seconds=59), life)
    assert alive is not None and alive.principal.role == "admin"
    # touched at 59 s: idle counts from then
    assert await console_sessions.resume(runtime.db, token, NOW + timedelta(seconds=117), life)
    assert (
        await console_sessions.resume(runtime.db, token, NOW + timedelta(seconds=178), life) is None
    )
    token = await console_sessions.open_session(runtime.db, "root", NOW, Lifetime(3600, 120))
    late = NOW + timedelta(seconds=120)
    assert await console_sessions.resume(runtime.db, token, late, Lifetime(3600, 120)) is None


async def test_informs_are_counted_per_closed_minute_once(runtime):
    [device] = await _register(runtime, ["S1"])
    i = tables.informs
    received = [
        NOW - timedelta(minutes=m, seconds=s)
        for m, s in ((0, 5), (1, 5), (3, 5), (3, 9), (90, 5), (60 * 25, 5))
    ]
    async with runtime.db.write() as conn:
        for at in received:
            events = [["6 CONNECTION REQUEST", ""]] if at == received[2] else [["2 PERIODIC", ""]]
            await conn.execute(
                i.insert().values(device_id=device, received=at, events=events, retry_count=0)
            )
    series, last_hour, crs = await overview.informs_per_minute(runtime.db, NOW)
    assert len(series) == 24 * 60
    counts = {at: n for at, n in series if n}
    assert counts == {
        datetime(2026, 12, 1, 12, 0, tzinfo=UTC): 1,  # the open minutes, read live
        datetime(2026, 12, 1, 11, 59, tzinfo=UTC): 1,
        datetime(2026, 12, 1, 11, 57, tzinfo=UTC): 2,  # closed: from inform_minutes
        datetime(2026, 12, 1, 10, 30, tzinfo=UTC): 1,
    }
    assert (last_hour, crs) == (4, 1)
    async with runtime.db.read() as conn:
        rolled = (await conn.execute(tables.inform_minutes.select())).all()
    assert len(rolled) == 24 * 60 - 1  # every closed minute of the window, empty ones too
    # a late row in a closed minute is not counted again: closed minutes are final
    async with runtime.db.write() as conn:
        await conn.execute(
            i.insert().values(device_id=device, received=received[2], events=[], retry_count=0)
        )
    again, _, _ = await overview.informs_per_minute(runtime.db, NOW + timedelta(seconds=10))
    assert dict(again)[datetime(2026, 12, 1, 11, 57, tzinfo=UTC)] == 2
    view = await overview.overview(runtime.db, NOW)
    assert (view.total, view.models, view.sessions_last_hour) == (1, [("", "IGD", 1)], 4)


async def test_bulk_tags_and_deletion_are_set_based_on_the_search(runtime):
    ids = await _register(runtime, ["A1", "A2", "A3"]) + await _register(runtime, ["B1"], "X6")
    igd = devices.DeviceFilter(product_class="IGD")
    assert await devices.set_tag_matching(runtime.db, igd, "lab", True, now=NOW) == 3
    assert await devices.set_tag_matching(runtime.db, igd, "lab", True, now=NOW) == 0
    found, count = await devices.search(runtime.db, devices.DeviceFilter(tag="lab"), now=NOW)
    assert (count, [d["id"] for d in found]) == (3, ids[:3])
    one = devices.DeviceFilter(ids=[ids[0]])
    assert await devices.set_tag_matching(runtime.db, one, "lab", False, now=NOW) == 1
    assert (await devices.get_device(runtime.db, ids[0], now=NOW))["tags"] == []
    with pytest.raises(devices.BadFilter):
        await devices.set_tag_matching(runtime.db, igd, "no spaces", True, now=NOW)
    assert await devices.delete_matching(runtime.db, igd, now=NOW, batch=2) == 3
    _, left = await devices.search(runtime.db, devices.DeviceFilter(), now=NOW)
    assert left == 1


async def test_a_page_sorts_ties_by_id_in_its_direction_and_counts_stop_at_a_cap(runtime):
    ids = await _register(runtime, [f"S{i}" for i in range(5)])
    async with runtime.db.write() as conn:  # two Informs at one instant, three at another
        for i, device_id in enumerate(ids):
            at = NOW - timedelta(minutes=1 if i < 2 else 2)
            await conn.execute(
                tables.devices.update()
                .where(tables.devices.c.id == device_id)
                .values(last_inform=at)
            )
    every = devices.DeviceFilter()
    found, count = await devices.search(runtime.db, every, now=NOW, sort="-last_inform")
    assert ([d["id"] for d in found], count) == ([ids[1], ids[0], ids[4], ids[3], ids[2]], 5)
    found, _ = await devices.search(runtime.db, every, now=NOW, sort="last_inform", limit=2)
    assert [d["id"] for d in found] == ids[2:4]
    # a capped count says "more than 3" as 4; a cap above the count is the exact count
    found, count = await devices.search(runtime.db, every, now=NOW, limit=2, count_limit=3)
    assert (len(found), count) == (2, 4)
    assert (await devices.search(runtime.db, every, now=NOW, count_limit=5))[1] == 5
    batches = [
        [d["id"] for d in batch]
        async for batch in devices.batches(runtime.db, every, now=NOW, size=2)
    ]
    assert batches == [sorted(ids)[0:2], sorted(ids)[2:4], sorted(ids)[4:]]


async def test_the_device_list_counts_up_to_a_cap_unless_asked_for_all(
    console, runtime, monkeypatch
):
    from acs.web.console import fleet

    ids = await _register(runtime, [f"C{i}" for i in range(7)])
    monkeypatch.setattr(fleet, "COUNT_CAP", 4)
    monkeypatch.setattr(fleet, "EXPORT_BATCH", 3)
    viewer, _ = await console("eve")
    page = await viewer.get("/devices", params={"per_page": 2})
    assert "<strong>more than 4</strong> devices match." in page.text
    assert "page 1 of 2+" in page.text and ">Last<" not in page.text
    assert re.search(r'href="/devices\?[^"]*count=all">Count them all', page.text)
    page = await viewer.get("/devices", params={"per_page": 2, "page": 3})
    assert "page 3 of 3+" in page.text  # counted far enough to show the next page
    page = await viewer.get("/devices", params={"per_page": 2, "count": "all"})
    assert "<strong>7</strong> devices match." in page.text and "page 1 of 4" in page.text
    export = await viewer.get("/devices.csv", params={"product_class": "IGD"})
    lines = export.text.splitlines()
    assert [line.split(",")[0] for line in lines] == ["id", *sorted(ids)]


async def test_a_bulk_reboot_from_the_console_is_a_rollout(console, runtime):
    ids = await _register(runtime, ["A1", "A2", "A3"])
    ops, csrf = await console("ops")
    r = await ops.post(
        "/devices/act",
        data={
            "csrf": csrf,
            "scope": "all",
            "product_class": "IGD",
            "action": "reboot",
            "wave_size": "2",
            "name": "night reboot",
        },
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/rollouts/")
    [rollout], _ = await rollouts.list_rollouts(runtime.db)
    assert (rollout["name"], rollout["filter"], rollout["targets"], rollout["waves"]) == (
        "night reboot",
        {"product_class": "IGD"},
        3,
        2,
    )
    found, _ = await tasks.list_tasks(runtime.db, name="Reboot")
    assert sorted(t["device_id"] for t in found) == ids[:2]  # the first wave
    r = await ops.post("/devices/act", data={"csrf": csrf, "action": "reboot"})
    assert r.status_code == 422 and "select devices first" in r.text
    r = await ops.post("/devices/act", data={"csrf": csrf, "scope": "all", "action": "delete"})
    assert r.status_code == 422 and "refusing to delete every device" in r.text


async def test_a_stopped_rollout_resumes_its_cancelled_tasks_then_moves_on(runtime):
    await _register(runtime, ["A1", "A2", "A3"])
    rollout, _ = await rollouts.create(
        runtime.db,
        name="r",
        filter={"product_class": "IGD"},
        task={"name": "Reboot"},
        wave_size=2,
        failure_threshold=0.0,
        connection_request=False,
        created_by="ops",
        now=NOW,
        task_ttl=3600,
    )
    stopped = await rollouts.stop(runtime.db, rollout["id"], NOW, "by hand")
    assert (stopped["status"], stopped["progress"]) == (
        "stopped",
        {"done": 0, "failed": 2, "pending": 1},
    )
    await rollouts.resume(runtime.db, rollout["id"], NOW, 3600)
    resumed = await rollouts.get(runtime.db, rollout["id"])
    assert (resumed["status"], resumed["reason"], resumed["progress"]) == (
        "running",
        None,
        {"done": 0, "failed": 0, "pending": 3},
    )
    with pytest.raises(rollouts.RolloutStateError):
        await rollouts.resume(runtime.db, rollout["id"], NOW, 3600)
    with pytest.raises(rollouts.RolloutNotFound):
        await rollouts.resume(runtime.db, 999, NOW, 3600)


async def test_phone_import_reports_every_refused_line_and_imports_nothing_then(runtime):
    text = "mac,model,user\n001565113af8,X6,1001\nnot-a-mac,X6,1002\n001565113af9,Z99,1003\n"
    with pytest.raises(ImportRefused) as refused:
        await runtime.provisioning.import_phones(text, NOW)
    assert refused.value.accepted == 1
    assert refused.value.refused == [
        (3, "not a MAC address: 'not-a-mac'"),
        (4, refused.value.refused[1][1]),
    ]
    assert "Z99" in refused.value.refused[1][1]
    assert (await runtime.provisioning.list_phones())[1] == 0
    good = await runtime.provisioning.import_phones("mac,user\n001565113af8,1001\n", NOW)
    assert (good.created, good.updated) == (["001565113af8"], [])


async def test_audit_log_filters(runtime):
    for method, path, status in (
        ("POST", "/devices/act", 303),
        ("POST", "/devices_x/act", 403),
        ("DELETE", "/api/v1/files/a", 204),
    ):
        await operators.record_audit(
            runtime.db,
            now=NOW,
            operator="ops",
            method=method,
            path=path,
            status=status,
            client=None,
        )
    by_path, n = await operators.list_audit(runtime.db, path="/devices_")
    assert (n, [e["path"] for e in by_path]) == (1, ["/devices_x/act"])  # _ is no wildcard
    by_status, n = await operators.list_audit(runtime.db, status=204, method="delete")
    assert (n, by_status[0]["path"]) == (1, "/api/v1/files/a")
    later, n = await operators.list_audit(runtime.db, since=NOW + timedelta(seconds=1))
    assert (n, later) == (0, [])
