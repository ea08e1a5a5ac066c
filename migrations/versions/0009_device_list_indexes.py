"""The device list and status searches at a million devices: two composite indexes.

``(status, inform_deadline)`` replaces the two single-column indexes: a status search
(``status = 'online' AND inform_deadline <= now`` is "late") and the status job read it
alone. ``(last_inform, id)`` replaces ``(last_inform)``: the console sorts by last Inform
with ties by id, so a page is a walk of the index instead of a sort of every match. An
Inform writes these columns either way; one index fewer is one entry fewer per Inform.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_devices_status_inform_deadline", "devices", ["status", "inform_deadline"]
    )
    op.create_index("ix_devices_last_inform_id", "devices", ["last_inform", "id"])
    op.drop_index("ix_devices_status", table_name="devices")
    op.drop_index("ix_devices_inform_deadline", table_name="devices")
    op.drop_index("ix_devices_last_inform", table_name="devices")


def downgrade() -> None:
    op.create_index("ix_devices_last_inform", "devices", ["last_inform"])
    op.create_index("ix_devices_inform_deadline", "devices", ["inform_deadline"])
    op.create_index("ix_devices_status", "devices", ["status"])
    op.drop_index("ix_devices_last_inform_id", table_name="devices")
    op.drop_index("ix_devices_status_inform_deadline", table_name="devices")
