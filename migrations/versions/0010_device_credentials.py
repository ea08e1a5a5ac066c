"""Per-device CWMP credentials in common mode: ``devices.cwmp_credentials``, their lifecycle.

The column holds the lifecycle of the pair the ACS gives a device of its own
(``acs.services.policy.device_credentials``): NULL is ``new``; a pending pair is kept as its
HA1s only. A database that already has devices was set up before the feature existed: it
stays off there unless ``ACS_CWMP_DEVICE_CREDENTIALS`` turns it on (row
``cwmp_device_credentials`` of ``meta``); new installs have it on.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("cwmp_credentials", JSONDoc, nullable=True))
    op.execute(
        "INSERT INTO meta (key, value) SELECT 'cwmp_device_credentials', 'off' "
        "WHERE EXISTS (SELECT 1 FROM devices)"
    )


def downgrade() -> None:
    op.execute("DELETE FROM meta WHERE key = 'cwmp_device_credentials'")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("cwmp_credentials")
