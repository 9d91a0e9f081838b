"""Incremental transcription: each recording segment transcribed during the meeting

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 09:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'segment_transcripts',
        sa.Column('segment_id', sa.String(length=32), nullable=False),
        sa.Column('session_id', sa.String(length=32), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('model', sa.String(length=500), nullable=False),
        sa.Column('language', sa.String(length=10), nullable=False),
        sa.Column('result', sa.JSON(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('completed_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['segment_id'], ['recording_segments.id']),
        sa.ForeignKeyConstraint(['session_id'], ['sessions.id']),
        sa.PrimaryKeyConstraint('segment_id'),
    )
    with op.batch_alter_table('segment_transcripts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_segment_transcripts_session_id'), ['session_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('segment_transcripts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_segment_transcripts_session_id'))
    op.drop_table('segment_transcripts')
