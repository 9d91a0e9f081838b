"""Index recording segments by status (/metrics counts those not yet stored)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01 17:05:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0021'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_recording_segments_status', 'recording_segments', ['status'])


def downgrade() -> None:
    op.drop_index('ix_recording_segments_status', table_name='recording_segments')
