"""Open CWMP sessions lose their index on ``expires``.

Every session inserts and deletes its row; each index of the table is a page written twice
per session (measured on SQLite's WAL). The only query by ``expires`` alone is the sweeper's,
every few seconds over a table that holds open sessions only (hundreds to a few thousand
rows), which a scan serves; lookups go by id, device and peer address.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index(op.f("ix_cwmp_sessions_expires"), table_name="cwmp_sessions")


def downgrade() -> None:
    op.create_index(op.f("ix_cwmp_sessions_expires"), "cwmp_sessions", ["expires"])
