"""Audit log as hash chains: chain, seq, prev_hash, hash per event; chain heads

Existing events are chained in id order here (the append-only triggers are lifted for
that one UPDATE and put back), with the same code the server uses for new events.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 11:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for name, kind, default in (("chain", sa.String(80), ""), ("seq", sa.Integer(), "0"),
                                ("prev_hash", sa.String(64), ""), ("hash", sa.String(64), "")):
        op.add_column("audit_events", sa.Column(name, kind, nullable=False,
                                                server_default=sa.text(f"'{default}'")
                                                if name != "seq" else sa.text("0")))
    op.create_table(
        "audit_chains",
        sa.Column("chain", sa.String(80), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("head", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("chain"),
    )
    _chain_existing()
    op.create_index("uq_audit_events_chain_seq", "audit_events", ["chain", "seq"], unique=True)


def _seal_existing(bind: sa.engine.Connection) -> None:
    """Chain the events already stored, in id order (as the server chains new ones)."""
    from storage.chain import GENESIS, chain_name, event_hash, format_time

    events = sa.table("audit_events", sa.column("id", sa.Integer), sa.column("at", sa.DateTime),
                      sa.column("kind", sa.String), sa.column("actor", sa.String),
                      sa.column("dossier_id", sa.String), sa.column("session_id", sa.String),
                      sa.column("participant_id", sa.String), sa.column("data", sa.JSON),
                      sa.column("chain", sa.String), sa.column("seq", sa.Integer),
                      sa.column("prev_hash", sa.String), sa.column("hash", sa.String))
    heads: dict[str, tuple[int, str]] = {}
    for row in bind.execute(sa.select(events).order_by(events.c.id)).mappings().all():
        chain = chain_name(row["kind"], row["session_id"], row["dossier_id"])
        seq, prev = heads.get(chain, (0, GENESIS))
        fields = {"chain": chain, "seq": seq + 1, "prev": prev, "at": format_time(row["at"]),
                  "kind": row["kind"], "actor": row["actor"] or "",
                  "dossier_id": row["dossier_id"], "session_id": row["session_id"],
                  "participant_id": row["participant_id"], "data": row["data"] or {}}
        digest = event_hash(fields)
        bind.execute(events.update().where(events.c.id == row["id"]).values(
            chain=chain, seq=seq + 1, prev_hash=prev, hash=digest, actor=fields["actor"]))
        heads[chain] = (seq + 1, digest)
    chains = sa.table("audit_chains", sa.column("chain", sa.String),
                      sa.column("seq", sa.Integer), sa.column("head", sa.String))
    for chain, (seq, head) in heads.items():
        bind.execute(chains.insert().values(chain=chain, seq=seq, head=head))


def _chain_existing() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    if dialect == "sqlite":
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS audit_events_no_{action}")
    elif dialect == "postgresql":
        op.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
    _seal_existing(bind)
    if dialect == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_no_{action.lower()} BEFORE {action} ON "
                f"audit_events BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
            )
    elif dialect == "postgresql":
        op.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")


def downgrade() -> None:
    op.drop_index("uq_audit_events_chain_seq", table_name="audit_events")
    op.drop_table("audit_chains")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        for name in ("hash", "prev_hash", "seq", "chain"):
            batch_op.drop_column(name)
