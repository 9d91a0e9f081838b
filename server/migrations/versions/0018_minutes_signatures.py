"""Parties' digital signatures (detached CMS) of the locked minutes' PDF

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 14:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'minutes_signatures',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('session_id', sa.String(length=32), nullable=False),
        sa.Column('participant_id', sa.String(length=32), nullable=False),
        sa.Column('object_key', sa.String(length=500), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('signer', sa.String(length=500), nullable=False),
        sa.Column('cert_sha256', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['session_id'], ['sessions.id']),
        sa.ForeignKeyConstraint(['participant_id'], ['participants.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_minutes_signatures_session_id', 'minutes_signatures', ['session_id'])


def downgrade() -> None:
    op.drop_table('minutes_signatures')
