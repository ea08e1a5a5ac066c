"""Device status as a stored state (never_seen, online, late, offline, unknown), events, and
webhooks with their outbox.

``silent_since`` goes; ``status`` and ``status_since`` come. ``inform_deadline`` now means
"when the status moves on if no Inform comes" (one missed Inform and the grace for an
online device); rows of an older acs keep their old deadline (two missed) until their next
Inform. A device registered by an operator has no first or last Inform yet, so both become
nullable.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from acs.db.types import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(
            sa.Column("status", sa.String(length=16), server_default="online", nullable=False)
        )
        batch.add_column(sa.Column("status_since", UTCDateTime(), nullable=True))
        batch.drop_column("silent_since")
        batch.alter_column("first_seen", existing_type=UTCDateTime(), nullable=True)
        batch.alter_column("last_inform", existing_type=UTCDateTime(), nullable=True)
        batch.create_index(batch.f("ix_devices_status"), ["status"])
    op.execute(
        "UPDATE devices SET status_since = last_inform, status = CASE WHEN inform_deadline "
        "IS NULL THEN 'unknown' ELSE 'online' END"
    )

    op.create_table(
        "events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("time", UTCDateTime(), nullable=False),
        sa.Column("type", sa.String(length=48), nullable=False),
        sa.Column("device_id", sa.String(length=256), nullable=True),
        sa.Column("details", JSONDoc, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index(op.f("ix_events_time"), "events", ["time"])
    op.create_index("ix_events_device_id_id", "events", ["device_id", "id"])
    op.create_index("ix_events_type_id", "events", ["type", "id"])

    op.create_table(
        "webhooks",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret_enc", sa.Text(), nullable=False),
        sa.Column("event_types", JSONDoc, nullable=False),
        sa.Column("filter", JSONDoc, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("webhook_id", BigId, nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt", UTCDateTime(), nullable=False),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("delivered", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks.id"],
            name=op.f("fk_webhook_deliveries_webhook_id_webhooks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint(
            "webhook_id", "event_id", name=op.f("uq_webhook_deliveries_webhook_id_event_id")
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_status_next_attempt",
        "webhook_deliveries",
        ["status", "next_attempt"],
    )
    op.create_index(
        "ix_webhook_deliveries_webhook_id_id", "webhook_deliveries", ["webhook_id", "id"]
    )


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
    op.drop_index("ix_events_type_id", table_name="events")
    op.drop_index("ix_events_device_id_id", table_name="events")
    op.drop_index(op.f("ix_events_time"), table_name="events")
    op.drop_table("events")
    op.execute("DELETE FROM devices WHERE last_inform IS NULL")  # registered, never seen
    with op.batch_alter_table("devices") as batch:
        batch.drop_index(batch.f("ix_devices_status"))
        batch.add_column(sa.Column("silent_since", UTCDateTime(), nullable=True))
        batch.drop_column("status_since")
        batch.drop_column("status")
        batch.alter_column("last_inform", existing_type=UTCDateTime(), nullable=False)
        batch.alter_column("first_seen", existing_type=UTCDateTime(), nullable=False)
