"""/api/v1/files: the file store (streamed uploads, metadata, deletion)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from acs.services import files
from acs.web.api.deps import Offset, OperatorRole, RuntimeDep, Viewer, audit, now
from acs.web.api.schemas import FilePublic, FilesPublic

router = APIRouter(prefix="/files", tags=["files"])


@router.put("/{name}", response_model=FilePublic, status_code=201)
async def upload(
    name: str,
    request: Request,
    runtime: RuntimeDep,
    principal: OperatorRole,
    file_type: Annotated[str, Query(description=", ".join(files.FILE_KINDS))],
    oui: str | None = None,
    product_class: str | None = None,
    version: Annotated[str | None, Query(description="firmware version it installs")] = None,
) -> dict[str, Any]:
    """Store a file from the raw request body (streamed; replaces a file of that name)."""
    audit(request, file=name, file_type=file_type, version=version)
    meta = await runtime.files.store(
        name,
        request.stream(),
        file_type=file_type,
        oui=oui,
        product_class=product_class,
        version=version,
        created_by=principal.name,
        now=now(),
    )
    return meta.view()


@router.get("", response_model=FilesPublic)
async def list_files(
    runtime: RuntimeDep,
    _: Viewer,
    file_type: str | None = None,
    oui: str | None = None,
    product_class: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    data, count = await runtime.files.list(
        file_type=file_type, oui=oui, product_class=product_class, limit=limit, offset=offset
    )
    return {"data": [m.view() for m in data], "count": count}


@router.get("/{name}", response_model=FilePublic)
async def get_file(name: str, runtime: RuntimeDep, _: Viewer) -> dict[str, Any]:
    return (await runtime.files.get(name)).view()


@router.get("/{name}/content", response_class=FileResponse)
async def file_content(name: str, runtime: RuntimeDep, _: Viewer) -> FileResponse:
    meta = await runtime.files.get(name)
    return FileResponse(
        runtime.files.blob_path(meta.sha256),
        media_type=meta.content_type,
        filename=meta.name,
        headers={"etag": f'"{meta.sha256}"'},
    )


@router.delete("/{name}", status_code=204)
async def delete_file(
    name: str, request: Request, runtime: RuntimeDep, _: OperatorRole
) -> Response:
    audit(request, file=name)
    await runtime.files.delete(name)
    return Response(status_code=204)
