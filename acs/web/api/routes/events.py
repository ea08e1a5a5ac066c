"""/api/v1/events: what happened to devices and the fleet, as pages and as a live stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from acs.db.errors import UNAVAILABLE
from acs.services import events
from acs.web.api.deps import RuntimeDep, Viewer
from acs.web.api.schemas import EventsPublic

router = APIRouter(prefix="/events", tags=["events"])

Types = Annotated[
    list[str],
    Query(alias="type", description=f"event types; repeatable: {', '.join(events.TYPES)}"),
]
POLL_SECONDS: Final = 1.0  # how often a stream looks for new events
HEARTBEAT_SECONDS: Final = 15.0  # a comment line keeps proxies from closing an idle stream


@router.get("", response_model=EventsPublic)
async def list_events(
    runtime: RuntimeDep,
    _: Viewer,
    after: Annotated[int, Query(ge=0, description="events after this id (a cursor)")] = 0,
    types: Types = [],  # noqa: B006
    device_id: str | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Events oldest first; page on with ``after=`` the ``next`` of the last page."""
    data = await events.list_events(
        runtime.db, after=after, types=types, device_id=device_id, since=since, limit=limit
    )
    return {"data": data, "next": data[-1]["id"] if data else after}


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_events(
    request: Request,
    runtime: RuntimeDep,
    _: Viewer,
    types: Types = [],  # noqa: B006
    device_id: str | None = None,
    after: Annotated[
        int | None, Query(ge=0, description="start after this id (default: from now on)")
    ] = None,
    last_event_id: Annotated[int | None, Header(ge=0)] = None,
) -> StreamingResponse:
    """Server-Sent Events: each event as ``id``, ``event`` (its type) and ``data`` (JSON). A
    client that reconnects with ``Last-Event-ID`` gets what it missed (events are kept
    ``ACS_EVENT_RETENTION_DAYS``)."""
    types = events.check_types(types)  # 422 now, not in the middle of a stream
    cursor = last_event_id if last_event_id is not None else after
    if cursor is None:
        cursor = await events.last_id(runtime.db)
    return StreamingResponse(
        _stream(request, runtime, cursor, types, device_id),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


async def _stream(
    request: Request, runtime: Any, cursor: int, types: list[str], device_id: str | None
) -> AsyncIterator[bytes]:
    yield b"retry: 2000\n\n"
    quiet_since = time.monotonic()
    while not runtime.stopping.is_set() and not await request.is_disconnected():
        try:
            batch = await events.list_events(
                runtime.db, after=cursor, types=types, device_id=device_id, limit=500
            )
        except UNAVAILABLE:
            return  # the client reconnects with Last-Event-ID once the database is back
        for event in batch:
            cursor = event["id"]
            data = json.dumps(event, default=str, separators=(",", ":"))
            yield f"id: {cursor}\nevent: {event['type']}\ndata: {data}\n\n".encode()
        if batch:
            quiet_since = time.monotonic()
            if len(batch) == 500:
                continue
        elif time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
            quiet_since = time.monotonic()
            yield b": keep-alive\n\n"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.stopping.wait(), POLL_SECONDS)
