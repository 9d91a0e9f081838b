"""Running a session: ending it (for everyone), whoever asks — staff API or chair.

One function so the API and the chair's meeting controls end a session the same way:
the status changes first (so no one can join after), everyone connected is told and
disconnected, their recordings are stored, and the transcription is queued.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from server import audit, reports
from server.models import MeetingSession, SessionStatus, plausible_id, utcnow
from server.state import COMPOSITE, DB, LIVE, SETTINGS, STORE, TRANSCRIPTION
from storage import StorageError

log = logging.getLogger(__name__)


class SessionStateError(Exception):
    """The session cannot change as asked; ``code`` is a catalogue key."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


async def end_session(app: web.Application, session_id: str, actor: str) -> MeetingSession:
    """End ``session_id`` for everyone; returns it once every recording is stored.

    Raises :class:`SessionStateError` (``session.not_found``, ``session.already_ended``).
    """
    async with app[DB].session() as s:
        m = await s.get(MeetingSession, session_id) if plausible_id(session_id) else None
        if m is None:
            raise SessionStateError("session.not_found")
        if m.status not in (SessionStatus.SCHEDULED, SessionStatus.LIVE):
            raise SessionStateError("session.already_ended")
        m.status = SessionStatus.ENDED
        m.ended_at = utcnow()
        m.started_at = m.started_at or m.ended_at
        audit.record(s, "session.ended", actor=actor, dossier_id=m.dossier_id, session_id=m.id)
        await s.commit()
    # Joins are refused from here on (status ended); close the live connections. The rest
    # must not be lost if the caller is cancelled: a chair ending the meeting closes its
    # own socket, and aiohttp may then cancel its handler.
    await asyncio.shield(asyncio.get_running_loop().create_task(_after_end(app, session_id)))
    async with app[DB].session() as s:
        ended = await s.get(MeetingSession, session_id)
        assert ended is not None
        return ended


async def _after_end(app: web.Application, session_id: str) -> None:
    await app[LIVE].end_session(session_id)
    await _keep_attendance(app, session_id)
    await app[COMPOSITE].enqueue(session_id)
    if app[SETTINGS].transcribe_on_end:
        await app[TRANSCRIPTION].enqueue(session_id)


async def _keep_attendance(app: web.Application, session_id: str) -> None:
    """Store the attendance report of the session just ended; a store that fails is
    recorded (the report can still be made from the audit log at any time)."""
    try:
        await reports.store_attendance(app[DB], app[STORE], session_id,
                                       app[SETTINGS].ui_language)
    except StorageError as exc:
        log.warning("attendance report of %s not stored: %s", session_id, exc)
        async with app[DB].session() as s:
            audit.record(s, "report.store_failed", session_id=session_id,
                         data={"kind": "attendance", "error": str(exc)})
            await s.commit()
