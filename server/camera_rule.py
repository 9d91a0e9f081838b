"""The camera rule and the quorum applied to live sessions (issue 4).

:class:`CameraRule` keeps one :class:`~server.compliance.Compliance` per live session,
feeds it what the :class:`~server.live.LiveRegistry` sees (connections, the server's
camera check, the secretary's roll call), runs its clocks twice a second and carries
out its decisions: each is an audit event with the server's time; the participant's
page gets the warning (``camera_warning``, ``camera_non_compliant``, ``camera_ok``), the
hosts get ``alert`` and ``quorum`` messages and, every second, the ``panel``. With the
session's ``camera_to_lobby`` a non-compliant participant (not a host: someone must be
left to admit people) is disconnected and waits in the lobby when the page comes back
(:meth:`CameraRule.held`) until a host admits them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from media.tasks import cancel_and_wait
from server import audit
from server.compliance import BackOn, Compliance, Decision, NonCompliant, QuorumChanged, Warned
from server.database import Database
from server.models import AuditEvent, MeetingSession, Participant, public_name
from server.session_policy import session_policy

if TYPE_CHECKING:
    from server.live import Connection, LiveRegistry

log = logging.getLogger(__name__)


# What this module records (the i18n test reads it: each needs an ``event.`` message).
AUDIT_KINDS = ("room.present", "room.absent", "quorum.met", "quorum.lost", "camera.warning",
               "camera.non_compliant", "camera.compliant", "participant.moved_to_lobby")
ROLL_CALL_EVENTS = AUDIT_KINDS[:2]
TICK_S = 0.5


@dataclass(eq=False)
class _Tracked:
    compliance: Compliance
    dossier_id: str
    task: asyncio.Task[None] | None = None


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


class CameraRule:
    def __init__(self, db: Database, live: LiveRegistry) -> None:
        self._db = db
        self._live = live
        self._tracked: dict[str, _Tracked] = {}
        # Moved back to the lobby by the camera rule: they wait again when they return.
        self._held: set[tuple[str, str]] = set()
        self.events: dict[str, int] = {}  # audit kind -> how many since start

    # -- facts ---------------------------------------------------------------------------

    async def connected(self, conn: Connection) -> None:
        tracked = await self._tracker(conn.session_id)
        if tracked is not None:
            p = conn.participant
            tracked.compliance.member(p.id, public_name(p), p.role)
            tracked.compliance.connected(p.id, time.time())

    def disconnected(self, conn: Connection) -> None:
        tracked = self._tracked.get(conn.session_id)
        if tracked is not None:
            tracked.compliance.disconnected(conn.participant.id, time.time())

    def camera(self, conn: Connection, at: float, on: bool, reason: str | None) -> None:
        """The server's camera check changed its mind (called on the packet path)."""
        tracked = self._tracked.get(conn.session_id)
        if tracked is not None and not conn.closed.is_set():
            tracked.compliance.camera(conn.participant.id, at, on, reason)

    async def set_in_room(self, session_id: str, participant_id: str, present: bool,
                          actor: str) -> bool:
        """The secretary's roll call: ``participant_id`` is (no longer) in the meeting
        room of a hybrid session, from now. It counts for attendance and quorum; in the
        room nobody is held to the camera rule. False if not on the roster."""
        tracked = await self._tracker(session_id)
        if tracked is None or participant_id not in tracked.compliance.members:
            return False
        now = time.time()
        await self._audit(session_id, tracked.dossier_id, participant_id,
                          "room.present" if present else "room.absent",
                          {"server_time": _iso(now)}, actor=actor)
        tracked.compliance.room(participant_id, present, now)
        await self._apply(session_id, tracked, now)
        await self.send_panel(session_id)
        return True

    def held(self, session_id: str, participant_id: str) -> bool:
        """Whether the camera rule moved ``participant_id`` back to the lobby."""
        return (session_id, participant_id) in self._held

    def release(self, session_id: str, participant_id: str) -> None:
        """A host admitted them again."""
        self._held.discard((session_id, participant_id))

    # -- the panel -----------------------------------------------------------------------

    async def send_panel(self, session_id: str, to: Connection | None = None) -> None:
        """To the hosts: everyone's camera state, time on camera, warnings, the quorum."""
        tracked = self._tracked.get(session_id)
        if tracked is None:
            return
        message = {"type": "panel", **tracked.compliance.panel(time.time())}
        targets = [to] if to is not None else self._live.connections(session_id)
        await self._live.send([c for c in targets if c.host], message)

    # -- trackers ------------------------------------------------------------------------

    async def _tracker(self, session_id: str) -> _Tracked | None:
        """The session's tracker, made on first use with its roster and the roll call so
        far (so a restarted server knows who is in the room); None: no such session."""
        tracked = self._tracked.get(session_id)
        if tracked is not None:
            return tracked
        async with self._db.session() as s:
            m = await s.get(MeetingSession, session_id)
            if m is None:
                return None
            roster = (await s.execute(
                select(Participant).where(Participant.session_id == session_id)
                .order_by(Participant.created_at))).scalars().all()
            calls = (await s.execute(
                select(AuditEvent).where(AuditEvent.session_id == session_id,
                                         AuditEvent.kind.in_(ROLL_CALL_EVENTS))
                .order_by(AuditEvent.id))).scalars().all()
        tracked = self._tracked.get(session_id)  # made meanwhile by another caller
        if tracked is not None:
            return tracked
        compliance = Compliance(m.kind, session_policy(m))
        for p in roster:
            if p.removed_at is None:
                compliance.member(p.id, public_name(p), p.role)
        for event in calls:
            if event.participant_id in compliance.members:
                compliance.room(event.participant_id, event.kind == "room.present",
                                event.at.timestamp())
        tracked = self._tracked[session_id] = _Tracked(compliance, m.dossier_id)
        # The roll call's quorum was recorded when it was taken: start from its outcome.
        compliance.tick(time.time())
        tracked.task = asyncio.get_running_loop().create_task(self._run(session_id, tracked))
        return tracked

    async def _run(self, session_id: str, tracked: _Tracked) -> None:
        beat = 0
        while True:
            await asyncio.sleep(TICK_S)
            try:
                await self._apply(session_id, tracked, time.time())
                beat += 1
                if beat % 2 == 0:
                    await self.send_panel(session_id)
            except Exception:  # one bad round must not stop a live session's clocks
                log.exception("camera rule round of session %s failed", session_id)

    async def stop(self, session_id: str | None) -> None:
        """The session ended (None: the server stops): settle and forget its tracker."""
        for sid in [sid for sid in self._tracked if session_id in (None, sid)]:
            tracked = self._tracked.pop(sid)
            await cancel_and_wait(tracked.task, name=f"camera rule {sid}")
            now = time.time()
            for pid in list(tracked.compliance.members):
                tracked.compliance.disconnected(pid, now)
            await self._apply(sid, tracked, now)
        self._held = {k for k in self._held if session_id not in (None, k[0])}

    # -- decisions -----------------------------------------------------------------------

    async def _apply(self, session_id: str, tracked: _Tracked, now: float) -> None:
        for decision in tracked.compliance.tick(now):
            await self._decided(session_id, tracked, decision)

    async def _decided(self, session_id: str, tracked: _Tracked, d: Decision) -> None:
        """Record one decision and tell whom it concerns."""
        conns = {c.participant.id: c for c in self._live.connections(session_id)}
        hosts = [c for c in conns.values() if c.host]
        send = self._live.send
        if isinstance(d, QuorumChanged):
            await self._audit(session_id, tracked.dossier_id, None,
                              "quorum.met" if d.met else "quorum.lost", {
                                  "server_time": _iso(d.at), "present": d.present,
                                  "needed": d.needed, "counted": d.counted,
                                  "chair_present": d.chair_present})
            await send(hosts, {"type": "quorum", "met": d.met, "present": d.present,
                               "needed": d.needed})
            return
        pid = d.participant_id
        member = tracked.compliance.members[pid]
        target = [conns[pid]] if pid in conns else []
        who = {"id": pid, "name": member.name}
        policy = tracked.compliance.policy
        if isinstance(d, Warned):
            await self._audit(session_id, tracked.dossier_id, pid, "camera.warning", {
                "off_since": _iso(d.since), "reason": d.reason,
                "escalation_in_s": d.escalation_in_s})
            await send(target, {"type": "camera_warning", "reason": d.reason,
                                "off_since": _iso(d.since),
                                "escalation_in_s": d.escalation_in_s})
            await send(hosts, {"type": "alert", "kind": "camera_warning", "participant": who,
                               "reason": d.reason, "off_since": _iso(d.since)})
        elif isinstance(d, NonCompliant):
            # A host is never sent to the lobby: nobody might be left to admit anyone.
            to_lobby = policy.camera_to_lobby and bool(target) and not target[0].host
            await self._audit(session_id, tracked.dossier_id, pid, "camera.non_compliant", {
                "since": _iso(d.since), "reason": d.reason, "to_lobby": to_lobby})
            await send(target, {"type": "camera_non_compliant", "reason": d.reason,
                                "since": _iso(d.since), "to_lobby": to_lobby})
            await send(hosts, {"type": "alert", "kind": "camera_non_compliant",
                               "participant": who, "reason": d.reason,
                               "off_since": _iso(d.since)})
            if to_lobby:
                self._held.add((session_id, pid))
                await self._audit(session_id, tracked.dossier_id, pid,
                                  "participant.moved_to_lobby",
                                  {"reason": "camera", "camera_reason": d.reason})
                await send(target, {"type": "moved_to_lobby"})
                await self._live.close(target[0], "moved_to_lobby")
        elif isinstance(d, BackOn):
            await self._audit(session_id, tracked.dossier_id, pid, "camera.compliant", {
                "off_since": _iso(d.since), "server_time": _iso(d.at),
                "off_s": round(d.at - d.since, 3), "was": d.was})
            await send(target, {"type": "camera_ok"})
            await send(hosts, {"type": "alert", "kind": "camera_ok", "participant": who})

    async def _audit(self, session_id: str, dossier_id: str, pid: str | None, kind: str,
                     data: dict[str, Any], actor: str = "system") -> None:
        assert kind in AUDIT_KINDS, kind
        self.events[kind] = self.events.get(kind, 0) + 1  # for the operator's metrics

        # Evidence: the decision is taken once (the tick has moved on), so its record
        # waits out a busy database rather than being lost with this round.
        await audit.record_alone(self._db, kind, actor=actor, dossier_id=dossier_id,
                                 session_id=session_id, participant_id=pid, data=data)
