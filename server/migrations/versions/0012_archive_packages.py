"""Archive packages: stored BagIt zips with their hash and Merkle root; legal holds

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 11:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('dossiers', sa.Column('legal_hold', sa.Boolean(), nullable=False,
                                        server_default=sa.false()))
    op.create_table(
        'archive_packages',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('dossier_id', sa.String(length=32), nullable=False),
        sa.Column('session_id', sa.String(length=32), nullable=True),
        sa.Column('object_key', sa.String(length=500), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('merkle_root', sa.String(length=64), nullable=False),
        sa.Column('files', sa.Integer(), nullable=False),
        sa.Column('created_by', sa.String(length=100), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['dossier_id'], ['dossiers.id']),
        sa.ForeignKeyConstraint(['session_id'], ['sessions.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('archive_packages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_archive_packages_dossier_id'), ['dossier_id'])
        batch_op.create_index(batch_op.f('ix_archive_packages_session_id'), ['session_id'])


def downgrade() -> None:
    op.drop_table('archive_packages')
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.drop_column('legal_hold')
