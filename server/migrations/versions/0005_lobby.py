"""Lobby and screens: a session's admission rule; who was admitted and who was
removed; what a recording captured (microphone, camera or screen)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 10:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('admission', sa.String(length=20), nullable=False,
                                      server_default='invited'))
    with op.batch_alter_table('participants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('admitted_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('admitted_by', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('removed_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('removed_by', sa.String(length=100), nullable=True))
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.drop_column('source')
    with op.batch_alter_table('participants', schema=None) as batch_op:
        batch_op.drop_column('removed_by')
        batch_op.drop_column('removed_at')
        batch_op.drop_column('admitted_by')
        batch_op.drop_column('admitted_at')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_column('admission')
