"""Tasks, faults, operators, API tokens, audit log; connection-request and monitoring columns.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from acs.db.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
        sa.UniqueConstraint("name", name=op.f("uq_operators_name")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("operator_id", BigId, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("last_used", UTCDateTime(), nullable=True),
        sa.Column("expires", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"],
            name=op.f("fk_api_tokens_operator_id_operators"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_operator_id"), "api_tokens", ["operator_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("time", UTCDateTime(), nullable=False),
        sa.Column("operator", sa.String(128), nullable=True),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("client", sa.String(64), nullable=True),
        sa.Column("detail", JSONDoc, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_operator"), "audit_log", ["operator"])
    op.create_index(op.f("ix_audit_log_time"), "audit_log", ["time"])
    op.create_table(
        "tasks",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(256), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("arguments", JSONDoc, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("command_key", sa.String(64), nullable=True),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=True),
        sa.Column("started", UTCDateTime(), nullable=True),
        sa.Column("finished", UTCDateTime(), nullable=True),
        sa.Column("next_attempt", UTCDateTime(), nullable=True),
        sa.Column("expires", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("result", JSONDoc, nullable=True),
        sa.Column("fault", JSONDoc, nullable=True),
        sa.Column("session_id", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_tasks_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    op.create_index("ix_tasks_device_id_command_key", "tasks", ["device_id", "command_key"])
    op.create_index("ix_tasks_device_id_status", "tasks", ["device_id", "status"])
    op.create_index(op.f("ix_tasks_status"), "tasks", ["status"])
    op.create_table(
        "faults",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(256), nullable=False),
        sa.Column("task_id", BigId, nullable=True),
        sa.Column("time", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("string", sa.Text(), nullable=False),
        sa.Column("detail", JSONDoc, nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_faults_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_faults_task_id_tasks"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faults")),
    )
    op.create_index("ix_faults_device_id_time", "faults", ["device_id", "time"])
    op.create_index(op.f("ix_faults_task_id"), "faults", ["task_id"])
    op.create_index(op.f("ix_faults_time"), "faults", ["time"])
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("cr_username", sa.String(256), nullable=True))
        batch.add_column(sa.Column("cr_password_enc", sa.Text(), nullable=True))
        batch.add_column(sa.Column("cr_result", JSONDoc, nullable=True))
        batch.add_column(sa.Column("rpc_methods", JSONDoc, nullable=True))
        batch.add_column(sa.Column("inform_deadline", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("silent_since", UTCDateTime(), nullable=True))
    op.create_index(op.f("ix_devices_inform_deadline"), "devices", ["inform_deadline"])


def downgrade() -> None:
    op.drop_index(op.f("ix_devices_inform_deadline"), "devices")
    with op.batch_alter_table("devices") as batch:
        for column in (
            "silent_since", "inform_deadline", "rpc_methods", "cr_result", "cr_password_enc",
            "cr_username",
        ):
            batch.drop_column(column)
    op.drop_table("faults")
    op.drop_table("tasks")
    op.drop_table("audit_log")
    op.drop_table("api_tokens")
    op.drop_table("operators")
