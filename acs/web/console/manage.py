"""Console pages that manage the ACS itself: files, phones and profiles, operators, tokens
and the audit log."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from acs.provisioning import models as phone_models
from acs.provisioning.errors import ProvisioningError
from acs.services import files, operators
from acs.services.provisioning import PURPOSES, ImportRefused
from acs.web.console.auth import AdminUser, OperatorUser, ViewerUser, now, runtime_of
from acs.web.console.fleet import MAX_PAGE, BadForm
from acs.web.console.views import done, modules_text, page, parse_modules

router = APIRouter(include_in_schema=False)

AUDIT_PAGE: Final = 50


# --- files -------------------------------------------------------------------------------------


@router.get("/files", response_class=HTMLResponse)
async def files_page(
    request: Request,
    _: ViewerUser,
    file_type: str = "",
    page_: Annotated[int, Query(alias="page", ge=1, le=MAX_PAGE)] = 1,
) -> Response:
    runtime = runtime_of(request)
    found, count = await runtime.files.list(
        file_type=file_type or None, limit=50, offset=(page_ - 1) * 50
    )
    users: dict[str, list[str]] = {}
    for a in await runtime.provisioning.list_assignments():
        users.setdefault(a["file_name"], []).append(f"{a['scope']} {a['target']} ({a['purpose']})")
    return page(
        request,
        "files.html",
        files=[f.view() for f in found],
        users=users,
        count=count,
        params={"file_type": file_type},
        page_no=page_,
        pages=max(1, -(-count // 50)),
        kinds=list(files.FILE_KINDS),
        purposes=list(PURPOSES),
    )


@router.post("/files/upload")
async def upload(
    request: Request,
    principal: OperatorUser,
    name: str,
    file_type: str,
    version: str = "",
    oui: str = "",
    product_class: str = "",
) -> dict[str, Any]:
    """The raw request body (streamed to the store as it arrives) under ``name``; the page's
    script sends it with the CSRF header and shows the upload's progress."""
    runtime = runtime_of(request)
    request.state.audit = {"file": name, "file_type": file_type, "version": version or None}
    meta = await runtime.files.store(
        name,
        request.stream(),
        file_type=file_type,
        oui=oui or None,
        product_class=product_class or None,
        version=version or None,
        created_by=principal.name,
        now=now(),
    )
    return json.loads(json.dumps(meta.view(), default=str))  # type: ignore[no-any-return]


@router.post("/files/{name}/delete")
async def delete_file(request: Request, name: str, _: OperatorUser) -> Response:
    request.state.audit = {"file": name}
    await runtime_of(request).files.delete(name)
    return done("/files", f"file {name} deleted")


@router.post("/files/assign")
async def assign_file(request: Request, _: OperatorUser) -> Response:
    form = await request.form()
    scope, target = str(form.get("scope", "")), str(form.get("target", "")).strip()
    purpose, name = str(form.get("purpose", "")), str(form.get("file_name", ""))
    request.state.audit = {"scope": scope, "target": target, "purpose": purpose, "file": name}
    await runtime_of(request).provisioning.assign(scope, target, purpose, name)
    return done("/files", f"{name} assigned to {scope} {target} as {purpose}")


# --- phones and profiles -----------------------------------------------------------------------


@router.get("/provisioning", response_class=HTMLResponse)
async def provisioning_page(
    request: Request,
    _: ViewerUser,
    page_: Annotated[int, Query(alias="page", ge=1, le=MAX_PAGE)] = 1,
) -> Response:
    runtime = runtime_of(request)
    phones, count = await runtime.provisioning.list_phones(limit=50, offset=(page_ - 1) * 50)
    return page(
        request,
        "provisioning.html",
        profiles=await runtime.provisioning.list_profiles(),
        phones=phones,
        count=count,
        params={},
        page_no=page_,
        pages=max(1, -(-count // 50)),
        models=list(phone_models.MODELS),
        report=None,
    )


@router.get("/provisioning/profiles/{kind}/{name}", response_class=HTMLResponse)
async def profile_page(request: Request, kind: str, name: str, _: ViewerUser) -> Response:
    runtime = runtime_of(request)
    try:
        profile = await runtime.provisioning.get_profile(kind, name)
    except LookupError:
        if kind not in ("general", "named"):
            raise
        profile = {
            "kind": kind,
            "name": name,
            "modules": {},
            "config_key": None,
            "common_key": None,
            "mode": None,
            "new": True,
        }
    return page(request, "profile.html", p=profile, text=modules_text(profile["modules"]))


@router.post("/provisioning/profiles")
async def save_profile(request: Request, _: OperatorUser) -> Response:
    form = await request.form()
    kind, name = str(form.get("kind", "")), str(form.get("name", "")).strip()
    request.state.audit = {"profile": name, "kind": kind}
    saved = await runtime_of(request).provisioning.put_profile(
        kind,
        name,
        modules=parse_modules(str(form.get("modules", ""))),
        config_key=str(form.get("config_key") or "") or None,
        common_key=str(form.get("common_key") or "") or None,
        mode=str(form.get("mode") or "") or None,
        now=now(),
    )
    return done(f"/provisioning/profiles/{kind}/{saved['name']}", "profile saved")


@router.get("/provisioning/phones/{mac}", response_class=HTMLResponse)
async def phone_page(request: Request, mac: str, _: ViewerUser) -> Response:
    runtime = runtime_of(request)
    phone = await runtime.provisioning.get_phone(mac)
    return page(
        request,
        "phone.html",
        ph=phone,
        text=modules_text(phone["modules"]),
        variables="\n".join(f"{k} = {v}" for k, v in phone["variables"].items()),
        versions=await runtime.provisioning.rendered_versions(phone["mac"]),
        models=list(phone_models.MODELS),
    )


@router.post("/provisioning/phones")
async def save_phone(request: Request, _: OperatorUser) -> Response:
    form = await request.form()
    mac = str(form.get("mac", "")).strip()
    request.state.audit = {"phone": mac}
    variables = parse_modules("[v]\n" + str(form.get("variables", "")))["v"]
    saved = await runtime_of(request).provisioning.put_phone(
        mac,
        model=str(form.get("model") or "") or None,
        profile=str(form.get("profile") or "").strip() or None,
        input_id=str(form.get("input_id") or "").strip() or None,
        variables=variables,
        modules=parse_modules(str(form.get("modules", ""))),
        mode=str(form.get("mode") or "") or None,
        now=now(),
    )
    return done(f"/provisioning/phones/{saved['mac']}", "phone saved")


@router.get("/provisioning/phones/{mac}/preview", response_class=HTMLResponse)
async def preview(request: Request, mac: str, _: OperatorUser, format: str = "text") -> Response:
    """The file this phone gets now, decrypted for the operator (rendering it records its
    version, as serving it would). Operators only: it shows the phone's secrets."""
    runtime = runtime_of(request)
    if format not in ("text", "xml"):
        raise BadForm("format is text or xml")
    # the CWMP listener's URL for the same host: the file's own URLs point there, not here
    base = runtime.settings.cwmp_base_url(request.url.hostname or "acs")
    wanted = phone_models.MacFile(phone_models.normalize_mac(mac), format)  # type: ignore[arg-type]
    rendered = await runtime.provisioning.render(wanted, base_url=base.rstrip("/"), now=now())
    return page(
        request,
        "preview.html",
        mac=wanted.mac,
        format=format,
        rendered=rendered,
        content=rendered.plain.decode("utf-8", errors="replace"),
    )


@router.post("/provisioning/import", response_class=HTMLResponse)
async def import_phones(request: Request, _: OperatorUser) -> Response:
    runtime = runtime_of(request)
    form = await request.form()
    upload = form.get("csv")
    if upload is None or isinstance(upload, str):
        raise BadForm("choose a CSV file")
    raw = await upload.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProvisioningError("the CSV is not UTF-8 text") from None
    try:
        done = await runtime.provisioning.import_phones(text, now())
        report: dict[str, Any] = {"imported": done.count, "accepted": done.count, "refused": []}
    except ImportRefused as refused:
        report = {"imported": 0, "accepted": refused.accepted, "refused": refused.refused}
    request.state.audit = {"imported": report["imported"], "refused": len(report["refused"])}
    phones, count = await runtime.provisioning.list_phones(limit=50)
    return page(
        request,
        "provisioning.html",
        status_code=200 if not report["refused"] else 422,
        profiles=await runtime.provisioning.list_profiles(),
        phones=phones,
        count=count,
        params={},
        page_no=1,
        pages=max(1, -(-count // 50)),
        models=list(phone_models.MODELS),
        report=report,
    )


# --- admin -------------------------------------------------------------------------------------


@router.get("/admin", response_class=HTMLResponse)
async def admin_page(
    request: Request,
    principal: AdminUser,
    operator: str = "",
    method: str = "",
    path: str = "",
    status: str = "",
    since: str = "",
    page_: Annotated[int, Query(alias="page", ge=1, le=MAX_PAGE)] = 1,
) -> Response:
    runtime = runtime_of(request)
    if status and not status.isdigit():
        raise BadForm("status is an HTTP status code, e.g. 403")
    try:
        since_at = datetime.fromisoformat(since) if since else None
        if since_at is not None and since_at.tzinfo is None:
            since_at = since_at.replace(tzinfo=UTC)  # the page's times are UTC
    except ValueError:
        raise BadForm("since is a date and time, e.g. 2026-12-01T08:00") from None
    entries, count = await operators.list_audit(
        runtime.db,
        operator=operator or None,
        method=method or None,
        path=path or None,
        status=int(status) if status else None,
        since=since_at,
        limit=AUDIT_PAGE,
        offset=(page_ - 1) * AUDIT_PAGE,
    )
    params = {
        "operator": operator,
        "method": method,
        "path": path,
        "status": status,
        "since": since,
    }
    return page(
        request,
        "admin.html",
        operators=await operators.list_operators(runtime.db),
        tokens=await operators.list_tokens(runtime.db),
        audit=entries,
        count=count,
        params=params,
        page_no=page_,
        pages=max(1, -(-count // AUDIT_PAGE)),
        roles=operators.ROLES,
        new_token=None,
    )


@router.post("/admin/operators")
async def add_operator(request: Request, _: AdminUser) -> Response:
    form = await request.form()
    name, role = str(form.get("name", "")).strip(), str(form.get("role", ""))
    request.state.audit = {"operator": name, "role": role}
    await operators.create_operator(
        runtime_of(request).db, name, role, str(form.get("password") or "") or None, now()
    )
    return done("/admin", f"operator {name} added")


@router.post("/admin/operators/{name}")
async def update_operator(request: Request, name: str, _: AdminUser) -> Response:
    form = await request.form()
    role = str(form.get("role") or "") or None
    password = str(form.get("password") or "") or None
    disabled = {"yes": True, "no": False}.get(str(form.get("disabled", "")))
    request.state.audit = {
        "operator": name,
        "role": role,
        "password_reset": password is not None,
        "disabled": disabled,
    }
    await operators.update_operator(
        runtime_of(request).db, name, role=role, password=password, disabled=disabled
    )
    return done("/admin", f"operator {name} updated")


@router.post("/admin/tokens", response_class=HTMLResponse)
async def create_token(request: Request, principal: AdminUser) -> Response:
    runtime = runtime_of(request)
    form = await request.form()
    owner = str(form.get("operator") or principal.name)
    ttl_days = str(form.get("ttl_days") or "")
    if ttl_days and not ttl_days.isdigit():
        raise BadForm("days is a whole number")
    request.state.audit = {"token_for": owner, "name": str(form.get("name", ""))}
    token, record = await operators.create_token(
        runtime.db,
        owner,
        str(form.get("name", "")).strip(),
        now(),
        ttl=int(ttl_days) * 86400 if ttl_days else None,
    )
    entries, count = await operators.list_audit(runtime.db, limit=AUDIT_PAGE)
    return page(
        request,
        "admin.html",
        operators=await operators.list_operators(runtime.db),
        tokens=await operators.list_tokens(runtime.db),
        audit=entries,
        count=count,
        params={},
        page_no=1,
        pages=max(1, -(-count // AUDIT_PAGE)),
        roles=operators.ROLES,
        new_token={"token": token, **record},
    )


@router.post("/admin/tokens/{token_id}/revoke")
async def revoke_token(request: Request, token_id: int, _: AdminUser) -> Response:
    request.state.audit = {"token": token_id}
    await operators.revoke_token(runtime_of(request).db, token_id)
    return done("/admin", f"token {token_id} revoked")
