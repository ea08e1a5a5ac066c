"""Webhooks: events POSTed to subscribers' URLs, signed, retried, never lost, and never on the
CWMP request path.

Theory of operation
-------------------
Events are rows (``services/events.py``). Each webhook keeps a cursor: the last event id it
has considered. The dispatcher (a scheduler job in every worker) runs two steps, each in its
own short transaction:

1. **Fan-out.** For each enabled webhook, the events after its cursor that match its types and
   filter become delivery rows (the outbox, ``webhook_deliveries``: unique per webhook and
   event), and the cursor moves past them, in one transaction. On PostgreSQL the webhook's
   row is taken with ``FOR UPDATE SKIP LOCKED``, so two workers never fan out one webhook
   at once; on SQLite writers take turns anyway.
2. **Send.** Due deliveries are leased (``status = 'sending'`` until ``lease_until``; on
   PostgreSQL picked with ``SKIP LOCKED``), POSTed outside any transaction, and their outcome
   written: ``delivered`` on a 2xx, else ``pending`` again with the next attempt after an
   exponential backoff, or ``failed`` after ``ACS_WEBHOOK_MAX_ATTEMPTS``. A worker that dies
   mid-send leaves its lease to expire, and the delivery is sent again: at least once. The
   receiver tells repeats apart by the ``X-ACS-Delivery`` header (the delivery's id).

Deliveries statuses::

    pending --lease--> sending --2xx--> delivered
                       sending --error--> pending (backoff) | failed (attempts used up)
    sending --lease expired--> (taken again as if pending)

Each request is signed: ``X-ACS-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
"<t>.<body>" with the webhook's secret>``, so a receiver checks who sent it and refuses old
replays by ``t``. The order of deliveries is not guaranteed; each carries its event's id and
time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from acs import logs
from acs.db import tables
from acs.db.engine import Database
from acs.db.tables import insert_for
from acs.services import events, metrics
from acs.services.errors import Invalid, NotFound
from acs.services.secretbox import SecretBox

log = logging.getLogger("acs.webhooks")


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookNotFound(NotFound):
    def __init__(self, webhook_id: int) -> None:
        super().__init__(f"no webhook {webhook_id}")


class BadWebhook(Invalid):
    """A URL, event type or filter the webhooks service refuses."""


FILTER_KEYS: Final = ("device_id", "device_prefix")
MAX_ERROR: Final = 500  # characters of a failure kept


@dataclass(frozen=True, slots=True)
class Policy:
    """How deliveries are sent (settings)."""

    timeout: float = 10.0
    max_attempts: int = 10
    backoff: float = 10.0  # seconds before the second attempt; doubles each time
    max_backoff: float = 3600.0
    lease: float = 60.0  # seconds a worker may take to send one delivery


def backoff(policy: Policy, attempts: int) -> float:
    """Seconds to wait after ``attempts`` failed attempts."""
    return float(min(policy.max_backoff, policy.backoff * 2 ** max(0, attempts - 1)))


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def _check(url: str, event_types: Sequence[str], filter_: Mapping[str, Any]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadWebhook("url must be an http:// or https:// URL with a host")
    events.check_types(event_types)
    unknown = sorted(set(filter_) - set(FILTER_KEYS))
    if unknown:
        raise BadWebhook(f"unknown filter {unknown[0]!r}; filters: {', '.join(FILTER_KEYS)}")
    for key, value in filter_.items():
        if not isinstance(value, str) or not value:
            raise BadWebhook(f"filter {key!r} must be a non-empty string")


def webhook_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "event_types": list(row.event_types or []),
        "filter": dict(row.filter or {}),
        "enabled": row.enabled,
        "cursor": row.cursor,
        "created": row.created,
        "created_by": row.created_by,
    }


def delivery_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "webhook_id": row.webhook_id,
        "event_id": row.event_id,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt": row.next_attempt,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "created": row.created,
        "delivered": row.delivered,
    }


class Webhooks:
    """Subscriptions, their outbox and the dispatcher."""

    def __init__(self, db: Database, box: SecretBox, policy: Policy | None = None):
        self.db = db
        self.box = box
        self.policy = policy or Policy()
        self.client: httpx.AsyncClient | None = None

    # --- subscriptions (the API's) --------------------------------------------------------

    async def create(
        self,
        *,
        url: str,
        event_types: Sequence[str],
        filter_: Mapping[str, Any],
        secret: str | None,
        now: datetime,
        created_by: str | None,
        from_now: bool = True,
    ) -> tuple[dict[str, Any], str]:
        """A new webhook and its secret (generated unless given; shown once). It receives
        events from now on (``from_now``), not the ones already kept."""
        _check(url, event_types, filter_)
        secret = secret or secrets.token_urlsafe(32)
        cursor = await events.last_id(self.db) if from_now else 0
        w = tables.webhooks
        async with self.db.write() as conn:
            row = (
                await conn.execute(
                    w.insert()
                    .values(
                        url=url,
                        secret_enc=self.box.seal(secret),
                        event_types=list(dict.fromkeys(event_types)),
                        filter=dict(filter_),
                        enabled=True,
                        cursor=cursor,
                        created=now,
                        created_by=created_by,
                    )
                    .returning(*w.c)
                )
            ).one()
        return webhook_view(row), secret

    async def list_all(self) -> list[dict[str, Any]]:
        w = tables.webhooks
        async with self.db.read() as conn:
            return [webhook_view(r) for r in (await conn.execute(select(w).order_by(w.c.id)))]

    async def get(self, webhook_id: int) -> dict[str, Any]:
        w = tables.webhooks
        async with self.db.read() as conn:
            row = (await conn.execute(select(w).where(w.c.id == webhook_id))).first()
        if row is None:
            raise WebhookNotFound(webhook_id)
        return webhook_view(row)

    async def update(self, webhook_id: int, **changes: Any) -> dict[str, Any]:
        """Change ``url``, ``event_types``, ``filter``, ``enabled`` or ``secret``."""
        current = await self.get(webhook_id)
        _check(
            changes.get("url", current["url"]),
            changes.get("event_types", current["event_types"]),
            changes.get("filter", current["filter"]),
        )
        values: dict[str, Any] = {
            k: v for k, v in changes.items() if k in ("url", "event_types", "filter", "enabled")
        }
        if changes.get("secret"):
            values["secret_enc"] = self.box.seal(changes["secret"])
        w = tables.webhooks
        async with self.db.write() as conn:
            if values:
                await conn.execute(update(w).where(w.c.id == webhook_id).values(**values))
            row = (await conn.execute(select(w).where(w.c.id == webhook_id))).first()
        if row is None:
            raise WebhookNotFound(webhook_id)
        return webhook_view(row)

    async def delete(self, webhook_id: int) -> None:
        w = tables.webhooks
        async with self.db.write() as conn:
            result = await conn.execute(delete(w).where(w.c.id == webhook_id))
        if not result.rowcount:
            raise WebhookNotFound(webhook_id)

    async def deliveries(
        self, webhook_id: int, *, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        await self.get(webhook_id)
        if status is not None and status not in tuple(DeliveryStatus):
            raise BadWebhook(f"status must be one of {', '.join(DeliveryStatus)}")
        dl = tables.webhook_deliveries
        where = [dl.c.webhook_id == webhook_id]
        if status is not None:
            where.append(dl.c.status == status)
        async with self.db.read() as conn:
            total = await conn.scalar(select(func.count()).select_from(dl).where(*where))
            rows = await conn.execute(
                select(dl).where(*where).order_by(dl.c.id.desc()).limit(limit).offset(offset)
            )
            return [delivery_view(r) for r in rows], int(total or 0)

    async def redeliver(self, webhook_id: int, delivery_id: int, now: datetime) -> dict[str, Any]:
        """Send a delivery again (a failed one, or any: the receiver asked)."""
        dl = tables.webhook_deliveries
        async with self.db.write() as conn:
            result = await conn.execute(
                update(dl)
                .where(dl.c.id == delivery_id, dl.c.webhook_id == webhook_id)
                .values(status=DeliveryStatus.PENDING.value, next_attempt=now, lease_until=None)
            )
            if not result.rowcount:
                raise NotFound(f"no delivery {delivery_id} of webhook {webhook_id}")
            row = (await conn.execute(select(dl).where(dl.c.id == delivery_id))).one()
        return delivery_view(row)

    # --- the dispatcher --------------------------------------------------------------------

    async def dispatch(self, now: datetime, batch: int = 200) -> tuple[int, int]:
        """One run of the dispatcher: (deliveries created, deliveries attempted)."""
        created = await self.fan_out(now, batch)
        attempted = await self.send_due(now, batch)
        return created, attempted

    async def fan_out(self, now: datetime, batch: int = 500) -> int:
        w = tables.webhooks
        async with self.db.read() as conn:
            ids = list(
                await conn.scalars(select(w.c.id).where(w.c.enabled.is_(True)).order_by(w.c.id))
            )
        created = 0
        for webhook_id in ids:
            async with self.db.write() as conn:
                created += await _fan_out_one(conn, webhook_id, now, batch)
        return created

    async def send_due(self, now: datetime, batch: int = 200) -> int:
        async with self.db.write() as conn:
            leased = await _lease(conn, now, self.policy.lease, batch)
        if not leased:
            return 0
        client = self.client or httpx.AsyncClient(timeout=self.policy.timeout)
        try:
            outcomes = await asyncio.gather(*(self._send(client, row, now) for row in leased))
        finally:
            if client is not self.client:
                await client.aclose()
        with logs.deferred():
            async with self.db.write() as conn:
                for row, (status, error) in zip(leased, outcomes, strict=True):
                    await self._settle(conn, row, status, error, now)
        return len(leased)

    async def _send(
        self, client: httpx.AsyncClient, row: Any, now: datetime
    ) -> tuple[int | None, str | None]:
        """POST one delivery: (HTTP status, None) or (None or status, what went wrong)."""
        try:
            secret = self.box.open(row.secret_enc)
        except ValueError as exc:
            return None, str(exc)
        body = json.dumps(
            {
                "id": row.event_id,
                "type": row.type,
                "time": row.time.isoformat().replace("+00:00", "Z"),
                "device_id": row.device_id,
                "details": row.details or {},
            },
            separators=(",", ":"),
        ).encode()
        stamp = int(now.timestamp())
        headers = {
            "content-type": "application/json",
            "user-agent": "acs-webhooks",
            "x-acs-event": row.type,
            "x-acs-delivery": str(row.id),
            "x-acs-signature": sign(secret, stamp, body),
        }
        try:
            response = await client.post(row.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR] or type(exc).__name__
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}"

    async def _settle(
        self,
        conn: AsyncConnection,
        row: Any,
        status: int | None,
        error: str | None,
        now: datetime,
    ) -> None:
        attempts = row.attempts + 1
        if error is None:
            outcome, next_attempt = DeliveryStatus.DELIVERED, now
        elif attempts >= self.policy.max_attempts:
            outcome, next_attempt = DeliveryStatus.FAILED, now
        else:
            outcome = DeliveryStatus.PENDING
            next_attempt = now + timedelta(seconds=backoff(self.policy, attempts))
        dl = tables.webhook_deliveries
        result = await conn.execute(
            update(dl)
            .where(
                dl.c.id == row.id,
                dl.c.status == DeliveryStatus.SENDING.value,
                dl.c.lease_until == row.lease_until,
            )
            .values(
                status=outcome.value,
                attempts=attempts,
                next_attempt=next_attempt,
                last_status=status,
                last_error=error,
                delivered=now if outcome is DeliveryStatus.DELIVERED else None,
                lease_until=None,
            )
        )
        applied = bool(result.rowcount)
        if not applied:
            return  # its lease ran out and another worker took it: that one settles it
        label = "delivered" if outcome is DeliveryStatus.DELIVERED else "failed"
        logs.on_commit(metrics.WEBHOOK_DELIVERIES.labels(label).inc)
        level = logging.INFO if outcome is DeliveryStatus.DELIVERED else logging.WARNING
        logs.after_commit(
            log,
            level,
            "webhook delivery",
            webhook=row.webhook_id,
            delivery=row.id,
            event=row.event_id,
            type=row.type,
            outcome=outcome.value,
            attempts=attempts,
            status=status,
            error=error,
        )


# --- the dispatcher's steps -----------------------------------------------------------------


def _matches(event: Any, event_types: Sequence[str], filter_: Mapping[str, Any]) -> bool:
    if event_types and event.type not in event_types:
        return False
    device = event.device_id or ""
    if "device_id" in filter_ and device != filter_["device_id"]:
        return False
    return not ("device_prefix" in filter_ and not device.startswith(filter_["device_prefix"]))


async def _fan_out_one(conn: AsyncConnection, webhook_id: int, now: datetime, batch: int) -> int:
    w, e, dl = tables.webhooks, tables.events, tables.webhook_deliveries
    hook = (
        await conn.execute(
            select(w.c.cursor, w.c.event_types, w.c.filter)
            .where(w.c.id == webhook_id, w.c.enabled.is_(True))
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite's writers take turns
        )
    ).first()
    if hook is None:
        return 0  # disabled, deleted, or another worker is on it
    rows = (
        await conn.execute(
            select(e.c.id, e.c.type, e.c.device_id)
            .where(e.c.id > hook.cursor)
            .order_by(e.c.id)
            .limit(batch)
        )
    ).all()
    if not rows:
        return 0
    wanted = [r.id for r in rows if _matches(r, hook.event_types or (), hook.filter or {})]
    created = 0
    if wanted:
        insert = insert_for(conn, dl).values(
            [
                {
                    "webhook_id": webhook_id,
                    "event_id": event_id,
                    "status": DeliveryStatus.PENDING.value,
                    "attempts": 0,
                    "next_attempt": now,
                    "created": now,
                }
                for event_id in wanted
            ]
        )
        result = await conn.execute(
            insert.on_conflict_do_nothing(index_elements=["webhook_id", "event_id"])
        )
        created = int(result.rowcount or 0)
    await conn.execute(update(w).where(w.c.id == webhook_id).values(cursor=rows[-1].id))
    return created


async def _lease(conn: AsyncConnection, now: datetime, lease: float, batch: int) -> list[Any]:
    """Take up to ``batch`` due deliveries (pending, or sending with an expired lease) for
    this worker until ``lease`` seconds from now; with what sending them needs."""
    w, e, dl = tables.webhooks, tables.events, tables.webhook_deliveries
    due = (
        select(dl.c.id)
        .where(
            or_(
                and_(dl.c.status == DeliveryStatus.PENDING.value, dl.c.next_attempt <= now),
                and_(dl.c.status == DeliveryStatus.SENDING.value, dl.c.lease_until <= now),
            )
        )
        .order_by(dl.c.next_attempt, dl.c.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    until = now + timedelta(seconds=lease)
    ids = list(
        await conn.scalars(
            update(dl)
            .where(dl.c.id.in_(due.scalar_subquery()))
            .values(status=DeliveryStatus.SENDING.value, lease_until=until)
            .returning(dl.c.id)
        )
    )
    if not ids:
        return []
    query = (
        select(
            dl.c.id,
            dl.c.webhook_id,
            dl.c.event_id,
            dl.c.attempts,
            dl.c.lease_until,
            w.c.url,
            w.c.secret_enc,
            e.c.type,
            e.c.time,
            e.c.device_id,
            e.c.details,
        )
        .join(w, w.c.id == dl.c.webhook_id)
        .join(e, e.c.id == dl.c.event_id)
        .where(dl.c.id.in_(ids))
        .order_by(dl.c.id)
    )
    return list((await conn.execute(query)).all())
