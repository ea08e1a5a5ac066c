"""Table handles of the models, for SQLAlchemy Core statements (``tables.devices.c.id``)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from acs.db.models import (
    ApiToken,
    AuditEntry,
    ConfigProfile,
    ConsoleSession,
    CwmpSession,
    Device,
    DigestNonce,
    Event,
    FaultRecord,
    FileAssignment,
    InformMinute,
    InformRecord,
    Lease,
    Meta,
    NatTraversal,
    Operator,
    Phone,
    Preset,
    Redirect,
    RenderedConfig,
    Rendering,
    Rollout,
    RolloutTarget,
    StoredFile,
    Task,
    Webhook,
    WebhookDelivery,
    WorkOrder,
    XmppRequest,
)

devices = cast(Table, Device.__table__)
sessions = cast(Table, CwmpSession.__table__)
informs = cast(Table, InformRecord.__table__)
meta = cast(Table, Meta.__table__)
nonces = cast(Table, DigestNonce.__table__)
tasks = cast(Table, Task.__table__)
fault_records = cast(Table, FaultRecord.__table__)
operators = cast(Table, Operator.__table__)
api_tokens = cast(Table, ApiToken.__table__)
audit_log = cast(Table, AuditEntry.__table__)
files = cast(Table, StoredFile.__table__)
profiles = cast(Table, ConfigProfile.__table__)
phones = cast(Table, Phone.__table__)
assignments = cast(Table, FileAssignment.__table__)
rendered = cast(Table, RenderedConfig.__table__)
renderings = cast(Table, Rendering.__table__)
redirects = cast(Table, Redirect.__table__)
rollouts = cast(Table, Rollout.__table__)
rollout_targets = cast(Table, RolloutTarget.__table__)
work_orders = cast(Table, WorkOrder.__table__)
events = cast(Table, Event.__table__)
webhooks = cast(Table, Webhook.__table__)
webhook_deliveries = cast(Table, WebhookDelivery.__table__)
console_sessions = cast(Table, ConsoleSession.__table__)
inform_minutes = cast(Table, InformMinute.__table__)
nat_traversal = cast(Table, NatTraversal.__table__)
xmpp_requests = cast(Table, XmppRequest.__table__)
leases = cast(Table, Lease.__table__)
presets = cast(Table, Preset.__table__)

AnyRow = Row[*tuple[Any, ...]]


def insert_for(conn: AsyncConnection, table: Any) -> Any:
    """An INSERT with ``on_conflict_do_*`` for the connection's backend."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
