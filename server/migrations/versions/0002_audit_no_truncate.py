"""audit_events: refuse TRUNCATE too (PostgreSQL)

Row triggers do not fire on TRUNCATE, so 0001 left PostgreSQL's audit log open to
``TRUNCATE audit_events``. SQLite has no TRUNCATE (its DELETE is already refused).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 22:00:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
