"""Devices are found by their own CWMP username: an index on ``devices.cwmp_username``.

FTP sends a username and a cleartext password; a phone that logs in with its own credentials
(not the shared pair) is found by that username, once per login. The column is written only
when a device's credentials change (bootstrap, ``acs device credentials``), never by an
Inform, so the index costs the hot path nothing.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_devices_cwmp_username"), "devices", ["cwmp_username"])


def downgrade() -> None:
    op.drop_index(op.f("ix_devices_cwmp_username"), table_name="devices")
