"""The lobby's audited flow: people on the roster enter it, leave it, are admitted or
turned away by a host; each step is an audit event and the hosts connected are told who
waits. :class:`~server.lobby.Lobby` keeps the waiting list itself; the live registry
(:class:`~server.live.LiveRegistry`) owns the connections this desk reads and writes to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from server import audit
from server.database import Database
from server.lobby import Decision, Lobby, Waiting
from server.models import Participant, utcnow

if TYPE_CHECKING:
    from server.live import Connection


class AdmissionDesk:
    """Admissions for every session of one live registry.

    ``connections(session_id)`` lists a session's live connections, ``send(conns,
    message)`` sends to those still connected, ``release(session_id, participant_id)``
    lets the camera rule count an admitted person from now on."""

    def __init__(self, db: Database, lobby: Lobby,
                 connections: Callable[[str], list[Connection]],
                 send: Callable[[Iterable[Connection], dict[str, Any]], Awaitable[None]],
                 release: Callable[[str, str], None]) -> None:
        self._db = db
        self._lobby = lobby
        self._connections = connections
        self._send = send
        self._release = release

    async def enter(self, session_id: str, dossier_id: str, participant: Participant,
                          ws: web.WebSocketResponse) -> Waiting:
        """``participant`` waits to be admitted; the hosts connected are told."""
        waiting = self._lobby.enter(session_id, participant, ws)
        async with self._db.session() as s:
            audit.record(s, "participant.lobby_entered", actor=f"participant:{participant.id}",
                         dossier_id=dossier_id, session_id=session_id,
                         participant_id=participant.id, data={"role": participant.role})
            await s.commit()
        await self.announce(session_id)
        return waiting

    async def leave(self, waiting: Waiting, dossier_id: str) -> None:
        """The wait is over; if nobody decided (the person gave up), that is recorded."""
        if self._lobby.leave(waiting):
            pid = waiting.participant.id
            async with self._db.session() as s:
                audit.record(s, "participant.lobby_left", actor=f"participant:{pid}",
                             dossier_id=dossier_id, session_id=waiting.session_id,
                             participant_id=pid, data={"waited_s": _since(waiting.since)})
                await s.commit()
            await self.announce(waiting.session_id)

    async def admit(self, by: Connection, target_id: str, admit: bool) -> bool:
        """Host ``by`` admits (or turns away) ``target_id`` from the lobby; False if
        they are not waiting. An admission is kept on the participant record, so a
        reconnect does not send them back to the lobby."""
        if not any(w.participant.id == target_id for w in self._lobby.waiting(by.session_id)):
            return False
        actor = f"participant:{by.participant.id}"
        if admit:
            async with self._db.session() as s:
                row = await s.get(Participant, target_id)
                if row is not None and row.admitted_at is None:
                    row.admitted_at, row.admitted_by = utcnow(), actor
                await s.commit()
        if admit:
            self._release(by.session_id, target_id)
        decision = Decision.ADMITTED if admit else Decision.DENIED
        event = "participant.admitted" if admit else "participant.denied"
        waiting = self._lobby.decide(by.session_id, target_id, decision, actor)
        if waiting is None:
            return False
        async with self._db.session() as s:
            audit.record(s, event, actor=actor,
                         dossier_id=by.dossier_id, session_id=by.session_id,
                         participant_id=target_id, data={"waited_s": _since(waiting.since)})
            await s.commit()
        await self.announce(by.session_id)
        return True

    async def announce(self, session_id: str, to: Connection | None = None) -> None:
        """Send the hosts of ``session_id`` who is waiting; a host just arriving (``to``)
        is told only if someone is (a client starts with an empty lobby)."""
        message = {"type": "lobby",
                   "waiting": [w.describe() for w in self._lobby.waiting(session_id)]}
        if to is not None and not message["waiting"]:
            return
        targets = [to] if to is not None else self._connections(session_id)
        await self._send([c for c in targets if c.host], message)


def _since(at: datetime) -> float:
    return round((utcnow() - at).total_seconds(), 3)
