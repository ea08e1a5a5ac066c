"""Provisioning: stored files, phone profiles and phones, file assignments, rendered
configurations, rollouts, CTC work orders, per-device ACS mode.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from acs.db.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OrderedJSON = sa.JSON()  # key order is meaning (configuration lines); JSONB would sort keys


def upgrade() -> None:
    op.create_table('config_profiles',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('modules', OrderedJSON, nullable=False),
    sa.Column('config_key', sa.String(length=64), nullable=True),
    sa.Column('common_key', sa.String(length=64), nullable=True),
    sa.Column('mode', sa.String(length=8), nullable=True),
    sa.Column('updated', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_config_profiles')),
    sa.UniqueConstraint('kind', 'name', name=op.f('uq_config_profiles_kind_name'))
    )
    op.create_table('files',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('file_type', sa.String(length=64), nullable=False),
    sa.Column('oui', sa.String(length=32), nullable=True),
    sa.Column('product_class', sa.String(length=128), nullable=True),
    sa.Column('version', sa.String(length=128), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('content_type', sa.String(length=128), nullable=False),
    sa.Column('created', UTCDateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_files')),
    sa.UniqueConstraint('name', name=op.f('uq_files_name'))
    )
    op.create_index(op.f('ix_files_sha256'), 'files', ['sha256'])

    op.create_table('phones',
    sa.Column('mac', sa.String(length=12), nullable=False),
    sa.Column('model', sa.String(length=32), nullable=True),
    sa.Column('profile', sa.String(length=128), nullable=True),
    sa.Column('input_id', sa.String(length=128), nullable=True),
    sa.Column('variables', JSONDoc, nullable=False),
    sa.Column('modules', OrderedJSON, nullable=False),
    sa.Column('mode', sa.String(length=8), nullable=True),
    sa.Column('updated', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('mac', name=op.f('pk_phones')),
    sa.UniqueConstraint('input_id', name=op.f('uq_phones_input_id'))
    )
    op.create_table('rendered_configs',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('version', sa.String(length=16), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('updated', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_rendered_configs'))
    )
    op.create_table('rollouts',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('filter', JSONDoc, nullable=False),
    sa.Column('task', JSONDoc, nullable=False),
    sa.Column('wave_size', sa.Integer(), nullable=False),
    sa.Column('failure_threshold', sa.Float(), nullable=False),
    sa.Column('connection_request', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('current_wave', sa.Integer(), nullable=False),
    sa.Column('waves', sa.Integer(), nullable=False),
    sa.Column('targets', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created', UTCDateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=True),
    sa.Column('finished', UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollouts'))
    )
    op.create_index(op.f('ix_rollouts_status'), 'rollouts', ['status'])

    op.create_table('work_orders',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('loid', sa.String(length=128), nullable=False),
    sa.Column('password', sa.String(length=128), nullable=True),
    sa.Column('tasks', JSONDoc, nullable=False),
    sa.Column('profile', sa.String(length=128), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('device_id', sa.String(length=256), nullable=True),
    sa.Column('created', UTCDateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=True),
    sa.Column('bound', UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_work_orders')),
    sa.UniqueConstraint('loid', name=op.f('uq_work_orders_loid'))
    )
    op.create_index(op.f('ix_work_orders_status'), 'work_orders', ['status'])

    op.create_table('file_assignments',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('scope', sa.String(length=8), nullable=False),
    sa.Column('target', sa.String(length=128), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('file_name', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['file_name'], ['files.name'], name=op.f('fk_file_assignments_file_name_files'), onupdate='CASCADE', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_file_assignments')),
    sa.UniqueConstraint('scope', 'target', 'purpose', name=op.f('uq_file_assignments_scope_target_purpose'))
    )
    op.create_table('rollout_targets',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('rollout_id', BigId, nullable=False),
    sa.Column('device_id', sa.String(length=256), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('task_id', BigId, nullable=True),
    sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], name=op.f('fk_rollout_targets_rollout_id_rollouts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollout_targets'))
    )
    op.create_index('ix_rollout_targets_rollout_id_wave', 'rollout_targets', ['rollout_id', 'wave'])

    with op.batch_alter_table('devices') as batch:
        batch.add_column(sa.Column('mode', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("mode")
    for table in ("rollout_targets", "file_assignments", "work_orders", "rollouts",
                  "rendered_configs", "phones", "files", "config_profiles"):
        op.drop_table(table)
