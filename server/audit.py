"""Audit events: what happened, when (server UTC) and who did it.

:func:`record` adds the event to the caller's database session, so it commits (or
rolls back) together with the change it describes. The table is append-only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import AuditEvent, utcnow


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
        participant_id=participant_id, data=data or {},
    )
    s.add(event)
    return event
