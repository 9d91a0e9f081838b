"""Minutes (biên bản): versions, the parties' responses, the locked final

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 14:15:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'minutes_versions',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('session_id', sa.String(length=32), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('content', sa.JSON(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('created_by', sa.String(length=100), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['session_id'], ['sessions.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('session_id', 'number'),
    )
    op.create_index('ix_minutes_versions_session_id', 'minutes_versions', ['session_id'])
    op.create_table(
        'minutes_responses',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('session_id', sa.String(length=32), nullable=False),
        sa.Column('version_number', sa.Integer(), nullable=False),
        sa.Column('version_sha256', sa.String(length=64), nullable=False),
        sa.Column('participant_id', sa.String(length=32), nullable=False),
        sa.Column('decision', sa.String(length=10), nullable=False),
        sa.Column('comment', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['session_id'], ['sessions.id']),
        sa.ForeignKeyConstraint(['participant_id'], ['participants.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_minutes_responses_session_id', 'minutes_responses', ['session_id'])
    op.create_table(
        'minutes_final',
        sa.Column('session_id', sa.String(length=32), nullable=False),
        sa.Column('version_number', sa.Integer(), nullable=False),
        sa.Column('version_sha256', sa.String(length=64), nullable=False),
        sa.Column('pdf_key', sa.String(length=500), nullable=False),
        sa.Column('pdf_sha256', sa.String(length=64), nullable=False),
        sa.Column('docx_key', sa.String(length=500), nullable=False),
        sa.Column('docx_sha256', sa.String(length=64), nullable=False),
        sa.Column('locked_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['session_id'], ['sessions.id']),
        sa.PrimaryKeyConstraint('session_id'),
    )


def downgrade() -> None:
    op.drop_table('minutes_final')
    op.drop_table('minutes_responses')
    op.drop_table('minutes_versions')
