"""Console pages of the fleet: sign-in, overview, devices (search, export, bulk actions),
the device page, tasks, faults, rollouts, and the live event stream of the pages."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from pydantic import ValidationError

from acs.provisioning import models as phone_models
from acs.provisioning.errors import ProvisioningError
from acs.services import (
    console_sessions,
    ctc,
    devices,
    events,
    fault_log,
    operators,
    overview,
    rollouts,
    task_specs,
    tasks,
)
from acs.services.errors import Invalid, NotFound
from acs.services.runtime import Runtime
from acs.web.api.routes.events import _stream
from acs.web.console import auth
from acs.web.console.auth import COOKIE, OperatorUser, ViewerUser, now, runtime_of
from acs.web.console.views import PAGE_SIZES, done, informs_chart, page

router = APIRouter(include_in_schema=False)

FILTER_FIELDS: Final = (
    "serial_number",
    "oui",
    "product_class",
    "software_version",
    "mac",
    "ip",
    "tag",
    "status",
)
COLUMNS: Final = (
    ("id", "Device"),
    ("product_class", "Model"),
    ("software_version", "Software"),
    ("ip", "IP"),
    ("mac", "MAC"),
    ("last_inform", "Last Inform"),
)
MAX_PAGE: Final = 10_000  # pages past this are reached by narrowing the search
EXPORT_BATCH: Final = 1000
COUNT_CAP: Final = 10_000  # the device list counts this far unless asked for all
TREE_LIMIT: Final = 500  # parameters shown at one level or as search results


class BadForm(Invalid):
    """A console form the server refuses (the message says which field)."""


def _invalid(exc: ValidationError) -> Invalid:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "task"
    return BadForm(f"{where}: {first['msg']}")


# --- sign-in -----------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> Response:
    return page(request, "login.html", next=auth.safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    runtime = runtime_of(request)
    form = await request.form()
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    target = auth.safe_next(str(form.get("next", "/")))
    source = request.client.host if request.client else ""
    sign_ins = request.app.state.sign_ins
    wait = sign_ins.retry_after(source)
    if wait:
        request.state.audit = {"sign_in": "throttled", "via": "console"}
        return page(
            request,
            "login.html",
            status_code=429,
            next=target,
            error=f"Too many failed sign-ins from this address; try again in {wait} s.",
        )
    principal = await operators.authenticate_password(runtime.db, name, password)
    if principal is None:
        sign_ins.failed(source)
        request.state.audit = {"sign_in": "refused", "via": "console", "name": name[:128]}
        return page(
            request,
            "login.html",
            status_code=401,
            next=target,
            name=name[:128],
            error="Wrong name or password, or the operator is disabled.",
        )
    sign_ins.succeeded(source)
    request.state.principal = principal
    request.state.audit = {"sign_in": "ok", "via": "console"}
    token = await console_sessions.open_session(
        runtime.db, principal.name, now(), auth.lifetime(runtime)
    )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=runtime.settings.console_session_max,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
async def logout(request: Request, _: ViewerUser) -> Response:
    token = request.cookies.get(COOKIE)
    if token:
        await console_sessions.close(runtime_of(request).db, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# --- overview ----------------------------------------------------------------------------------


@dataclass
class _Cached:
    value: overview.Overview | None = None
    at: float = 0.0
    refreshing: asyncio.Task[None] | None = None


OVERVIEW_FRESH: Final = 5.0  # seconds a computed overview is shown before it is computed again


async def _overview(request: Request) -> overview.Overview:
    """The overview, computed at most every few seconds per worker; a stale one is shown
    while a fresh one is computed in the background (a view never waits for the group-bys
    after the first)."""
    runtime = runtime_of(request)
    cached: _Cached = request.app.state.console_overview
    age = time.monotonic() - cached.at
    if cached.value is None:
        cached.value, cached.at = await overview.overview(runtime.db, now()), time.monotonic()
    elif age > OVERVIEW_FRESH and (cached.refreshing is None or cached.refreshing.done()):

        async def refresh() -> None:
            cached.value, cached.at = await overview.overview(runtime.db, now()), time.monotonic()

        cached.refreshing = asyncio.get_running_loop().create_task(refresh())
    return cached.value


@router.get("/", response_class=HTMLResponse)
async def overview_page(request: Request, _: ViewerUser) -> Response:
    view = await _overview(request)
    return page(request, "overview.html", o=view, chart=informs_chart(view.informs))


@router.get("/overview/figures", response_class=HTMLResponse)
async def overview_figures(request: Request, _: ViewerUser) -> Response:
    view = await _overview(request)
    return page(request, "overview_figures.html", o=view, chart=informs_chart(view.informs))


# --- devices -----------------------------------------------------------------------------------


def _criteria(params: Mapping[str, Any], ids: list[str], parameter: list[str]) -> dict[str, Any]:
    """The search as the page's form and URL give it (empty fields left out)."""
    out: dict[str, Any] = {k: params[k].strip() for k in FILTER_FIELDS if params.get(k)}
    if ids:
        out["id"] = [i for i in ids if i]
    if parameter:
        out["parameter"] = [p for p in parameter if p.strip()]
    return out


def _device_filter(criteria: Mapping[str, Any]) -> devices.DeviceFilter:
    pairs = []
    for item in criteria.get("parameter", []):
        path, sep, value = item.partition("=")
        if not sep or not path.strip():
            raise BadForm(f"parameter filter {item!r}: expected PATH=VALUE")
        pairs.append((path.strip(), value.strip()))
    return devices.DeviceFilter(
        ids=list(criteria.get("id", [])),
        parameters=pairs,
        **{k: criteria.get(k) for k in FILTER_FIELDS},
    )


def _rollout_filter(criteria: Mapping[str, Any]) -> dict[str, Any]:
    f = {k: criteria[k] for k in FILTER_FIELDS if k in criteria}
    if criteria.get("id"):
        f["ids"] = list(criteria["id"])
    if criteria.get("parameter"):
        f["parameters"] = [list(p) for p in _device_filter(criteria).parameters]
    return f


@router.get("/devices", response_class=HTMLResponse)
async def devices_page(
    request: Request,
    _: ViewerUser,
    id: Annotated[list[str], Query()] = [],  # noqa: B006
    parameter: Annotated[list[str], Query()] = [],  # noqa: B006
    sort: str = "id",
    page_: Annotated[int, Query(alias="page", ge=1, le=MAX_PAGE)] = 1,
    per_page: Annotated[int, Query(ge=1, le=250)] = 50,
    count: Literal["", "all"] = "",
) -> Response:
    """A page of the search. The count stops at ``COUNT_CAP`` unless the URL asks for all
    (``count=all``, a link on the page): counting a million matches scans a whole index,
    which the first page of a large fleet should not wait for."""
    runtime = runtime_of(request)
    criteria = _criteria(request.query_params, id, parameter)
    found, total = await devices.search(
        runtime.db,
        _device_filter(criteria),
        now=now(),
        sort=sort,
        limit=per_page,
        offset=(page_ - 1) * per_page,
        count_limit=None if count == "all" else max(COUNT_CAP, page_ * per_page),
    )
    more = count != "all" and total > max(COUNT_CAP, page_ * per_page)
    pages = max(1, -(-total // per_page))
    return page(
        request,
        "devices.html",
        devices=found,
        count=f"more than {total - 1:,}" if more else f"{total:,}",
        more=more,
        criteria=criteria,
        params={**criteria, "sort": sort, "per_page": per_page, "count": count or None},
        sort=sort,
        page_no=page_,
        pages=min(pages, MAX_PAGE),
        per_page=per_page,
        page_sizes=PAGE_SIZES,
        columns=COLUMNS,
        statuses=devices.STATUSES,
        firmware=await _firmware(runtime),
    )


async def _firmware(runtime: Runtime) -> list[str]:
    found, _ = await runtime.files.list(file_type="1 Firmware Upgrade Image", limit=200)
    return [f.name for f in found]


@router.get("/devices.csv")
async def export_devices(
    request: Request,
    _: ViewerUser,
    id: Annotated[list[str], Query()] = [],  # noqa: B006
    parameter: Annotated[list[str], Query()] = [],  # noqa: B006
) -> StreamingResponse:
    """Every device of the search as CSV in id order, streamed a batch at a time (a keyset
    by id: a device that appears meanwhile neither repeats nor shifts the batches)."""
    runtime = runtime_of(request)
    criteria = _criteria(request.query_params, id, parameter)
    f = _device_filter(criteria)
    devices.conditions(runtime.db.dialect, f, now())  # a bad filter is 422 before streaming
    fields = (
        "id",
        "manufacturer",
        "oui",
        "product_class",
        "serial_number",
        "software_version",
        "hardware_version",
        "mac",
        "ip",
        "status",
        "last_inform",
        "tags",
    )

    async def rows() -> AsyncIterator[bytes]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(fields)
        async for batch in devices.batches(runtime.db, f, now=now(), size=EXPORT_BATCH):
            for device in batch:
                writer.writerow(
                    [
                        " ".join(device["tags"])
                        if k == "tags"
                        else ("" if device[k] is None else device[k])
                        for k in fields
                    ]
                )
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="devices.csv"'},
    )


BULK_TASKS: Final = {"reboot", "factory_reset", "firmware", "set"}


def _bulk_task(form: Mapping[str, Any]) -> dict[str, Any]:
    action = form.get("action")
    if action == "reboot":
        return {"name": "Reboot"}
    if action == "factory_reset":
        return {"name": "FactoryReset"}
    if action == "firmware":
        if not form.get("file"):
            raise BadForm("choose a firmware file")
        return {"name": "Download", "file": form["file"]}
    return {"name": "SetParameterValues", "parameter_values": [_typed_value(form)]}


def _typed_value(form: Mapping[str, Any]) -> dict[str, Any]:
    """A parameter value from the form, converted to its xsd type (checked here: a bad value
    is refused before anything is queued)."""
    name = str(form.get("param_name", "")).strip()
    raw = str(form.get("param_value", ""))
    kind = str(form.get("param_type", "") or "xsd:string")
    if not name:
        raise BadForm("a parameter name is needed")
    value: str | bool | int = raw
    try:
        if kind == "xsd:boolean":
            value = _boolean(raw)
        elif kind in ("xsd:int", "xsd:unsignedInt", "xsd:long", "xsd:unsignedLong"):
            value = int(raw.strip())
            if kind.startswith("xsd:unsigned") and value < 0:
                raise ValueError("negative")
    except ValueError:
        raise BadForm(f"{name}: {raw!r} is not a valid {kind}") from None
    return {"name": name, "value": value, "type": kind}


def _boolean(raw: str) -> bool:
    text = raw.strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(raw)


@router.post("/devices/act")
async def bulk_action(request: Request, principal: OperatorUser) -> Response:
    """Act on the selected devices, or on every device of the search: tasks become a
    rollout (the server works through the devices in waves); tags and deletion are one
    set-based change."""
    runtime = runtime_of(request)
    form = await request.form()
    action = str(form.get("action", ""))
    if form.get("scope") == "all":
        criteria = _criteria(
            form, [str(i) for i in form.getlist("id")], [str(p) for p in form.getlist("parameter")]
        )
    else:
        selected = [str(s) for s in form.getlist("selected")]
        if not selected:
            raise BadForm("select devices first, or act on all matching")
        criteria = {"id": selected}
    if action in BULK_TASKS:
        task = _bulk_task(form)
        wave_size = int(str(form.get("wave_size") or 100))
        name = str(form.get("name") or "").strip() or f"{task['name']} from the console"
        request.state.audit = {"rollout": name, "task": task["name"], "filter": criteria}
        try:
            rollout, poke = await rollouts.create(
                runtime.db,
                name=name[:128],
                filter=_rollout_filter(criteria),
                task=task,
                wave_size=wave_size,
                failure_threshold=float(str(form.get("failure_threshold") or 0.2)),
                connection_request=True,
                created_by=principal.name,
                now=now(),
                task_ttl=runtime.settings.task_default_ttl,
            )
        except ValidationError as exc:
            raise _invalid(exc) from None
        runtime.notifier.pulse()
        if poke:
            runtime.spawn(runtime.connection_requests.poke_many(poke))
        return done(f"/rollouts/{rollout['id']}", f"rollout {rollout['id']} created")
    f = _device_filter(criteria)
    if action in ("tag", "untag"):
        tag = str(form.get("tag", "")).strip()
        request.state.audit = {"tag": tag, "present": action == "tag", "filter": criteria}
        n = await devices.set_tag_matching(runtime.db, f, tag, action == "tag", now=now())
        return done(_back(request), f"{action}ged {n} devices")
    if action == "delete":
        request.state.audit = {"delete": True, "filter": criteria}
        if not f.ids and not any(getattr(f, k) for k in FILTER_FIELDS) and not f.parameters:
            raise BadForm("refusing to delete every device: narrow the search first")
        n = await devices.delete_matching(runtime.db, f, now=now())
        return done("/devices", f"deleted {n} devices")
    raise BadForm(f"unknown action {action!r}")


def _back(request: Request) -> str:
    """The page a form came from (a path of ours, its notice dropped), for the redirect
    after an action; the device list when that is unknown."""
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc != request.headers.get("host", ""):
        return "/devices"
    kept = urlencode([(k, v) for k, v in parse_qsl(referer.query) if k != "done"])
    return auth.safe_next(referer.path + (f"?{kept}" if kept else ""))


def _came_from(request: Request, path: str) -> bool:
    return urlsplit(request.headers.get("referer", "")).path == path


# --- the device page ---------------------------------------------------------------------------


def _tree(params: dict[str, Any], path: str, q: str) -> tuple[list[dict[str, Any]], bool]:
    """What the tree shows: with ``q``, the parameters whose path contains it; else the
    children of ``path`` (objects first, as links; then values). (entries, cut short)."""
    entries: list[dict[str, Any]] = []
    if q:
        needle = q.lower()
        for name in sorted(params):
            if needle in name.lower():
                entries.append({"name": name, "object": False, **params[name]})
                if len(entries) >= TREE_LIMIT:
                    return entries, True
        return entries, False
    objects: dict[str, int] = {}
    leaves = []
    for name, value in params.items():
        if not name.startswith(path):
            continue
        rest = name[len(path) :]
        head, dot, _ = rest.partition(".")
        if dot:
            objects[path + head + "."] = objects.get(path + head + ".", 0) + 1
        elif rest:
            leaves.append({"name": name, "object": False, **value})
    for name in sorted(objects, key=_natural):
        entries.append({"name": name, "object": True, "count": objects[name]})
    entries += sorted(leaves, key=lambda e: _natural(e["name"]))
    return entries[:TREE_LIMIT], len(entries) > TREE_LIMIT


def _natural(name: str) -> list[Any]:
    """Instance numbers in order: .2. before .10."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in name.split(".")]


def _crumbs(path: str) -> list[tuple[str, str]]:
    parts = [p for p in path.split(".") if p]
    return [(p, ".".join(parts[: i + 1]) + ".") for i, p in enumerate(parts)]


@router.get("/devices/{device_id}", response_class=HTMLResponse)
async def device_page(
    request: Request, device_id: str, _: ViewerUser, path: str = "", q: str = ""
) -> Response:
    runtime = runtime_of(request)
    device = await devices.get_device(runtime.db, device_id, now=now())
    params = device.pop("parameters")
    if path and not path.endswith("."):
        path += "."
    entries, cut = _tree(params, path, q.strip())
    task_list, _count = await tasks.list_tasks(runtime.db, device_id=device_id, limit=20)
    fault_list, _count = await fault_log.list_faults(runtime.db, device_id=device_id, limit=20)
    history = await events.recent(runtime.db, device_id=device_id, limit=20)
    phone = await _phone(runtime, device)
    work_order = await ctc.order_of_device(runtime.db, device_id)
    return page(
        request,
        "device.html",
        d=device,
        tree=entries,
        tree_cut=cut,
        path=path,
        q=q,
        crumbs=_crumbs(path),
        tasks=task_list,
        pending=any(t["status"] not in tasks.FINISHED for t in task_list),
        faults=fault_list,
        history=history,
        informs=await devices.inform_history(runtime.db, device_id, limit=20),
        phone=phone,
        work_order=work_order,
        firmware=await _firmware(runtime),
        root=_root(params),
    )


def _root(params: Mapping[str, Any]) -> str:
    for name in params:
        return name.split(".", 1)[0] + "."
    return "InternetGatewayDevice."


async def _phone(runtime: Runtime, device: Mapping[str, Any]) -> dict[str, Any] | None:
    if not device.get("mac"):
        return None
    try:
        phone = await runtime.provisioning.get_phone(phone_models.normalize_mac(device["mac"]))
    except (NotFound, ProvisioningError):
        return None
    phone["versions"] = await runtime.provisioning.rendered_versions(phone["mac"])
    return phone


@router.get("/devices/{device_id}/tasks", response_class=HTMLResponse)
async def device_tasks(request: Request, device_id: str, _: ViewerUser) -> Response:
    """The device page's task list alone, for its live refresh."""
    task_list, _count = await tasks.list_tasks(
        runtime_of(request).db, device_id=device_id, limit=20
    )
    return page(
        request,
        "device_tasks.html",
        tasks=task_list,
        device_id=device_id,
        pending=any(t["status"] not in tasks.FINISHED for t in task_list),
    )


async def _queue(
    request: Request, principal: Any, device_id: str, specs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Queue tasks for one device and poke it (as the API's POST .../tasks with
    connection_request=true)."""
    runtime = runtime_of(request)
    try:
        parsed = [task_specs.TASK_ADAPTER.validate_python(s) for s in specs]
    except ValidationError as exc:
        raise _invalid(exc) from None
    request.state.audit = {"device": device_id, "tasks": [s.name for s in parsed]}
    queued = await tasks.queue(
        runtime.db,
        device_id,
        parsed,
        created_by=principal.name,
        now=now(),
        default_ttl=runtime.settings.task_default_ttl,
    )
    runtime.notifier.pulse()
    runtime.spawn(runtime.connection_requests.poke(device_id))
    return queued


@router.post("/devices/{device_id}/refresh")
async def refresh_subtree(request: Request, device_id: str, principal: OperatorUser) -> Response:
    """GetParameterNames of the subtree (objects added or gone), then its values."""
    form = await request.form()
    path = str(form.get("path", "")).strip()
    if path and not path.endswith("."):
        path += "."
    if not path:
        raise BadForm("a subtree path is needed, e.g. InternetGatewayDevice.DeviceInfo.")
    await _queue(
        request,
        principal,
        device_id,
        [
            {"name": "GetParameterNames", "parameter_path": path, "next_level": False},
            {"name": "GetParameterValues", "parameter_names": [path]},
        ],
    )
    return done(f"/devices/{device_id}?path={path}", f"refresh of {path} queued")


@router.post("/devices/{device_id}/set")
async def set_value(request: Request, device_id: str, principal: OperatorUser) -> Response:
    form = await request.form()
    value = _typed_value(form)
    await _queue(
        request, principal, device_id, [{"name": "SetParameterValues", "parameter_values": [value]}]
    )
    parent = value["name"].rsplit(".", 1)[0] + "."
    return done(f"/devices/{device_id}?path={parent}", f"set {value['name']} queued")


@router.post("/devices/{device_id}/task")
async def device_task(request: Request, device_id: str, principal: OperatorUser) -> Response:
    form = await request.form()
    action = str(form.get("action", ""))
    if action not in BULK_TASKS - {"set"}:
        raise BadForm(f"unknown action {action!r}")
    task = _bulk_task(form)
    await _queue(request, principal, device_id, [task])
    return done(f"/devices/{device_id}", f"{task['name']} queued")


@router.post("/devices/{device_id}/connect")
async def connect_now(request: Request, device_id: str, _: OperatorUser) -> Response:
    runtime = runtime_of(request)
    request.state.audit = {"device": device_id}
    result = await runtime.connection_requests.poke(device_id)
    message = (
        f"connection request answered ({result.method})"
        if result.ok
        else f"connection request failed: {result.error or result.status_code}"
    )
    return done(f"/devices/{device_id}", message)


@router.post("/devices/{device_id}/tags")
async def device_tags(request: Request, device_id: str, _: OperatorUser) -> Response:
    form = await request.form()
    tag = str(form.get("tag", "")).strip()
    present = form.get("action") != "remove"
    request.state.audit = {"device": device_id, "tag": tag, "present": present}
    await devices.set_tag(runtime_of(request).db, device_id, tag, present)
    return done(f"/devices/{device_id}", f"tag {tag} {'added' if present else 'removed'}")


@router.post("/devices/{device_id}/delete")
async def delete_device(request: Request, device_id: str, _: OperatorUser) -> Response:
    request.state.audit = {"device": device_id}
    await devices.delete_device(runtime_of(request).db, device_id)
    return done("/devices", f"device {device_id} forgotten")


# --- tasks and faults across the fleet ---------------------------------------------------------


@router.get("/tasks", response_class=HTMLResponse)
async def tasks_page(
    request: Request,
    _: ViewerUser,
    status: str = "",
    name: str = "",
    device_id: str = "",
    page_: Annotated[int, Query(alias="page", ge=1, le=MAX_PAGE)] = 1,
) -> Response:
    if status and status not in tasks.STATUSES:
        raise BadForm(f"status must be one of {list(tasks.STATUSES)}")
    found, count = await tasks.list_tasks(
        runtime_of(request).db,
        device_id=device_id or None,
        status=status or None,
        name=name or None,
        limit=50,
        offset=(page_ - 1) * 50,
    )
    params = {"status": status, "name": name, "device_id": device_id}
    return page(
        request,
        "tasks.html",
        tasks=found,
        count=count,
        params=params,
        page_no=page_,
        pages=max(1, -(-count // 50)),
        statuses=tasks.STATUSES,
    )


@router.post("/tasks/{task_id}/cancel")
async def cancel_task(request: Request, task_id: int, _: OperatorUser) -> Response:
    request.state.audit = {"task": task_id}
    task = await tasks.cancel(runtime_of(request).db, task_id, now())
    return done(_task_back(request, task), f"task {task_id} cancelled")


@router.post("/tasks/{task_id}/retry")
async def retry_task(request: Request, task_id: int, _: OperatorUser) -> Response:
    runtime = runtime_of(request)
    request.state.audit = {"task": task_id}
    task = await tasks.retry(runtime.db, task_id, now(), runtime.settings.task_default_ttl)
    runtime.notifier.pulse()
    runtime.spawn(runtime.connection_requests.poke(task["device_id"]))
    return done(_task_back(request, task), f"task {task_id} queued again")


def _task_back(request: Request, task: Mapping[str, Any]) -> str:
    return (
        "/tasks"
        if "/tasks" in request.headers.get("referer", "")
        else (f"/devices/{task['device_id']}")
    )


@router.get("/faults", response_class=HTMLResponse)
async def faults_page(
    request: Request,
    _: ViewerUser,
    device_id: str = "",
    code: str = "",
    source: str = "",
    page_: Annotated[int, Query(alias="page", ge=1, le=MAX_PAGE)] = 1,
) -> Response:
    if code and not code.isdigit():
        raise BadForm("a fault code is a number, e.g. 9002")
    found, count = await fault_log.list_faults(
        runtime_of(request).db,
        device_id=device_id or None,
        code=int(code) if code else None,
        source=source or None,
        limit=50,
        offset=(page_ - 1) * 50,
    )
    params = {"device_id": device_id, "code": code, "source": source}
    return page(
        request,
        "faults.html",
        faults=found,
        count=count,
        params=params,
        page_no=page_,
        pages=max(1, -(-count // 50)),
    )


@router.post("/faults/{fault_id}/retry")
async def retry_fault(request: Request, fault_id: int, _: OperatorUser) -> Response:
    """Queue the fault's task again and forget the fault."""
    runtime = runtime_of(request)
    fault = await fault_log.get_fault(runtime.db, fault_id)
    request.state.audit = {"fault": fault_id, "task": fault["task_id"]}
    if fault["task_id"] is None:
        raise BadForm(f"fault {fault_id} belongs to no task: there is nothing to retry")
    await tasks.retry(runtime.db, fault["task_id"], now(), runtime.settings.task_default_ttl)
    await fault_log.dismiss(runtime.db, fault_id)
    runtime.notifier.pulse()
    runtime.spawn(runtime.connection_requests.poke(fault["device_id"]))
    return done(f"/devices/{fault['device_id']}", f"task {fault['task_id']} queued again")


@router.post("/faults/{fault_id}/dismiss")
async def dismiss_fault(request: Request, fault_id: int, _: OperatorUser) -> Response:
    runtime = runtime_of(request)
    fault = await fault_log.get_fault(runtime.db, fault_id)
    request.state.audit = {"fault": fault_id}
    await fault_log.dismiss(runtime.db, fault_id)
    back = (
        "/faults"
        if "/faults" in request.headers.get("referer", "")
        else (f"/devices/{fault['device_id']}")
    )
    return done(back, f"fault {fault_id} dismissed")


# --- rollouts ----------------------------------------------------------------------------------


@router.get("/rollouts", response_class=HTMLResponse)
async def rollouts_page(
    request: Request,
    _: ViewerUser,
    page_: Annotated[int, Query(alias="page", ge=1, le=MAX_PAGE)] = 1,
) -> Response:
    found, count = await rollouts.list_rollouts(runtime_of(request).db, 25, (page_ - 1) * 25)
    return page(
        request,
        "rollouts.html",
        rollouts=found,
        count=count,
        page_no=page_,
        pages=max(1, -(-count // 25)),
        params={},
    )


@router.get("/rollouts/{rollout_id}", response_class=HTMLResponse)
async def rollout_page(request: Request, rollout_id: int, _: ViewerUser) -> Response:
    rollout = await rollouts.get(runtime_of(request).db, rollout_id)
    return page(request, "rollout.html", r=rollout)


@router.get("/rollouts/{rollout_id}/progress", response_class=HTMLResponse)
async def rollout_progress(request: Request, rollout_id: int, _: ViewerUser) -> Response:
    rollout = await rollouts.get(runtime_of(request).db, rollout_id)
    return page(request, "rollout_progress.html", r=rollout)


@router.post("/rollouts/{rollout_id}/stop")
async def stop_rollout(request: Request, rollout_id: int, principal: OperatorUser) -> Response:
    request.state.audit = {"rollout": rollout_id}
    await rollouts.stop(runtime_of(request).db, rollout_id, now(), f"stopped by {principal.name}")
    return done(f"/rollouts/{rollout_id}", f"rollout {rollout_id} stopped")


@router.post("/rollouts/{rollout_id}/resume")
async def resume_rollout(request: Request, rollout_id: int, _: OperatorUser) -> Response:
    runtime = runtime_of(request)
    request.state.audit = {"rollout": rollout_id}
    poke = await rollouts.resume(runtime.db, rollout_id, now(), runtime.settings.task_default_ttl)
    runtime.notifier.pulse()
    if poke:
        runtime.spawn(runtime.connection_requests.poke_many(poke))
    return done(f"/rollouts/{rollout_id}", f"rollout {rollout_id} resumed")


# --- live --------------------------------------------------------------------------------------


@router.get("/live")
async def live(
    request: Request,
    _: ViewerUser,
    types: Annotated[list[str], Query(alias="type")] = [],  # noqa: B006
    device_id: str | None = None,
) -> StreamingResponse:
    """The API's event stream for the console's pages (same events, the session's cookie)."""
    runtime = runtime_of(request)
    types = events.check_types(types)
    cursor = await events.last_id(runtime.db)
    return StreamingResponse(
        _stream(request, runtime, cursor, types, device_id),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
