"""Who may fetch what: a phone's own provisioning credentials (hashed), renderings kept
until their inputs change (a fetch is one read), and redirects of phones or MAC prefixes to
another provisioning server.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from acs.db.types import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("phones") as batch:
        batch.add_column(sa.Column("prov_username", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("prov_ha1_md5", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("prov_ha1_sha256", sa.String(length=64), nullable=True))
        batch.create_unique_constraint("uq_phones_prov_username", ["prov_username"])
    op.create_table(
        "provisioning_renderings",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("base_url", sa.String(length=512), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=16), nullable=False),
        sa.Column("mac", sa.String(length=12), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("key", "base_url", name="pk_provisioning_renderings"),
    )
    op.create_table(
        "provisioning_redirects",
        sa.Column("prefix", sa.String(length=12), nullable=False),
        sa.Column("url", sa.String(length=1024), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("prefix", name="pk_provisioning_redirects"),
    )


def downgrade() -> None:
    op.drop_table("provisioning_redirects")
    op.drop_table("provisioning_renderings")
    with op.batch_alter_table("phones") as batch:
        batch.drop_constraint("uq_phones_prov_username", type_="unique")
        batch.drop_column("prov_ha1_sha256")
        batch.drop_column("prov_ha1_md5")
        batch.drop_column("prov_username")
