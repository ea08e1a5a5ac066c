"""The digest of the parameters a device's last Inform carried (``devices.inform_digest``).

An Inform whose parameters hash to it leaves the parameter tree alone: a periodic Inform that
changed nothing rewrites no document. Every other write of the tree sets it to NULL.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("inform_digest", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("inform_digest")
