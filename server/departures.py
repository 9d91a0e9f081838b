"""Leaving, or only cut off: how a connection's end is recorded.

A deliberate end (leave, removal, the session's end) is ``participant.left`` at once. A
connection ending for one of the :data:`INTERRUPTIONS` was not the participant's choice:
``participant.connection_lost`` is recorded and the participant has ``reconnect_grace_s``
to come back — then :meth:`Departures.came_back` gives the loss to the new connection,
which records ``participant.reconnected`` with the gap; otherwise the leave is recorded,
dated from the loss (``lost_at``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from server import audit
from server.database import Database
from server.models import utcnow

# Not the participant's choice: they may come back, and the record then shows a gap.
INTERRUPTIONS = frozenset(
    {"disconnected", "socket_error", "media_failed", "media_closed", "replaced"}
)


@dataclass(eq=False)
class Lost:
    at: datetime
    connection: str
    dossier_id: str
    timer: asyncio.Task[None] | None = None


class Departures:
    def __init__(self, db: Database, grace_s: float) -> None:
        self._db = db
        self._grace_s = grace_s
        self._lost: dict[tuple[str, str], Lost] = {}  # (session, participant)

    def came_back(self, session_id: str, participant_id: str) -> Lost | None:
        """A new connection of a participant: the loss it ends, if it was lost."""
        lost = self._lost.pop((session_id, participant_id), None)
        if lost is not None and lost.timer is not None:
            lost.timer.cancel()
        return lost

    async def ended(self, session_id: str, dossier_id: str, participant_id: str,
                    connection_id: str, reason: str) -> None:
        """A connection ended for ``reason``: a leave, or a loss that may be a gap."""
        if reason not in INTERRUPTIONS or self._grace_s <= 0:
            await self._left(session_id, dossier_id, participant_id,
                             {"connection": connection_id, "reason": reason})
            return
        key = (session_id, participant_id)
        lost = Lost(utcnow(), connection_id, dossier_id)
        self._lost[key] = lost
        if reason != "replaced":  # a replacing connection is being opened right now
            lost.timer = asyncio.get_running_loop().create_task(self._expire(key, lost))
        # A busy database must not end the connection's teardown here (its recordings
        # are stored after this): the record waits for the database instead.
        await audit.record_alone(self._db, "participant.connection_lost",
                                 actor=f"participant:{participant_id}", dossier_id=dossier_id,
                                 session_id=session_id, participant_id=participant_id,
                                 data={"connection": connection_id, "reason": reason})

    async def _expire(self, key: tuple[str, str], lost: Lost) -> None:
        await asyncio.sleep(self._grace_s)
        await self._give_up(key, lost)

    async def _give_up(self, key: tuple[str, str], lost: Lost) -> None:
        """The participant did not come back: it left when its connection was lost."""
        if self._lost.get(key) is not lost:
            return
        del self._lost[key]
        await self._left(key[0], lost.dossier_id, key[1], {
            "connection": lost.connection, "reason": "connection_lost",
            "lost_at": lost.at.isoformat(),
        })

    async def _left(self, session_id: str, dossier_id: str, pid: str,
                    data: dict[str, Any]) -> None:
        await audit.record_alone(self._db, "participant.left", actor=f"participant:{pid}",
                                 dossier_id=dossier_id, session_id=session_id,
                                 participant_id=pid, data=data)

    async def settle(self, session_id: str | None) -> None:
        """Stop waiting for the lost participants of ``session_id`` (None: all)."""
        for key, lost in list(self._lost.items()):
            if session_id is None or key[0] == session_id:
                if lost.timer is not None:
                    lost.timer.cancel()
                await self._give_up(key, lost)
