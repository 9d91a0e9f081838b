"""The lobby: people on the roster waiting for a host to let them into the meeting.

A :class:`Lobby` holds, per session, who is waiting (:class:`Waiting`) and settles each
wait once: admitted, denied, replaced (the same person waits from a second tab) or
ended (the session ended). It only keeps the waiting list; the signalling socket
waits on :attr:`Waiting.decision`, and the :class:`~server.admission.AdmissionDesk` records
the decisions and tells the hosts (who may admit is :func:`server.models.is_host`).
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web

from server.models import Participant, public_name, utcnow


class Decision(enum.StrEnum):
    ADMITTED = "admitted"
    DENIED = "denied"
    REPLACED = "replaced"
    SESSION_ENDED = "session_ended"


@dataclass(eq=False)
class Waiting:
    """One person in a session's lobby, until :attr:`decision` is settled."""

    session_id: str
    participant: Participant
    ws: web.WebSocketResponse
    since: datetime = field(default_factory=utcnow)
    decision: asyncio.Future[Decision] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    decided_by: str | None = None

    def describe(self) -> dict[str, str]:
        """What hosts are shown: the roster name (pseudonym where set) and role."""
        return {"id": self.participant.id, "name": public_name(self.participant),
                "role": self.participant.role, "since": self.since.isoformat()}


class Lobby:
    def __init__(self) -> None:
        self._waiting: dict[str, dict[str, Waiting]] = {}

    def enter(self, session_id: str, participant: Participant,
              ws: web.WebSocketResponse) -> Waiting:
        """Put ``participant`` in the lobby; an earlier wait of theirs is ``REPLACED``."""
        by_id = self._waiting.setdefault(session_id, {})
        old = by_id.get(participant.id)
        if old is not None:
            self._settle(old, Decision.REPLACED, None)
        waiting = by_id[participant.id] = Waiting(session_id, participant, ws)
        return waiting

    def leave(self, waiting: Waiting) -> bool:
        """Take ``waiting`` off the list; True if it was still undecided (they gave up)."""
        by_id = self._waiting.get(waiting.session_id, {})
        if by_id.get(waiting.participant.id) is waiting:
            del by_id[waiting.participant.id]
            if not by_id:
                self._waiting.pop(waiting.session_id, None)
        if waiting.decision.done():
            return False
        waiting.decision.cancel()
        return True

    def waiting(self, session_id: str) -> list[Waiting]:
        """Who is waiting in ``session_id``, longest first."""
        return sorted(self._waiting.get(session_id, {}).values(), key=lambda w: w.since)

    def decide(self, session_id: str, participant_id: str, decision: Decision,
               by: str) -> Waiting | None:
        """Settle the wait of ``participant_id``; None if they are not waiting."""
        waiting = self._waiting.get(session_id, {}).pop(participant_id, None)
        if waiting is None or waiting.decision.done():
            return None
        self._settle(waiting, decision, by)
        return waiting

    def end(self, session_id: str) -> list[Waiting]:
        """The session ended: everyone waiting is told so."""
        everyone = list(self._waiting.pop(session_id, {}).values())
        for waiting in everyone:
            self._settle(waiting, Decision.SESSION_ENDED, None)
        return everyone

    @staticmethod
    def _settle(waiting: Waiting, decision: Decision, by: str | None) -> None:
        if not waiting.decision.done():
            waiting.decided_by = by
            waiting.decision.set_result(decision)
