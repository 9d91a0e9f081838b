"""Audit events: what happened, when (server UTC) and who did it — hash-chained.

:func:`record` adds the event to the caller's database session, so it commits (or
rolls back) together with the change it describes; :func:`record_alone` commits one event
on its own, retrying while the database is busy. The table is append-only (database
triggers refuse UPDATE and DELETE).

Each event is put in its chain (:func:`storage.chain.chain_name`: the session's, the
archive-access chain, the dossier's or the system's) when the session flushes: the
chain's head row (``audit_chains``) is updated in the same transaction — which makes
writers of one chain wait for each other (a row lock on PostgreSQL, the write lock on
SQLite) — and the event gets its ``seq``, the previous event's hash and its own
(:mod:`storage.chain`). :func:`verify_chains` checks them against the database.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from server.database import Database, retry_transient
from server.models import AuditChain, AuditEvent, utcnow
from storage.canonical import normalised
from storage.chain import GENESIS, ChainCheck, chain_name, event_hash, format_time, verify_chain

_order = itertools.count()


def record(
    s: AsyncSession,
    kind: str,
    *,
    actor: str = "system",
    dossier_id: str | None = None,
    session_id: str | None = None,
    participant_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        at=utcnow(), kind=kind, actor=actor, dossier_id=dossier_id, session_id=session_id,
        participant_id=participant_id, data=normalised(data or {}),
    )
    # Events recorded together are chained in the order they were recorded.
    event._chain_order = next(_order)  # type: ignore[attr-defined]
    s.add(event)
    return event


async def record_alone(
    db: Database,
    kind: str,
    *,
    actor: str = "system",
    dossier_id: str | None = None,
    session_id: str | None = None,
    participant_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Record one event in a transaction of its own, waiting out a busy or briefly
    unreachable database (:func:`server.database.retry_transient`): for an event about
    something already done (a leave, a camera change, a camera-rule decision), which no
    later attempt would record if this one were lost to a lock."""

    async def write() -> None:
        async with db.session() as s:
            record(s, kind, actor=actor, dossier_id=dossier_id, session_id=session_id,
                   participant_id=participant_id, data=data)
            await s.commit()

    await retry_transient(write, kind)


def hashed_fields(ev: AuditEvent) -> dict[str, Any]:
    """What :func:`storage.chain.event_hash` covers, from a stored event."""
    return {"chain": ev.chain, "seq": ev.seq, "prev": ev.prev_hash, "at": format_time(ev.at),
            "kind": ev.kind, "actor": ev.actor, "dossier_id": ev.dossier_id,
            "session_id": ev.session_id, "participant_id": ev.participant_id,
            "data": ev.data}


@event.listens_for(Session, "before_flush")
def _seal(session: Session, _context: Any, _instances: Any) -> None:
    new = [o for o in session.new if isinstance(o, AuditEvent) and not o.hash]
    if not new:
        return
    new.sort(key=lambda e: getattr(e, "_chain_order", 0))
    by_chain: dict[str, list[AuditEvent]] = {}
    for ev in new:
        ev.at = ev.at or utcnow()
        ev.actor = ev.actor if ev.actor is not None else ""
        ev.chain = chain_name(ev.kind, ev.session_id, ev.dossier_id)
        by_chain.setdefault(ev.chain, []).append(ev)
    conn = session.connection()
    insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    # Heads are taken in name order, so two transactions never wait on each other.
    for chain in sorted(by_chain):
        events = by_chain[chain]
        conn.execute(insert(AuditChain).values(chain=chain, seq=0, head=GENESIS)
                     .on_conflict_do_nothing(index_elements=["chain"]))
        seq, prev = conn.execute(
            update(AuditChain).where(AuditChain.chain == chain)
            .values(seq=AuditChain.seq + len(events))
            .returning(AuditChain.seq, AuditChain.head)).one()
        seq -= len(events)
        for ev in events:
            seq += 1
            ev.seq, ev.prev_hash = seq, prev
            ev.hash = event_hash(hashed_fields(ev))
            prev = ev.hash
        conn.execute(update(AuditChain).where(AuditChain.chain == chain).values(head=prev))


async def verify_chains(db: Database, chains: Sequence[str] | None = None
                        ) -> list[ChainCheck]:
    """Check ``chains`` (all of them by default) as stored: every event's hash, the
    links between them and each chain's recorded head. One result per chain, in name
    order; a chain with a break names its first broken event."""
    async with db.session() as s:
        q = select(AuditChain).order_by(AuditChain.chain)
        if chains is not None:
            q = q.where(AuditChain.chain.in_(list(chains)))
        heads = list((await s.execute(q)).scalars())
        out = []
        for head in heads:
            events = (await s.execute(select(AuditEvent).where(AuditEvent.chain == head.chain)
                                      .order_by(AuditEvent.seq))).scalars()
            out.append(verify_chain(
                head.chain, ({**hashed_fields(e), "hash": e.hash, "id": e.id} for e in events),
                head=head.head, head_seq=head.seq))
    return out
