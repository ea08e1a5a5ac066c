"""The exception handlers of create_api_app: a service's refusal becomes its status and
``{"detail": message}``; the statuses that differ by route for one condition stay apart."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from datetime import UTC, datetime
from types import SimpleNamespace

import httpx
import pytest

import acs.services
from acs.provisioning.errors import MissingVariablesError, ProvisioningError
from acs.services import (
    ctc,
    device_credentials,
    devices,
    errors,
    files,
    operators,
    provisioning,
    provisioning_files,
    rollouts,
    runtime,
    server_secrets,
    tasks,
    voip,
)
from acs.web.api_app import create_api_app
from tests.services.harness import ServiceCpe

NOW = datetime(2020, 1, 1, tzinfo=UTC)
DEVICE = "00D09E-IGD-SN0001"
BASES = (errors.NotFound, errors.Conflict, errors.Invalid)


async def _raised(exc: Exception) -> httpx.Response:
    """What the API answers when a route's service raises ``exc``."""

    async def refuse() -> None:
        raise exc

    # only what create_api_app reads outside the state-changing audit; GET audits nothing
    stub = SimpleNamespace(settings=SimpleNamespace(metrics_public=True))
    app = create_api_app(stub)
    app.add_api_route("/api/v1/refuse", refuse, methods=["GET"])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        return await client.get("/api/v1/refuse")


@pytest.mark.parametrize(
    ("exc", "status", "detail"),
    [
        (errors.NotFound("no thing 7"), 404, "no thing 7"),
        (errors.Conflict("thing 7 is busy"), 409, "thing 7 is busy"),
        (errors.Invalid("things are 1-8 letters"), 422, "things are 1-8 letters"),
        (devices.DeviceNotFound("X"), 404, "no device 'X'"),
        (devices.BadFilter("mode must be common, ctc or null"), 422, None),
        (files.FileNotFound("x6.bin"), 404, "no file 'x6.bin'"),
        (files.FileError("file_type must be one of []"), 422, None),
        (files.FileTooLarge("file exceeds 1024 bytes"), 413, None),
        (tasks.TaskNotFound(7), 404, "no task 7"),
        (tasks.TaskStateError("task 7 is already done"), 409, None),
        (tasks.TaskValidationError("file: no stored file 'x'"), 422, None),
        (rollouts.RolloutNotFound(3), 404, "no rollout 3"),
        (rollouts.RolloutValidationError("wave_size must be at least 1"), 422, None),
        (rollouts.RolloutStateError("rollout 3 is done"), 409, None),
        (operators.OperatorNotFound("eve"), 404, "no operator 'eve'"),
        (operators.TokenNotFound(5), 404, "no token 5 of yours"),
        (operators.OperatorError("passwords have at least 8 characters"), 422, None),
        (operators.LastAdmin("that would leave no enabled admin"), 409, None),
        (voip.NoVoiceLines("line 3: the device has 2 line(s)"), 409, None),
        (provisioning.NotFound("no phone 001565113af8"), 404, None),
        (ProvisioningError("unknown phone model 'X9'"), 422, None),
        (MissingVariablesError(("sip_user",)), 422, "missing variables: sip_user"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None,
)
async def test_a_refusal_is_answered_with_its_status_and_message(exc, status, detail):
    r = await _raised(exc)
    assert (r.status_code, r.json()) == (status, {"detail": detail or str(exc)})


async def test_other_exceptions_are_not_refusals():
    # NotFound is a LookupError, Invalid a ValueError: not the other way round
    for exc in (KeyError("x"), ValueError("x"), RuntimeError("x")):
        r = await _raised(exc)
        assert (r.status_code, r.text) == (500, "Internal Server Error")


def test_every_service_exception_is_one_kind_of_refusal():
    """A new service exception that is none of the three would reach a route as a 500."""
    not_refusals = {
        runtime.SchemaOutdated,  # start-up refuses to serve; no route sees it
        server_secrets.SecretKeyUnavailable,  # start-up too
        server_secrets.SharedPasswordUnusable,  # start-up too
        device_credentials.IllegalMove,  # our bug in the lifecycle table, never a refusal
        rollouts.RolloutError,  # the family of RolloutValidationError and RolloutStateError
        # a storage failure (a StorageError: 503 with Retry-After), not a refusal
        provisioning_files.ContentUnavailable,
        provisioning_files.Redirected,  # an answer of the file server (HTTP 302), no refusal
    }
    found = []
    for info in pkgutil.iter_modules(acs.services.__path__):
        module = importlib.import_module(f"acs.services.{info.name}")
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, Exception)
                and cls.__module__ == module.__name__
                and not name.startswith("_")
                and cls not in (*BASES, *not_refusals)
            ):
                found.append(cls)
                kinds = [base for base in BASES if issubclass(cls, base)]
                assert len(kinds) == 1, f"{cls.__qualname__} is {kinds}"
    assert set(found) >= {
        devices.DeviceNotFound,
        devices.BadFilter,
        voip.NoVoiceLines,
        provisioning.NotFound,
        files.FileError,
        files.FileTooLarge,
        files.FileNotFound,
        tasks.TaskNotFound,
        tasks.TaskStateError,
        tasks.TaskValidationError,
        rollouts.RolloutNotFound,
        rollouts.RolloutValidationError,
        rollouts.RolloutStateError,
        operators.OperatorError,
        operators.OperatorNotFound,
        operators.TokenNotFound,
        operators.LastAdmin,
        ctc.WorkOrderError,
        ctc.WorkOrderNotFound,
        provisioning_files.BadName,
        provisioning_files.NoSuchFile,
        provisioning_files.NotYours,
    }


# --- through the routes: one condition, the status each route has always answered --------


@pytest.fixture
async def api(runtime):
    await operators.create_operator(runtime.db, "root", "admin", "root-password", NOW)
    transport = httpx.ASGITransport(app=create_api_app(runtime))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api/api/v1", auth=("root", "root-password")
    ) as client:
        yield client


def answer(r: httpx.Response) -> tuple[int, object]:
    return r.status_code, r.json()


async def test_the_messages_routes_used_to_build(api):
    assert answer(await api.get("/devices/nope")) == (404, {"detail": "no device 'nope'"})
    assert answer(await api.get("/tasks/999")) == (404, {"detail": "no task 999"})
    assert answer(await api.post("/tasks/999/retry")) == (404, {"detail": "no task 999"})
    assert answer(await api.get("/rollouts/999")) == (404, {"detail": "no rollout 999"})
    assert answer(await api.post("/rollouts/999/stop")) == (404, {"detail": "no rollout 999"})
    assert answer(await api.delete("/work-orders/999")) == (404, {"detail": "no work order 999"})
    assert answer(await api.get("/files/x.bin/content")) == (404, {"detail": "no file 'x.bin'"})
    assert answer(await api.delete("/files/x.bin")) == (404, {"detail": "no file 'x.bin'"})
    r = await api.patch("/operators/eve", json={"role": "viewer"})
    assert answer(r) == (404, {"detail": "no operator 'eve'"})
    assert answer(await api.post("/tokens", json={"operator": "eve"})) == (
        404,
        {"detail": "no operator 'eve'"},
    )
    # an admin may revoke anyone's token: "of yours" is said only to the others
    assert answer(await api.delete("/tokens/999")) == (404, {"detail": "no token 999"})
    assignment = {"scope": "model", "target": "X6", "purpose": "image", "file_name": "x.bin"}
    assert answer(await api.put("/assignments", json=assignment)) == (
        404,
        {"detail": "no file 'x.bin'"},
    )


async def test_the_last_admin_is_kept_422_on_update_409_on_delete(api):
    last = {"detail": "that would leave no enabled admin"}
    assert answer(await api.patch("/operators/root", json={"disabled": True})) == (422, last)
    assert answer(await api.delete("/operators/root")) == (409, last)


async def test_a_rollout_is_refused_422_on_create_409_on_stop(api):
    rollout = {"name": "r", "filter": {}, "task": {"name": "Reboot"}, "wave_size": 1}
    r = await api.post("/rollouts", json={**rollout, "filter": {"parameters": [["a", "b", "c"]]}})
    assert answer(r) == (422, {"detail": "too many values to unpack (expected 2)"})
    r = await api.post("/rollouts", json={**rollout, "filter": {"status": "bogus"}})
    statuses = "['never_seen', 'online', 'late', 'offline', 'unknown', 'silent']"
    assert answer(r) == (422, {"detail": f"status must be one of {statuses}"})
    r = await api.post("/rollouts", json=rollout)
    assert (r.status_code, r.json()["status"]) == (201, "done")  # no device matched
    rollout_id = r.json()["id"]
    r = await api.post(f"/rollouts/{rollout_id}/stop")
    assert answer(r) == (409, {"detail": f"rollout {rollout_id} is done"})


async def test_a_name_no_model_or_phone_has_is_404_to_look_up_and_422_to_write(api):
    no_mac = {"detail": "not a MAC address: 'notamac'"}
    assert answer(await api.get("/phones/notamac")) == (404, no_mac)
    assert answer(await api.delete("/phones/notamac")) == (404, no_mac)
    assert answer(await api.put("/phones/notamac", json={})) == (422, no_mac)
    assert answer(await api.get("/phones/notamac/config")) == (422, no_mac)
    no_model = {"detail": "unknown phone model 'X9'"}
    assert answer(await api.get("/profiles/general/X9")) == (404, no_model)
    assert answer(await api.put("/profiles/general/X9", json={})) == (422, no_model)
    assert answer(await api.get("/profiles/general/X6")) == (
        404,
        {"detail": "no general profile 'X6'"},
    )


async def test_device_tasks_refused_as_conflicts_or_invalid(api, runtime):
    cpe = ServiceCpe(runtime)
    assert (await cpe.inform("0 BOOTSTRAP")).status == 200
    r = await api.post(f"/devices/{DEVICE}/sip-accounts", json=[{"auth_user_name": "1001"}])
    assert answer(r) == (
        409,
        {
            "detail": "the device's SIP lines are not known yet: queue GetParameterValues of "
            "its VoiceService (e.g. Device.Services.VoiceService.) first"
        },
    )
    task = {"name": "Download", "file": "x.bin"}
    r = await api.post(f"/devices/{DEVICE}/tasks", json=task)
    assert answer(r) == (422, {"detail": "file: no stored file 'x.bin'"})
    r = await api.post(f"/devices/{DEVICE}/tasks", json={"name": "Reboot"})
    task_id = r.json()["data"][0]["id"]
    assert (await api.delete(f"/tasks/{task_id}")).status_code == 200
    assert answer(await api.delete(f"/tasks/{task_id}")) == (
        409,
        {"detail": f"task {task_id} is already cancelled"},
    )
