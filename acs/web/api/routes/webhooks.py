"""/api/v1/webhooks: subscriptions to events, and their deliveries (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from acs.web.api.deps import Admin, Offset, RuntimeDep, audit, now
from acs.web.api.schemas import (
    DeliveriesPublic,
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
    WebhooksPublic,
    WebhookUpdate,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post("", response_model=WebhookCreated, status_code=201)
async def create_webhook(
    body: WebhookCreate, request: Request, runtime: RuntimeDep, principal: Admin
) -> dict[str, Any]:
    """Deliver events from now on to ``url``, signed with ``secret`` (shown once)."""
    audit(request, url=body.url, event_types=body.event_types, filter=body.filter)
    hook, secret = await runtime.webhooks.create(
        url=body.url,
        event_types=body.event_types,
        filter_=body.filter,
        secret=body.secret,
        now=now(),
        created_by=principal.name,
    )
    return {**hook, "secret": secret}


@router.get("", response_model=WebhooksPublic)
async def list_webhooks(runtime: RuntimeDep, _: Admin) -> dict[str, Any]:
    return {"data": await runtime.webhooks.list_all()}


@router.get("/{webhook_id}", response_model=WebhookPublic)
async def get_webhook(webhook_id: int, runtime: RuntimeDep, _: Admin) -> dict[str, Any]:
    return await runtime.webhooks.get(webhook_id)


@router.patch("/{webhook_id}", response_model=WebhookPublic)
async def update_webhook(
    webhook_id: int, body: WebhookUpdate, request: Request, runtime: RuntimeDep, _: Admin
) -> dict[str, Any]:
    changes = body.model_dump(exclude_none=True)
    audit(request, webhook=webhook_id, changed=sorted(changes))
    return await runtime.webhooks.update(webhook_id, **changes)


@router.delete("/{webhook_id}", status_code=204)
async def delete_webhook(
    webhook_id: int, request: Request, runtime: RuntimeDep, _: Admin
) -> Response:
    audit(request, webhook=webhook_id)
    await runtime.webhooks.delete(webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=DeliveriesPublic)
async def list_deliveries(
    webhook_id: int,
    runtime: RuntimeDep,
    _: Admin,
    status: Annotated[str | None, Query(description="pending, sending, delivered, failed")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Deliveries, newest first."""
    data, count = await runtime.webhooks.deliveries(
        webhook_id, status=status, limit=limit, offset=offset
    )
    return {"data": data, "count": count}


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver", response_model=DeliveryPublic)
async def redeliver(
    webhook_id: int, delivery_id: int, request: Request, runtime: RuntimeDep, _: Admin
) -> dict[str, Any]:
    """Send a delivery again at the dispatcher's next run."""
    audit(request, webhook=webhook_id, delivery=delivery_id)
    return await runtime.webhooks.redeliver(webhook_id, delivery_id, now())
