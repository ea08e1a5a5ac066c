"""Per-device CWMP credentials in common mode (acs.services.policy.device_credentials)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from acs.cwmp import messages as m
from acs.cwmp import soap
from acs.services import device_credentials as dc
from acs.services import devices, task_specs, tasks
from acs.simulator import datamodels
from tests.fake_cpe import FakeCpe, device_id
from tests.services.harness import ServiceCpe, device_columns, rows, session

MS = "InternetGatewayDevice.ManagementServer."


async def _lifecycle(rt, device: str) -> dict:
    [(doc,)] = await rows(rt.db, "SELECT cwmp_credentials FROM devices WHERE id = :id", id=device)
    return json.loads(doc) if isinstance(doc, str) else doc


async def _view(rt, device: str) -> tuple[str, str | None]:
    view = await devices.get_device(rt.db, device, now=datetime.now(UTC))
    return view["cwmp_credentials"], view["cwmp_credentials_reason"]


def _credential_spv(answered) -> m.SetParameterValues:
    [spv] = [
        r
        for r in answered
        if isinstance(r, m.SetParameterValues)
        and any(p.name == MS + "Password" for p in r.parameter_list)
    ]
    return spv


async def test_first_session_gives_the_device_its_own_pair_then_only_that_admits_it(
    make_runtime,
):
    rt = await make_runtime(cwmp_device_credentials=True)
    cpe = ServiceCpe(rt)
    device = device_id(cpe.fake)
    answered = await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    spv = _credential_spv(answered)
    values = {p.name: p.value for p in spv.parameter_list}
    username, password = values[MS + "Username"], values[MS + "Password"]
    assert username.startswith("cpe-") and len(password) == 24
    assert spv.parameter_key == "acs-credentials"
    life = await _lifecycle(rt, device)
    assert life == {
        "state": "pending",
        "username": username,
        "ha1": {
            "MD5": hashlib.md5(f"{username}:acs:{password}".encode()).hexdigest(),
            "SHA-256": hashlib.sha256(f"{username}:acs:{password}".encode()).hexdigest(),
        },
    }
    assert password not in str(await rows(rt.db, "SELECT * FROM devices"))
    assert password not in str(await rows(rt.db, "SELECT * FROM cwmp_sessions"))
    assert await _view(rt, device) == ("pending", None)
    # pending: the shared pair still admits it (the device may not have applied the new one)
    assert (await ServiceCpe(rt, FakeCpe()).inform()).status == 200

    # its next session: with its own pair (the simulator took it from the SPV)
    await session(cpe)
    assert await _view(rt, device) == ("own", None)
    assert await _lifecycle(rt, device) == {"state": "own"}
    assert await device_columns(rt.db, "cwmp_username") == (username,)
    # the shared pair no longer admits this id; another device's first session still works
    assert (await ServiceCpe(rt, FakeCpe()).inform()).status == 401
    other = ServiceCpe(rt, FakeCpe(datamodels.gateway("SN0002")))
    assert (await other.inform()).status == 200


async def test_a_cpe_that_takes_its_own_pair_at_once_stays_in_its_session(make_runtime):
    """Some CPEs apply new ManagementServer credentials at once and sign the session's next
    request with them: the pair the ACS gave in this session admits it (a 401 there broke
    the session), and a wrong password under that username still does not."""
    rt = await make_runtime(cwmp_device_credentials=True)
    cpe = ServiceCpe(rt)
    device = device_id(cpe.fake)
    assert (await cpe.inform("0 BOOTSTRAP", "1 BOOT")).status == 200
    reply = await cpe.post(b"")
    switched = 0
    for _ in range(20):
        if reply.status != 200:
            break
        request = soap.parse_envelope(reply.body).message
        answer = cpe.fake.answer(reply.body)
        if isinstance(request, m.SetParameterValues) and any(
            p.name == MS + "Password" for p in request.parameter_list
        ):
            username = str(cpe.fake.model.get(MS + "Username"))
            cpe.session_credentials = (username, "not-the-password")
            wrong = await cpe.raw(answer, {"authorization": cpe._auth() or ""})
            assert wrong.status == 401
            cpe.session_credentials = None  # from now on: the model's, the new pair
            switched = cpe.nc
        reply = await cpe.post(answer)
    assert switched and cpe.nc > switched  # requests after the switch were signed anew
    assert reply.status == 204, reply.body
    assert await _view(rt, device) == ("pending", None)
    await session(cpe)
    assert await _view(rt, device) == ("own", None)


async def test_a_device_whose_set_faults_keeps_the_shared_pair(make_runtime):
    rt = await make_runtime(cwmp_device_credentials=True)
    model = datamodels.gateway("SN0001")
    model.set(MS + "Password", "", writable=False)
    cpe = ServiceCpe(rt, FakeCpe(model))
    device = device_id(cpe.fake)
    answered = await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    _credential_spv(answered)
    state, reason = await _view(rt, device)
    assert state == "shared"
    assert reason == (
        "its SetParameterValues of ManagementServer.Username/Password faulted: "
        "9003 Invalid arguments"
    )
    assert await device_columns(rt.db, "cwmp_username") == (None,)
    # the shared pair goes on admitting it, and nothing is asked again
    again = await session(cpe)
    assert not [r for r in again if isinstance(r, m.SetParameterValues)]
    assert await _view(rt, device) == (state, reason)
    [(code,)] = await rows(rt.db, "SELECT code FROM faults WHERE device_id = :d", d=device)
    assert code == 9003


async def test_a_device_that_never_takes_its_pair_falls_back_to_the_shared_one(make_runtime):
    rt = await make_runtime(cwmp_device_credentials=True)
    cpe = ServiceCpe(rt)
    cpe.use_model_credentials = False  # it takes the values, then goes on with the shared pair
    device = device_id(cpe.fake)
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    for n in range(1, dc.SESSIONS_TO_TAKE_IT):
        assert not [r for r in await session(cpe) if isinstance(r, m.SetParameterValues)]
        assert await _view(rt, device) == (
            "pending",
            f"{n} sessions on the shared pair since it was given its own",
        )
    await session(cpe)
    assert await _view(rt, device) == (
        "shared",
        f"still used the shared pair {dc.SESSIONS_TO_TAKE_IT} sessions after it was given its own",
    )
    assert (await ServiceCpe(rt).inform()).status == 200


async def test_an_operator_reset_makes_a_factory_reset_device_new_again(make_runtime):
    rt = await make_runtime(cwmp_device_credentials=True)
    cpe = ServiceCpe(rt)
    device = device_id(cpe.fake)
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    await session(cpe)
    assert (await _view(rt, device))[0] == "own"
    # a factory reset: the device forgets its pair and comes back with the shared one
    factory = ServiceCpe(rt, FakeCpe(datamodels.gateway("SN0001")))
    assert (await factory.inform("0 BOOTSTRAP", "1 BOOT")).status == 401
    await devices.set_cwmp_credentials(rt.db, device, "", None, "acs")
    assert await _view(rt, device) == ("new", None)
    answered = await session(factory, "0 BOOTSTRAP", "1 BOOT")
    _credential_spv(answered)
    assert (await _view(rt, device))[0] == "pending"


@pytest.mark.parametrize(
    ("setting", "had_devices", "expected"),
    [(None, False, True), (None, True, False), (True, True, True), (False, False, False)],
)
async def test_on_for_new_installs_off_where_devices_came_before(
    make_runtime, setting, had_devices, expected
):
    rt = await make_runtime(cwmp_device_credentials=setting)
    if had_devices:  # what migration 0010 writes into a database that had devices
        async with rt.db.write() as conn:
            await conn.execute(
                text("INSERT INTO meta (key, value) VALUES ('cwmp_device_credentials', 'off')")
            )
    assert await dc.enabled(rt.db, rt.settings) is expected


def test_the_lifecycle_table_refuses_moves_it_does_not_have():
    assert dc.move("new", "sent") == "pending"
    assert dc.move("pending", "not_taken") == "shared"
    with pytest.raises(dc.IllegalMove, match="own_pair_used in state new"):
        dc.move("new", "own_pair_used")
    with pytest.raises(dc.IllegalMove):
        dc.move("shared", "sent")


async def test_the_api_shows_the_state_and_an_operator_resets_it(make_runtime):
    import httpx

    from acs.services import operators
    from acs.web.api_app import create_api_app

    rt = await make_runtime(cwmp_device_credentials=True)
    cpe = ServiceCpe(rt)
    device = device_id(cpe.fake)
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    await session(cpe)
    await operators.create_operator(rt.db, "ops", "operator", "ops-password", datetime.now(UTC))
    await operators.create_operator(rt.db, "eve", "viewer", "eve-password", datetime.now(UTC))
    transport = httpx.ASGITransport(app=create_api_app(rt))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
        ops, eve = ("ops", "ops-password"), ("eve", "eve-password")
        listed = (await api.get("/api/v1/devices", auth=eve)).json()["data"]
        assert [(d["id"], d["cwmp_credentials"]) for d in listed] == [(device, "own")]
        shown = (await api.get(f"/api/v1/devices/{device}", auth=eve)).json()
        assert (shown["cwmp_credentials"], shown["cwmp_credentials_reason"]) == ("own", None)
        url = f"/api/v1/devices/{device}/cwmp-credentials/reset"
        assert (await api.post(url, auth=eve)).status_code == 403
        reset = await api.post(url, auth=ops)
        assert reset.status_code == 200
        assert (reset.json()["cwmp_credentials"], reset.json()["own_cwmp_credentials"]) == (
            "new",
            False,
        )
        missing = await api.post("/api/v1/devices/nope/cwmp-credentials/reset", auth=ops)
        assert missing.status_code == 404
    audited, _ = await operators.list_audit(rt.db)
    assert [(e["status"], e["detail"]) for e in audited[:2]] == [
        (404, {"device": "nope", "cwmp_credentials": "reset"}),
        (200, {"device": device, "cwmp_credentials": "reset"}),
    ]
    assert (await ServiceCpe(rt, FakeCpe()).inform()).status == 200  # the shared pair again


async def test_a_factory_reset_the_acs_sent_makes_the_device_new_again(make_runtime):
    rt = await make_runtime(cwmp_device_credentials=True)
    cpe = ServiceCpe(rt)
    device = device_id(cpe.fake)
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    await session(cpe)
    assert (await _view(rt, device))[0] == "own"
    await tasks.queue(
        rt.db,
        device,
        [task_specs.TASK_ADAPTER.validate_python({"name": "FactoryReset"})],
        created_by="test",
        now=datetime.now(UTC),
        default_ttl=3600,
    )
    answered = await session(cpe)
    assert [type(r) for r in answered] == [m.FactoryReset]
    assert await _view(rt, device) == ("new", None)
    assert await device_columns(rt.db, "cwmp_username") == (None,)
    # it comes back with what it left the factory with: the shared pair, and a new pair
    factory = ServiceCpe(rt, FakeCpe(datamodels.gateway("SN0001")))
    _credential_spv(await session(factory, "0 BOOTSTRAP", "1 BOOT"))
    assert (await _view(rt, device))[0] == "pending"
