"""When a participant's join link works.

An interviewee (no account, only a link) may join an interview only around its
scheduled time: from ``interview_margin_minutes`` before the scheduled start until as
long after the scheduled end (or after start + ``interview_default_minutes`` when no
end was given). Other roles, and interviews without a scheduled time, are not limited.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from server.models import MeetingSession, ParticipantRole, SessionKind
from server.settings import Settings

VIETNAM = timezone(timedelta(hours=7))


class OutsideWindow(Exception):
    """``code`` is ``join.too_early`` or ``join.too_late``; ``params`` the window."""

    def __init__(self, code: str, start: datetime, end: datetime) -> None:
        super().__init__(code)
        self.code = code
        self.params = {"start": vietnam_time(start), "end": vietnam_time(end)}


def vietnam_time(moment: datetime) -> str:
    return moment.astimezone(VIETNAM).strftime("%H:%M %d/%m/%Y")


def window(
    session: MeetingSession, role: str, settings: Settings
) -> tuple[datetime, datetime] | None:
    """(opens, closes) for ``role`` in ``session``, or None when not limited."""
    if (session.kind != SessionKind.INTERVIEW or role != ParticipantRole.INTERVIEWEE
            or session.scheduled_at is None):
        return None
    margin = timedelta(minutes=settings.interview_margin_minutes)
    end = session.scheduled_end_at or (
        session.scheduled_at + timedelta(minutes=settings.interview_default_minutes)
    )
    return session.scheduled_at - margin, end + margin


def check(session: MeetingSession, role: str, settings: Settings, now: datetime) -> None:
    """Raise :class:`OutsideWindow` when ``role`` may not join ``session`` at ``now``."""
    limits = window(session, role, settings)
    if limits is None:
        return
    opens, closes = limits
    if now < opens:
        raise OutsideWindow("join.too_early", opens, closes)
    if now > closes:
        raise OutsideWindow("join.too_late", opens, closes)
