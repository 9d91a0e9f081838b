"""Segmented recording: every closed segment of every track, hashed and uploaded

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 08:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'recording_segments',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('session_id', sa.String(length=32), nullable=False),
        sa.Column('participant_id', sa.String(length=32), nullable=False),
        sa.Column('connection_id', sa.String(length=32), nullable=False),
        sa.Column('track', sa.String(length=40), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('source', sa.String(length=20), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('started_at', sa.DateTime(), nullable=False),
        sa.Column('ended_at', sa.DateTime(), nullable=False),
        sa.Column('offset_s', sa.Float(), nullable=False),
        sa.Column('duration_s', sa.Float(), nullable=False),
        sa.Column('frames', sa.Integer(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('spool_path', sa.String(length=1000), nullable=False),
        sa.Column('object_key', sa.String(length=500), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('stored_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['participant_id'], ['participants.id']),
        sa.ForeignKeyConstraint(['session_id'], ['sessions.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('connection_id', 'track', 'seq'),
    )
    with op.batch_alter_table('recording_segments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recording_segments_session_id'), ['session_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('recording_segments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recording_segments_session_id'))
    op.drop_table('recording_segments')
