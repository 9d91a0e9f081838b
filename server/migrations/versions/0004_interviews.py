"""Interviews: a participant's pseudonym and a session's scheduled end

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 23:10:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('participants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pseudonym', sa.String(length=50), nullable=True))
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scheduled_end_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_column('scheduled_end_at')
    with op.batch_alter_table('participants', schema=None) as batch_op:
        batch_op.drop_column('pseudonym')
