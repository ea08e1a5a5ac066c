"""Reaching CPEs behind NAT: STUN credentials and bindings, XMPP accounts and what was
provisioned per device (``nat_traversal``); work for the worker holding the cluster's XMPP
session (``xmpp_requests``: connection requests, devices' accounts); leases of cluster-wide
roles.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from acs.db.types import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "nat_traversal",
        sa.Column("device_id", sa.String(length=256), nullable=False),
        sa.Column("stun_username", sa.String(length=256), nullable=True),
        sa.Column("stun_password_enc", sa.Text(), nullable=True),
        sa.Column("stun_host", sa.String(length=64), nullable=True),
        sa.Column("stun_port", sa.Integer(), nullable=True),
        sa.Column("stun_seen", UTCDateTime(), nullable=True),
        sa.Column("stun_changed", UTCDateTime(), nullable=True),
        sa.Column("xmpp_jid", sa.String(length=256), nullable=True),
        sa.Column("xmpp_password_enc", sa.Text(), nullable=True),
        sa.Column("xmpp_account", sa.String(length=16), nullable=True),
        sa.Column("provisioned", JSONDoc, nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_nat_traversal_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_nat_traversal")),
        sa.UniqueConstraint("stun_username", name=op.f("uq_nat_traversal_stun_username")),
    )
    op.create_table(
        "xmpp_requests",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("device_id", sa.String(length=256), nullable=False),
        sa.Column("jid", sa.String(length=3071), nullable=False),
        sa.Column("username", sa.String(length=256), nullable=True),
        sa.Column("password_enc", sa.Text(), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("expires", UTCDateTime(), nullable=False),
        sa.Column("taken_by", sa.String(length=128), nullable=True),
        sa.Column("result", JSONDoc, nullable=True),
        sa.Column("finished", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_xmpp_requests_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_xmpp_requests")),
    )
    op.create_index("ix_xmpp_requests_taken_by_id", "xmpp_requests", ["taken_by", "id"])
    op.create_index(op.f("ix_xmpp_requests_expires"), "xmpp_requests", ["expires"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("expires", UTCDateTime(), nullable=False),
        sa.Column("detail", JSONDoc, nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_index(op.f("ix_xmpp_requests_expires"), table_name="xmpp_requests")
    op.drop_index("ix_xmpp_requests_taken_by_id", table_name="xmpp_requests")
    op.drop_table("xmpp_requests")
    op.drop_table("nat_traversal")
