"""learner: training runs and the learner lease

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-24 09:00:00

A branch off 0001 (the feedback tables are 0002); the lead adds the merge revision.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('learner_leases',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=False),
    sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_learner_leases'))
    )
    op.create_table('training_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('algorithm', sa.String(length=32), nullable=True),
    sa.Column('holder', sa.String(length=200), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('watermark_from', sa.DateTime(timezone=True), nullable=True),
    sa.Column('watermark_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('policy_version_id', sa.Integer(), nullable=True),
    sa.Column('artifact_path', sa.Text(), nullable=True),
    sa.Column('seed', sa.Integer(), nullable=True),
    sa.CheckConstraint("status IN ('running', 'succeeded', 'failed', 'rejected', 'skipped')", name=op.f('ck_training_runs_status')),
    sa.ForeignKeyConstraint(['policy_version_id'], ['policy_versions.id'], name=op.f('fk_training_runs_policy_version_id_policy_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_training_runs'))
    )
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_training_runs_policy_version_id'), ['policy_version_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_training_runs_started_at'), ['started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_training_runs_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_training_runs_status'))
        batch_op.drop_index(batch_op.f('ix_training_runs_started_at'))
        batch_op.drop_index(batch_op.f('ix_training_runs_policy_version_id'))

    op.drop_table('training_runs')
    op.drop_table('learner_leases')
