"""Initial schema: devices, CWMP sessions, inform history, digest nonces, meta.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from acs.db.types import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_meta")),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.String(256), nullable=False),
        sa.Column("manufacturer", sa.String(128), nullable=False),
        sa.Column("oui", sa.String(32), nullable=False),
        sa.Column("product_class", sa.String(128), nullable=False),
        sa.Column("serial_number", sa.String(128), nullable=False),
        sa.Column("mac", sa.String(17), nullable=True),
        sa.Column("software_version", sa.String(128), nullable=True),
        sa.Column("hardware_version", sa.String(128), nullable=True),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("connection_request_url", sa.Text(), nullable=True),
        sa.Column("udp_connection_request_address", sa.String(128), nullable=True),
        sa.Column("periodic_inform_interval", sa.Integer(), nullable=True),
        sa.Column("cwmp_version", sa.String(8), nullable=True),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("last_inform", UTCDateTime(), nullable=False),
        sa.Column("last_boot", UTCDateTime(), nullable=True),
        sa.Column("last_bootstrap", UTCDateTime(), nullable=True),
        sa.Column("last_events", JSONDoc, nullable=False),
        sa.Column("tags", JSONDoc, nullable=False),
        sa.Column("parameters", JSONDoc, nullable=False),
        sa.Column("cwmp_username", sa.String(256), nullable=True),
        sa.Column("cwmp_ha1_md5", sa.String(32), nullable=True),
        sa.Column("cwmp_ha1_sha256", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
    )
    for column in (
        "ip", "last_inform", "mac", "oui", "product_class", "serial_number", "software_version"
    ):
        op.create_index(op.f(f"ix_devices_{column}"), "devices", [column])
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_devices_tags", "devices", ["tags"],
            postgresql_using="gin", postgresql_ops={"tags": "jsonb_path_ops"},
        )

    op.create_table(
        "cwmp_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(256), nullable=False),
        sa.Column("state", JSONDoc, nullable=False),
        sa.Column("peer_host", sa.String(64), nullable=False),
        sa.Column("peer_port", sa.Integer(), nullable=False),
        sa.Column("started", UTCDateTime(), nullable=False),
        sa.Column("updated", UTCDateTime(), nullable=False),
        sa.Column("expires", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"],
            name=op.f("fk_cwmp_sessions_device_id_devices"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cwmp_sessions")),
        sa.UniqueConstraint("device_id", name=op.f("uq_cwmp_sessions_device_id")),
    )
    op.create_index(op.f("ix_cwmp_sessions_expires"), "cwmp_sessions", ["expires"])
    op.create_index(op.f("ix_cwmp_sessions_peer_host"), "cwmp_sessions", ["peer_host"])

    op.create_table(
        "informs",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True, nullable=False,
        ),
        sa.Column("device_id", sa.String(256), nullable=False),
        sa.Column("received", UTCDateTime(), nullable=False),
        sa.Column("events", JSONDoc, nullable=False),
        sa.Column("retry_count", sa.Integer(), nullable=False),
        sa.Column("peer_host", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"],
            name=op.f("fk_informs_device_id_devices"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_informs")),
    )
    op.create_index("ix_informs_device_id_received", "informs", ["device_id", "received"])
    op.create_index(op.f("ix_informs_received"), "informs", ["received"])

    op.create_table(
        "digest_nonces",
        sa.Column("nonce", sa.String(128), nullable=False),
        sa.Column("last_nc", sa.BigInteger(), nullable=False),
        sa.Column("expires", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_digest_nonces")),
    )
    op.create_index(op.f("ix_digest_nonces_expires"), "digest_nonces", ["expires"])


def downgrade() -> None:
    op.drop_table("digest_nonces")
    op.drop_table("informs")
    op.drop_table("cwmp_sessions")
    op.drop_table("devices")
    op.drop_table("meta")
