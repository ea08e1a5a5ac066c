"""/api/v1/profiles, /phones, /assignments, /work-orders: phone and CTC provisioning."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field, ValidationError

from acs.provisioning import models as phone_models
from acs.services import ctc, provisioning
from acs.web.api.deps import Offset, OperatorRole, RuntimeDep, Viewer, audit, now
from acs.web.api.schemas import (
    PhonePublic,
    PhonesPublic,
    ProfilePublic,
    WorkOrderCreate,
    WorkOrderPublic,
    WorkOrdersPublic,
)

router = APIRouter(tags=["provisioning"])


class ProfileBody(BaseModel):
    modules: dict[str, dict[str, str | int | bool]] = Field(
        default_factory=dict,
        description='{"GLOBAL CONFIG MODULE": {"Time Zone": "32"}, "SIP CONFIG MODULE": '
        '{"SIP1 Register User": "{{sip_user}}"}}',
    )
    config_key: str | None = Field(None, description="64 hex digits: encrypts the general file")
    common_key: str | None = Field(None, description="64 hex digits: encrypts the other files")
    mode: Literal["common", "ctc"] | None = None


class PhoneBody(BaseModel):
    model: str | None = Field(None, description="a model of the provisioning document, e.g. X6")
    profile: str | None = Field(None, description="a user-named profile")
    input_id: str | None = Field(None, description="the $input id the phone's user types")
    variables: dict[str, str | int | bool] = Field(default_factory=dict)
    modules: dict[str, dict[str, str | int | bool]] = Field(default_factory=dict)
    mode: Literal["common", "ctc"] | None = None


class Assignment(BaseModel):
    scope: Literal["model", "phone"]
    target: str = Field(description="a model name, or a phone's MAC")
    purpose: str = Field(description=", ".join(provisioning.PURPOSES))
    file_name: str


@router.get("/profiles", response_model=list[ProfilePublic])
async def list_profiles(runtime: RuntimeDep, _: Viewer) -> list[dict[str, Any]]:
    return await runtime.provisioning.list_profiles()


@router.put("/profiles/{kind}/{name}", response_model=ProfilePublic)
async def put_profile(
    kind: Literal["general", "named"],
    name: str,
    body: ProfileBody,
    request: Request,
    runtime: RuntimeDep,
    _: OperatorRole,
) -> dict[str, Any]:
    """A model's general profile (``general/X6``) or a user-named one (``named/sales``)."""
    audit(request, profile=f"{kind}/{name}")
    return await runtime.provisioning.put_profile(
        kind,
        name,
        modules=body.modules,
        config_key=body.config_key,
        common_key=body.common_key,
        mode=body.mode,
        now=now(),
    )


@router.get("/profiles/{kind}/{name}", response_model=ProfilePublic)
async def get_profile(kind: str, name: str, runtime: RuntimeDep, _: Viewer) -> dict[str, Any]:
    return await runtime.provisioning.get_profile(kind, name)


@router.delete("/profiles/{kind}/{name}", status_code=204)
async def delete_profile(
    kind: str, name: str, request: Request, runtime: RuntimeDep, _: OperatorRole
) -> Response:
    audit(request, profile=f"{kind}/{name}")
    await runtime.provisioning.delete_profile(kind, name)
    return Response(status_code=204)


@router.get("/phones", response_model=PhonesPublic)
async def list_phones(
    runtime: RuntimeDep,
    _: Viewer,
    model: str | None = None,
    profile: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    data, count = await runtime.provisioning.list_phones(
        model=model, profile=profile, limit=limit, offset=offset
    )
    return {"data": data, "count": count}


@router.put("/phones/{mac}", response_model=PhonePublic)
async def put_phone(
    mac: str, body: PhoneBody, request: Request, runtime: RuntimeDep, _: OperatorRole
) -> dict[str, Any]:
    audit(request, phone=mac)
    return await runtime.provisioning.put_phone(
        mac,
        model=body.model,
        profile=body.profile,
        input_id=body.input_id,
        variables=body.variables,
        modules=body.modules,
        mode=body.mode,
        now=now(),
    )


@router.get("/phones/{mac}", response_model=PhonePublic)
async def get_phone(mac: str, runtime: RuntimeDep, _: Viewer) -> dict[str, Any]:
    return await runtime.provisioning.get_phone(mac)


@router.delete("/phones/{mac}", status_code=204)
async def delete_phone(
    mac: str, request: Request, runtime: RuntimeDep, _: OperatorRole
) -> Response:
    audit(request, phone=mac)
    await runtime.provisioning.delete_phone(mac)
    return Response(status_code=204)


class PhoneCredentials(BaseModel):
    username: str = Field(description="1-128 printable characters, no ':'")
    password: str = Field(description="kept only as Digest HA1s")


@router.put("/phones/{mac}/credentials", response_model=PhonePublic)
async def put_phone_credentials(
    mac: str, body: PhoneCredentials, request: Request, runtime: RuntimeDep, _: OperatorRole
) -> dict[str, Any]:
    """The phone's own provisioning credentials: its MAC file goes to them (Basic or Digest,
    HTTP, HTTPS and FTP), not to the shared pair unless ACS_PROVISIONING_SHARED_READS_ALL."""
    audit(request, phone=mac, prov_username=body.username)
    return await runtime.provisioning.set_credentials(mac, body.username, body.password)


@router.delete("/phones/{mac}/credentials", status_code=204)
async def delete_phone_credentials(
    mac: str, request: Request, runtime: RuntimeDep, _: OperatorRole
) -> Response:
    audit(request, phone=mac)
    await runtime.provisioning.clear_credentials(mac)
    return Response(status_code=204)


@router.post("/phones/import", response_model=dict[str, int])
async def import_phones(
    request: Request,
    runtime: RuntimeDep,
    _: OperatorRole,
    body: Annotated[
        str,
        Body(
            media_type="text/csv",
            description="mac,model,profile,input_id,prov_username,prov_password,<variable>,...",
        ),
    ],
) -> dict[str, int]:
    """Bulk variables (MAC -> SIP account, display name...) from CSV; all rows or none."""
    report = await runtime.provisioning.import_phones(body, now())
    audit(request, imported=report.count)
    return {"imported": report.count}


@router.get("/phones/{mac}/config")
async def preview_config(
    mac: str,
    request: Request,
    runtime: RuntimeDep,
    _: OperatorRole,
    format: Literal["text", "xml"] = "text",
) -> Response:
    """The phone's configuration file as it would be served now (encrypted if keyed)."""
    # the CWMP listener's URL for the same host: the file's own URLs point there, not here
    base = runtime.settings.cwmp_base_url(request.url.hostname or "acs")
    wanted = phone_models.MacFile(phone_models.normalize_mac(mac), format)
    rendered = await runtime.provisioning.render(wanted, base_url=base.rstrip("/"), now=now())
    return Response(
        rendered.content,
        media_type=rendered.content_type,
        headers={"x-config-version": rendered.version},
    )


@router.get("/assignments", response_model=list[Assignment])
async def list_assignments(runtime: RuntimeDep, _: Viewer) -> list[dict[str, Any]]:
    return await runtime.provisioning.list_assignments()


@router.put("/assignments", response_model=Assignment)
async def assign(
    body: Assignment, request: Request, runtime: RuntimeDep, _: OperatorRole
) -> Assignment:
    """Point a model's or a phone's auto-update URL (image, pbook, etc...) at a stored file."""
    audit(request, **body.model_dump())
    await runtime.provisioning.assign(body.scope, body.target, body.purpose, body.file_name)
    return body


@router.delete("/assignments/{scope}/{target}/{purpose}", status_code=204)
async def unassign(
    scope: str, target: str, purpose: str, request: Request, runtime: RuntimeDep, _: OperatorRole
) -> Response:
    audit(request, scope=scope, target=target, purpose=purpose)
    await runtime.provisioning.unassign(scope, target, purpose)
    return Response(status_code=204)


@router.post("/work-orders", response_model=WorkOrderPublic, status_code=201)
async def create_work_order(
    body: WorkOrderCreate, request: Request, runtime: RuntimeDep, principal: OperatorRole
) -> dict[str, Any]:
    """CTC: what to apply to the device that binds with this LOID."""
    audit(request, loid=body.loid, tasks=[t.get("name") for t in body.tasks])
    try:
        return await ctc.create_order(
            runtime.db,
            loid=body.loid,
            password=body.password,
            task_list=body.tasks,
            profile=body.profile,
            created_by=principal.name,
            now=now(),
        )
    except ValidationError as exc:  # only the route knows where in the body the tasks were
        raise HTTPException(
            422, [{**e, "loc": ["body", "tasks", *e["loc"]]} for e in exc.errors(include_url=False)]
        ) from None


@router.get("/work-orders", response_model=WorkOrdersPublic)
async def list_work_orders(
    runtime: RuntimeDep,
    _: Viewer,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    data, count = await ctc.list_orders(runtime.db, status=status, limit=limit, offset=offset)
    return {"data": data, "count": count}


@router.delete("/work-orders/{order_id}", status_code=204)
async def delete_work_order(
    order_id: int, request: Request, runtime: RuntimeDep, _: OperatorRole
) -> Response:
    audit(request, work_order=order_id)
    await ctc.delete_order(runtime.db, order_id)
    return Response(status_code=204)
