"""feedback: thumbs, their history, A/B comparisons and votes, rankings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:00:00

A branch off 0001 (the learner tables are 0003); the lead adds the merge revision.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('feedback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('api_key_id', sa.Integer(), nullable=False),
    sa.Column('completion_id', sa.String(length=64), nullable=False),
    sa.Column('choice_index', sa.Integer(), nullable=False),
    sa.Column('rating', sa.String(length=8), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('correction', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("rating IN ('up', 'down')", name=op.f('ck_feedback_rating')),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_feedback_api_key_id_api_keys')),
    sa.ForeignKeyConstraint(['completion_id'], ['completions.id'], name=op.f('fk_feedback_completion_id_completions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback')),
    sa.UniqueConstraint('api_key_id', 'completion_id', 'choice_index', name='uq_feedback_key_completion_choice')
    )
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feedback_completion_id'), ['completion_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_feedback_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_feedback_updated_at'), ['updated_at'], unique=False)

    op.create_table('feedback_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('feedback_id', sa.Integer(), nullable=False),
    sa.Column('rating', sa.String(length=8), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('correction', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['feedback_id'], ['feedback.id'], name=op.f('fk_feedback_events_feedback_id_feedback'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback_events'))
    )
    with op.batch_alter_table('feedback_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feedback_events_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_feedback_events_feedback_id'), ['feedback_id'], unique=False)

    op.create_table('comparisons',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('api_key_id', sa.Integer(), nullable=False),
    sa.Column('messages', sa.JSON(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('completion_a_id', sa.String(length=64), nullable=False),
    sa.Column('completion_b_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_comparisons_api_key_id_api_keys')),
    sa.ForeignKeyConstraint(['completion_a_id'], ['completions.id'], name=op.f('fk_comparisons_completion_a_id_completions')),
    sa.ForeignKeyConstraint(['completion_b_id'], ['completions.id'], name=op.f('fk_comparisons_completion_b_id_completions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comparisons'))
    )
    with op.batch_alter_table('comparisons', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_comparisons_api_key_id'), ['api_key_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_comparisons_created_at'), ['created_at'], unique=False)

    op.create_table('comparison_votes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('comparison_id', sa.String(length=64), nullable=False),
    sa.Column('api_key_id', sa.Integer(), nullable=False),
    sa.Column('winner', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("winner IN ('a', 'b', 'tie', 'both_bad')", name=op.f('ck_comparison_votes_winner')),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_comparison_votes_api_key_id_api_keys')),
    sa.ForeignKeyConstraint(['comparison_id'], ['comparisons.id'], name=op.f('fk_comparison_votes_comparison_id_comparisons'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comparison_votes')),
    sa.UniqueConstraint('comparison_id', 'api_key_id', name='uq_comparison_votes_comparison_key')
    )
    with op.batch_alter_table('comparison_votes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_comparison_votes_api_key_id'), ['api_key_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_comparison_votes_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_comparison_votes_updated_at'), ['updated_at'], unique=False)

    op.create_table('rankings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('api_key_id', sa.Integer(), nullable=False),
    sa.Column('completion_id', sa.String(length=64), nullable=False),
    sa.Column('order', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_rankings_api_key_id_api_keys')),
    sa.ForeignKeyConstraint(['completion_id'], ['completions.id'], name=op.f('fk_rankings_completion_id_completions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rankings')),
    sa.UniqueConstraint('api_key_id', 'completion_id', name='uq_rankings_key_completion')
    )
    with op.batch_alter_table('rankings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rankings_completion_id'), ['completion_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rankings_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_rankings_updated_at'), ['updated_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rankings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rankings_updated_at'))
        batch_op.drop_index(batch_op.f('ix_rankings_created_at'))
        batch_op.drop_index(batch_op.f('ix_rankings_completion_id'))
    op.drop_table('rankings')
    with op.batch_alter_table('comparison_votes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_comparison_votes_updated_at'))
        batch_op.drop_index(batch_op.f('ix_comparison_votes_created_at'))
        batch_op.drop_index(batch_op.f('ix_comparison_votes_api_key_id'))
    op.drop_table('comparison_votes')
    with op.batch_alter_table('comparisons', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_comparisons_created_at'))
        batch_op.drop_index(batch_op.f('ix_comparisons_api_key_id'))
    op.drop_table('comparisons')
    with op.batch_alter_table('feedback_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feedback_events_feedback_id'))
        batch_op.drop_index(batch_op.f('ix_feedback_events_created_at'))
    op.drop_table('feedback_events')
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feedback_updated_at'))
        batch_op.drop_index(batch_op.f('ix_feedback_created_at'))
        batch_op.drop_index(batch_op.f('ix_feedback_completion_id'))
    op.drop_table('feedback')
