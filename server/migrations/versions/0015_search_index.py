"""An index for transcript search: SQLite FTS5 (trigram) over the folded text,
PostgreSQL pg_trgm (GIN) on it

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 13:45:00

Search stays a substring match on ``transcript_segments.folded`` (server/search.py);
the index only makes it fast. On SQLite an external-content FTS5 table with the trigram
tokenizer mirrors the column through triggers (lines are inserted, and a resumed job
deletes its own half-written ones). On PostgreSQL a trigram GIN index serves LIKE
directly; where the pg_trgm extension cannot be created (no privilege) the migration
goes on without it and search scans, as before.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE = [
    "CREATE VIRTUAL TABLE transcript_folded_fts USING fts5(folded, "
    "content='transcript_segments', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER transcript_folded_ai AFTER INSERT ON transcript_segments BEGIN "
    "INSERT INTO transcript_folded_fts(rowid, folded) VALUES (new.id, new.folded); END",
    "CREATE TRIGGER transcript_folded_ad AFTER DELETE ON transcript_segments BEGIN "
    "INSERT INTO transcript_folded_fts(transcript_folded_fts, rowid, folded) "
    "VALUES ('delete', old.id, old.folded); END",
    "CREATE TRIGGER transcript_folded_au AFTER UPDATE OF folded ON transcript_segments BEGIN "
    "INSERT INTO transcript_folded_fts(transcript_folded_fts, rowid, folded) "
    "VALUES ('delete', old.id, old.folded); "
    "INSERT INTO transcript_folded_fts(rowid, folded) VALUES (new.id, new.folded); END",
    "INSERT INTO transcript_folded_fts(transcript_folded_fts) VALUES ('rebuild')",
]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in SQLITE:
            op.execute(statement)
    elif bind.dialect.name == "postgresql":
        try:
            with bind.begin_nested():
                op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except Exception:  # no privilege: search works without the index
            return
        op.execute("CREATE INDEX ix_transcript_segments_folded_trgm ON transcript_segments "
                   "USING gin (folded gin_trgm_ops)")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for name in ("ai", "ad", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS transcript_folded_{name}")
        op.execute("DROP TABLE IF EXISTS transcript_folded_fts")
    elif bind.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_transcript_segments_folded_trgm")
