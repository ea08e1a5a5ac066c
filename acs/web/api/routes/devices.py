"""/api/v1/devices: search, view, forget, tag, queue tasks, poke."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request, Response

from acs.services import devices, task_specs, tasks, voip
from acs.services.task_specs import TaskSpec
from acs.web.api.deps import Offset, OperatorRole, RuntimeDep, Viewer, audit, now
from acs.web.api.schemas import (
    ConnectionRequestPublic,
    DeviceDetail,
    DeviceRegister,
    DevicesPublic,
    DeviceUpdate,
    TagsPublic,
    TasksPublic,
    TasksSubmitted,
)

router = APIRouter(prefix="/devices", tags=["devices"])


@router.get("", response_model=DevicesPublic)
async def list_devices(
    runtime: RuntimeDep,
    _: Viewer,
    id: Annotated[list[str], Query(description="device ids")] = [],  # noqa: B006
    serial_number: str | None = None,
    oui: str | None = None,
    product_class: str | None = None,
    software_version: str | None = None,
    mac: str | None = None,
    ip: str | None = None,
    tag: str | None = None,
    status_: Annotated[
        str | None,
        Query(
            alias="status",
            description="never_seen, online, late, offline, unknown (silent: late or offline, "
            "the name of an older release)",
        ),
    ] = None,
    last_inform_after: datetime | None = None,
    last_inform_before: datetime | None = None,
    parameter: Annotated[
        list[str],
        Query(
            description="PATH=VALUE, e.g. Device.DeviceInfo.ModelName=X6 (DeviceInfo.ModelName=X6: "
            "under either root); repeatable"
        ),
    ] = [],  # noqa: B006
    sort: Annotated[str, Query(description="column, '-' prefix for descending")] = "id",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Devices matching every filter given."""
    conditions = []
    for item in parameter:
        path, sep, value = item.partition("=")
        if not sep or not path:
            raise HTTPException(422, f"parameter filter {item!r}: expected PATH=VALUE")
        conditions.append((path, value))
    f = devices.DeviceFilter(
        ids=id,
        serial_number=serial_number,
        oui=oui,
        product_class=product_class,
        software_version=software_version,
        mac=mac,
        ip=ip,
        tag=tag,
        status=status_,
        last_inform_after=last_inform_after,
        last_inform_before=last_inform_before,
        parameters=conditions,
    )
    data, count = await devices.search(
        runtime.db, f, now=now(), sort=sort, limit=limit, offset=offset
    )
    return {"data": data, "count": count}


@router.post("", response_model=DeviceDetail, status_code=201)
async def register_device(
    body: DeviceRegister, request: Request, runtime: RuntimeDep, _: OperatorRole
) -> dict[str, Any]:
    """Expect a device: it is ``never_seen`` until its first Inform; its tags and mode apply
    from its first session."""
    audit(request, oui=body.oui, product_class=body.product_class, serial=body.serial_number)
    return await devices.register(
        runtime.db,
        oui=body.oui,
        product_class=body.product_class,
        serial_number=body.serial_number,
        tags=body.tags,
        mode=body.mode,
        now=now(),
    )


@router.get("/{device_id}", response_model=DeviceDetail)
async def get_device(
    device_id: str,
    runtime: RuntimeDep,
    _: Viewer,
    path: Annotated[str | None, Query(description="only the subtree under this path")] = None,
) -> dict[str, Any]:
    view = await devices.get_device(runtime.db, device_id, now=now(), path=path)
    view["nat"] = await runtime.connection_requests.nat_view(device_id, now())
    return view


@router.delete("/{device_id}", status_code=204)
async def delete_device(
    device_id: str, request: Request, runtime: RuntimeDep, _: OperatorRole
) -> Response:
    """Forget a device: its tasks, faults and history go too. It re-registers on its next
    Inform (as a new device, provisioned again)."""
    audit(request, device=device_id)
    await devices.delete_device(runtime.db, device_id)
    return Response(status_code=204)


@router.put("/{device_id}/tags/{tag}", response_model=TagsPublic)
async def add_tag(
    device_id: str, tag: str, request: Request, runtime: RuntimeDep, _: OperatorRole
) -> dict[str, Any]:
    audit(request, device=device_id, tag=tag)
    return {"tags": await devices.set_tag(runtime.db, device_id, tag, True)}


@router.delete("/{device_id}/tags/{tag}", response_model=TagsPublic)
async def remove_tag(
    device_id: str, tag: str, request: Request, runtime: RuntimeDep, _: OperatorRole
) -> dict[str, Any]:
    audit(request, device=device_id, tag=tag)
    return {"tags": await devices.set_tag(runtime.db, device_id, tag, False)}


@router.patch("/{device_id}", response_model=DeviceDetail)
async def update_device(
    device_id: str, body: DeviceUpdate, request: Request, runtime: RuntimeDep, _: OperatorRole
) -> dict[str, Any]:
    """Set the device's ACS mode (common or ctc; null follows the server default)."""
    audit(request, device=device_id, mode=body.mode)
    await devices.set_mode(runtime.db, device_id, body.mode)
    return await devices.get_device(runtime.db, device_id, now=now())


@router.post("/{device_id}/cwmp-credentials/reset", response_model=DeviceDetail)
async def reset_cwmp_credentials(
    device_id: str, request: Request, runtime: RuntimeDep, _: OperatorRole
) -> dict[str, Any]:
    """Forget the device's own CWMP credentials: it is ``new`` again, the shared pair admits
    it and (in common mode) it gets a new pair of its own in its next session. For a device
    that lost its pair (a factory reset) and is refused since."""
    audit(request, device=device_id, cwmp_credentials="reset")
    await devices.set_cwmp_credentials(runtime.db, device_id, "", None, runtime.settings.cwmp_realm)
    return await devices.get_device(runtime.db, device_id, now=now())


@router.post("/{device_id}/sip-accounts", response_model=TasksSubmitted, status_code=202)
async def sip_accounts(
    device_id: str,
    request: Request,
    runtime: RuntimeDep,
    principal: OperatorRole,
    accounts: Annotated[list[voip.SipAccount], Body(min_length=1)],
) -> dict[str, Any]:
    """Common mode: queue a SetParameterValues of SIP accounts on the device's TR-104 lines
    (the paths its parameter tree shows; fetch its VoiceService first)."""
    audit(request, device=device_id, lines=[a.line for a in accounts])
    params = await devices.parameters_of(runtime.db, device_id)
    values = voip.parameter_values(params, accounts)
    spec = task_specs.TASK_ADAPTER.validate_python(
        {"name": "SetParameterValues", "parameter_values": values, "parameter_key": "acs-sip"}
    )
    queued = await tasks.queue(
        runtime.db,
        device_id,
        [spec],
        created_by=principal.name,
        now=now(),
        default_ttl=runtime.settings.task_default_ttl,
    )
    runtime.notifier.pulse()
    return {"data": queued, "count": len(queued), "connection_request": None}


@router.get("/{device_id}/tasks", response_model=TasksPublic)
async def device_tasks(
    device_id: str,
    runtime: RuntimeDep,
    _: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    data, count = await tasks.list_tasks(
        runtime.db, device_id=device_id, limit=limit, offset=offset
    )
    return {"data": data, "count": count}


@router.post(
    "/{device_id}/tasks",
    response_model=TasksSubmitted,
    status_code=202,
    responses={200: {"model": TasksSubmitted, "description": "every task finished in time"}},
)
async def submit_tasks(
    device_id: str,
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    principal: OperatorRole,
    body: Annotated[
        TaskSpec | list[TaskSpec], Body(description="one task, or a list run in order")
    ],
    connection_request: Annotated[
        bool, Query(description="poke the device now instead of waiting for its next Inform")
    ] = False,
    wait: Annotated[
        float, Query(ge=0, le=300, description="seconds to hold the reply until tasks finish")
    ] = 0,
) -> dict[str, Any]:
    """Queue tasks. 200 with the finished tasks when they all finished within ``wait``;
    otherwise 202 with the tasks as they are."""
    specs = body if isinstance(body, list) else [body]
    if not specs:
        raise HTTPException(422, "no tasks given")
    audit(
        request,
        device=device_id,
        tasks=[s.name for s in specs],
        connection_request=connection_request,
    )
    queued = await tasks.queue(
        runtime.db,
        device_id,
        specs,
        created_by=principal.name,
        now=now(),
        default_ttl=runtime.settings.task_default_ttl,
    )
    runtime.notifier.pulse()
    poke = None
    if connection_request:
        poke = (await runtime.connection_requests.poke(device_id)).as_dict()
    current = queued
    if wait > 0 and (poke is None or poke["ok"]):
        finished, current = await tasks.wait_finished(
            runtime.db, [t["id"] for t in queued], wait, runtime.notifier
        )
        if finished:
            response.status_code = 200
    return {"data": current, "count": len(current), "connection_request": poke}


@router.post("/{device_id}/connection-request", response_model=ConnectionRequestPublic)
async def poke_device(
    device_id: str, request: Request, runtime: RuntimeDep, _: OperatorRole
) -> dict[str, Any]:
    """Send a connection request now (its outcome is also kept on the device)."""
    audit(request, device=device_id)
    return (await runtime.connection_requests.poke(device_id)).as_dict()
