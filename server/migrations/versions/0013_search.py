"""Transcript lines keep their folded text (no diacritics) for search

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 11:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from server.search import fold

    op.add_column('transcript_segments', sa.Column('folded', sa.Text(), nullable=False,
                                                   server_default=''))
    lines = sa.table('transcript_segments', sa.column('id', sa.Integer),
                     sa.column('text', sa.Text), sa.column('folded', sa.Text))
    bind = op.get_bind()
    for row in bind.execute(sa.select(lines.c.id, lines.c.text)).all():
        bind.execute(lines.update().where(lines.c.id == row.id).values(folded=fold(row.text)))


def downgrade() -> None:
    with op.batch_alter_table('transcript_segments', schema=None) as batch_op:
        batch_op.drop_column('folded')
