"""Archive packages keep their RFC 3161 time-stamp's time and authority

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 14:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('archive_packages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timestamped_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('timestamp_tsa', sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('archive_packages', schema=None) as batch_op:
        batch_op.drop_column('timestamp_tsa')
        batch_op.drop_column('timestamped_at')
