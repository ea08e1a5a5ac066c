"""Presets: the ``presets`` table, the devices' preset mark and state, and the default preset.

The default preset (``bootstrap``) is what bootstrap provisioning did unconditionally until
now: connection-request credentials and the periodic inform settings on a device's first
session and on every ``0 BOOTSTRAP``. As a row, an operator can change or switch it off.
``meta.presets_version`` changes with every preset change: a device's mark made under
another version is stale.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from acs.db.types import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("presets_mark", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("presets_state", JSONDoc, nullable=True))
    presets = op.create_table(
        "presets",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("filter", JSONDoc, nullable=False),
        sa.Column("events", JSONDoc, nullable=False),
        sa.Column("schedule", sa.String(length=128), nullable=True),
        sa.Column("desired", JSONDoc, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("updated", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_presets")),
        sa.UniqueConstraint("name", name=op.f("uq_presets_name")),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        presets,
        [
            {
                "name": "bootstrap",
                "enabled": True,
                "weight": -100,
                "filter": {},
                "events": ["0 BOOTSTRAP"],
                "schedule": None,
                "desired": {"connection_request_credentials": True},
                "version": 1,
                "created": now,
                "updated": now,
                "created_by": "migration 0012",
            }
        ],
    )
    op.execute("INSERT INTO meta (key, value) VALUES ('presets_version', '1')")


def downgrade() -> None:
    op.execute("DELETE FROM meta WHERE key = 'presets_version'")
    op.drop_table("presets")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("presets_state")
        batch.drop_column("presets_mark")
