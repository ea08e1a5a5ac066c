"""The web console: its sign-in sessions, informs counted per closed minute for the
overview's chart, and work orders found by their device (the device page).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from acs.db.types import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("operator_id", BigId, nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.Column("expires", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_console_sessions_operator_id_operators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
    )
    op.create_index(op.f("ix_console_sessions_operator_id"), "console_sessions", ["operator_id"])
    op.create_index(op.f("ix_console_sessions_expires"), "console_sessions", ["expires"])
    op.create_table(
        "inform_minutes",
        sa.Column("minute", UTCDateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("connection_requests", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("minute", name=op.f("pk_inform_minutes")),
    )
    op.create_index(op.f("ix_work_orders_device_id"), "work_orders", ["device_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_work_orders_device_id"), table_name="work_orders")
    op.drop_table("inform_minutes")
    op.drop_index(op.f("ix_console_sessions_expires"), table_name="console_sessions")
    op.drop_index(op.f("ix_console_sessions_operator_id"), table_name="console_sessions")
    op.drop_table("console_sessions")
