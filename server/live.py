"""Live sessions: who is connected, with which peer, and who receives whom.

The :class:`LiveRegistry` owns every :class:`Connection` (a participant's WebSocket
plus media peer) and each session's :class:`Room`. When a connection ends — the
participant leaves, the network fails, the session ends or the server shuts down —
its recordings are finished and kept (:func:`server.recordings.keep_recording`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from typing import Any

from aiohttp import web

from media.camera import Reason
from media.camera_monitor import CameraConfig
from media.face import FaceDetector
from media.peer import SOURCE_OF_KEY, ParticipantPeer
from media.recorder import Segment
from media.room import Room, source_member
from media.sendworker import SendWorkers
from server import audit
from server.admission import AdmissionDesk
from server.camera_rule import CameraRule
from server.database import Database, retry_transient
from server.departures import Departures
from server.lobby import Lobby
from server.models import Participant, new_id, public_name, utcnow
from server.recordings import keep_recording
from server.recovery import Recovered, recover
from server.segments import SegmentKeeper, TrackOf
from server.settings import Settings
from storage import ObjectStore, StorageError, session_prefix, validate_key

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Connection:
    """One participant's current connection (WebSocket + media peer)."""

    id: str
    session_id: str
    dossier_id: str
    participant: Participant
    ws: web.WebSocketResponse
    peer: ParticipantPeer
    opened_at: datetime
    host: bool = False  # runs the meeting: may admit, mute, remove, end it
    camera_required: bool = False  # held to the session's camera rule
    media_state: dict[str, bool] | None = None  # microphone/camera, as the page says
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    # The welcome opens the conversation: what others send before it (a camera warning,
    # a roster change) waits here and follows it, in order.
    welcomed: bool = False
    early: list[dict[str, Any]] = field(default_factory=list)


class LiveRegistry:
    def __init__(self, db: Database, store: ObjectStore, settings: Settings) -> None:
        self._db = db
        self._store = store
        self._settings = settings
        self._sessions: dict[str, dict[str, Connection]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._rooms: dict[str, Room] = {}
        self.lobby = Lobby()
        self._workers = SendWorkers(settings.send_workers if settings.fast_forwarding else 0,
                                    native=settings.fast_forwarding and settings.native_send)
        # Leaves, and losses that wait reconnect_grace_s for a comeback.
        self._departures = Departures(db, settings.reconnect_grace_s)
        self._finishing: set[asyncio.Task[None]] = set()
        self._notices: set[asyncio.Task[None]] = set()  # messages sent from sync callbacks
        self.camera_rule = CameraRule(db, self)  # camera-on rule, quorum, roll call
        # Who waits, enters, is admitted or turned away: recorded, and the hosts told.
        self.admissions = AdmissionDesk(db, self.lobby, self.connections, self.send,
                                        self.camera_rule.release)
        # Recording segments: hashed, recorded and uploaded as they close.
        self.segments = SegmentKeeper(db, store, retry_max_s=settings.storage_retry_max_s)
        # Continuous files and composites are assembled in a worker process, not here.
        self.worker = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
        # One face detector for every camera (thread safe); refuses to start without it.
        faces = FaceDetector() if settings.camera_face_check else None
        self._camera_config = CameraConfig(
            settings.camera_sample_s, settings.camera_stale_s, settings.camera_frozen_s,
            faces=faces, still_every_s=settings.presence_still_minutes * 60)

    async def start_worker(self) -> None:
        """Start the assembling worker process now rather than at the first track to
        assemble: a served process then holds its memory from the start (the soak's
        baseline), and the first participant to leave does not wait for an interpreter
        to start. Returns once the worker answers."""
        await asyncio.wrap_future(self.worker.submit(os.getpid))

    def lock(self, session_id: str) -> asyncio.Lock:
        """Serialises joins with the session's end, so none slips in after it."""
        return self._locks.setdefault(session_id, asyncio.Lock())

    def connections(self, session_id: str) -> list[Connection]:
        return list(self._sessions.get(session_id, {}).values())

    def counts(self) -> tuple[int, int]:
        """(sessions with someone connected, participants connected), for the metrics."""
        live = [c for c in self._sessions.values() if c]
        return len(live), sum(len(c) for c in live)

    async def open(
        self,
        *,
        session_id: str,
        dossier_id: str,
        participant: Participant,
        ws: web.WebSocketResponse,
        on_state: Callable[[Connection, str], None],
        host: bool = False,
        camera_required: bool = False,
    ) -> Connection:
        """Register a new connection; an older one of the same participant is closed
        first (a second tab or a reconnect replaces the first).

        If the caller is cancelled meanwhile (the participant vanished), the connection
        is still opened and audited, then closed and audited as left: a join is never
        recorded without its leave.
        """
        task = asyncio.get_running_loop().create_task(
            self._open(session_id, dossier_id, participant, ws, on_state, host,
                       camera_required)
        )
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            conn = await task
            await self.close(conn, "disconnected")
            raise

    async def _open(
        self,
        session_id: str,
        dossier_id: str,
        participant: Participant,
        ws: web.WebSocketResponse,
        on_state: Callable[[Connection, str], None],
        host: bool,
        camera_required: bool,
    ) -> Connection:
        old = self._sessions.get(session_id, {}).get(participant.id)
        if old is not None:
            await self.close(old, "replaced")
        conn_id = new_id()[:12]
        spool = self._settings.spool_dir / session_id / participant.id / conn_id
        holder: list[Connection] = []

        def state_changed(state: str) -> None:
            if holder:
                on_state(holder[0], state)

        def camera_changed(at: float, on: bool, reason: Reason | None) -> None:
            if holder:
                self._camera_changed(holder[0], at, on, reason)

        def still_taken(at: float, jpeg: bytes) -> None:
            if holder:
                self._notice(self._keep_still(holder[0], at, jpeg))

        def segment_closed(key: str, segment: Segment) -> None:
            if holder:
                self.segments.closed(_track_of(holder[0], key), segment)

        room = self._rooms.get(session_id)
        if room is None:
            room = self._rooms[session_id] = Room(
                on_speaker=lambda who: self._speaker_changed(session_id, who),
                workers=self._workers, worker_fanout=self._settings.send_worker_fanout,
            )
        pid = participant.id
        peer = ParticipantPeer(
            spool, on_state=state_changed,
            on_frame=lambda key, frame: room.publish(pid, key, frame),
            on_level=lambda key, level: room.level(pid, level),
            fast_forwarding=self._settings.fast_forwarding,
            send_workers=self._workers,
            on_camera=camera_changed,
            camera_config=self._camera_config,
            on_still=still_taken,
            segment_s=self._settings.segment_s,
            on_segment=segment_closed,
        )
        conn = Connection(
            id=conn_id,
            session_id=session_id,
            dossier_id=dossier_id,
            participant=participant,
            ws=ws,
            peer=peer,
            opened_at=utcnow(),
            host=host,
            camera_required=camera_required,
        )
        holder.append(conn)
        self._sessions.setdefault(session_id, {})[participant.id] = conn
        await self.camera_rule.connected(conn)
        lost = self._departures.came_back(session_id, participant.id)
        event = "participant.joined"
        data: dict[str, Any] = {"connection": conn_id, "role": participant.role}
        if lost is not None:
            # Back within the grace period: a gap in attendance, not a leave and a join.
            event = "participant.reconnected"
            gap = (conn.opened_at - lost.at).total_seconds()
            data = {"connection": conn_id, "previous_connection": lost.connection,
                    "gap_s": round(gap, 3)}

        async def record_join() -> None:
            async with self._db.session() as s:
                audit.record(s, event, actor=f"participant:{participant.id}",
                             dossier_id=dossier_id, session_id=session_id,
                             participant_id=participant.id, data=data)
                await s.commit()

        # Waited out like a leave: in the 20-participant soak SQLite's write lock was
        # once not had within its 30 s, and the join failed with the peer half set up.
        await retry_transient(record_join, f"join of {participant.id}")
        return conn

    async def close(self, conn: Connection, reason: str) -> None:
        """End ``conn``: finish, store and record its media (idempotent).

        The work runs in a task the caller's cancellation cannot stop: once the socket
        is closed aiohttp may cancel the participant's handler (``handler_cancellation``,
        on in aiohttp's test server) and that must not lose what was recorded.
        """
        if conn.closed.is_set():
            return
        conn.closed.set()
        by_session = self._sessions.get(conn.session_id, {})
        if by_session.get(conn.participant.id) is conn:
            del by_session[conn.participant.id]
        task = asyncio.get_running_loop().create_task(
            self._finish(conn, reason), name=f"finish:{conn.session_id}:{conn.id}")
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        await asyncio.shield(task)

    async def media_ready(self, conn: Connection) -> None:
        """``conn``'s offer is answered: forward its media to the others and theirs to it."""
        room = self._rooms.get(conn.session_id)
        if room is None or conn.closed.is_set():
            return
        await self._announce_slots(conn.session_id, room.join(conn.participant.id, conn.peer))
        # What a newcomer missed: the others' switches.
        for other in self.connections(conn.session_id):
            if other is not conn and other.media_state is not None:
                await _send([conn], {"type": "media_state",
                                     "participant_id": other.participant.id,
                                     **other.media_state})

    @staticmethod
    async def welcomed(conn: Connection) -> None:
        """``conn`` was sent its welcome: what was held back for it goes out now."""
        conn.welcomed = True
        early, conn.early = conn.early, []
        for message in early:
            await _send([conn], message)

    async def broadcast(self, session_id: str, message: dict[str, Any]) -> None:
        await _send(self.connections(session_id), message)

    async def send(self, conns: Iterable[Connection], message: dict[str, Any]) -> None:
        """Send ``message`` to each of ``conns`` still connected."""
        await _send(conns, message)

    def _notice(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` (a record or a message) from a synchronous callback on the packet
        path; kept referenced until done."""
        task = asyncio.get_running_loop().create_task(coro)
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def set_muted(self, by: Connection, target_id: str, kind: str, muted: bool) -> bool:
        """``by`` (a chair or secretary) stops or resumes forwarding ``target_id``'s
        ``kind``. The server keeps recording it; the audit log and everyone's page say
        when forwarding stopped. False if the target is not connected."""
        room = self._rooms.get(by.session_id)
        if room is None or target_id not in self._sessions.get(by.session_id, {}):
            return False
        room.set_muted(target_id, kind, muted)
        event = "participant.muted" if muted else "participant.unmuted"
        async with self._db.session() as s:
            audit.record(
                s, event,
                actor=f"participant:{by.participant.id}", dossier_id=by.dossier_id,
                session_id=by.session_id, participant_id=target_id,
                data={"kind": kind, "forwarding": "stopped" if muted else "resumed",
                      "recording": "continues"},
            )
            await s.commit()
        await self.broadcast(by.session_id, {
            "type": "muted", "participant_id": target_id, "kind": kind, "muted": muted,
            "by": {"id": by.participant.id, "name": public_name(by.participant)},
        })
        return True

    async def remove(self, by: Connection, target_id: str) -> bool:
        """``by`` removes ``target_id`` from the live meeting; the participant record
        keeps it (``removed_at``), so their link is refused from then on."""
        target = self._sessions.get(by.session_id, {}).get(target_id)
        if target is None or target is by:
            return False
        actor = f"participant:{by.participant.id}"
        async with self._db.session() as s:
            row = await s.get(Participant, target_id)
            if row is not None and row.removed_at is None:
                row.removed_at, row.removed_by = utcnow(), actor
            audit.record(s, "participant.removed", actor=f"participant:{by.participant.id}",
                         dossier_id=by.dossier_id, session_id=by.session_id,
                         participant_id=target_id)
            await s.commit()
        await _send([target], {"type": "removed",
                               "by": {"id": by.participant.id,
                                      "name": public_name(by.participant)}})
        await self.close(target, "removed")
        return True

    def _camera_changed(self, conn: Connection, at: float, on: bool,
                        reason: Reason | None) -> None:
        """The server's camera check changed its mind about ``conn`` (on the packet
        path): record it with the server's time and tell the hosts and the participant."""
        self.camera_rule.camera(conn, at, on, None if reason is None else reason.value)
        self._notice(self._record_camera(conn, at, on, reason))

    async def _record_camera(self, conn: Connection, at: float, on: bool,
                             reason: Reason | None) -> None:
        event = "camera.on" if on else "camera.off"
        when = datetime.fromtimestamp(at, UTC)

        await audit.record_alone(  # evidence: not lost to a busy database
            self._db, event, dossier_id=conn.dossier_id, session_id=conn.session_id,
            participant_id=conn.participant.id,
            data={"reason": None if reason is None else reason.value,
                  "server_time": when.isoformat(), "connection": conn.id})
        message = {"type": "camera", "participant_id": conn.participant.id, "on": on,
                   "reason": None if reason is None else reason.value}
        await _send([c for c in self.connections(conn.session_id) if c.host or c is conn],
                    message)

    async def _keep_still(self, conn: Connection, at: float, jpeg: bytes) -> None:
        """Store a proof-of-presence still (write-once, hashed) and record it."""
        prefix = session_prefix(conn.dossier_id, conn.session_id)
        stamp = datetime.fromtimestamp(at, UTC).strftime("%Y%m%dT%H%M%S%fZ")
        key = validate_key(f"{prefix}stills/{conn.participant.id}/{stamp}.jpg")
        try:
            stored = await self._store.put_bytes(key, jpeg, "image/jpeg")
        except StorageError as exc:
            log.warning("presence still of %s not stored: %s", conn.participant.id, exc)
            return
        async with self._db.session() as s:
            audit.record(s, "camera.still", actor="system", dossier_id=conn.dossier_id,
                         session_id=conn.session_id, participant_id=conn.participant.id,
                         data={"key": stored.key, "sha256": stored.sha256,
                               "size": stored.size, "server_time": _iso(at),
                               "connection": conn.id})
            await s.commit()

    def _speaker_changed(self, session_id: str, member: str | None) -> None:
        """The room's active speaker changed (called on the packet path): tell everyone."""
        self._notice(self.broadcast(session_id, {"type": "speaker", "participant_id": member}))

    async def set_media_state(self, conn: Connection, *, audio: bool, video: bool) -> None:
        """``conn``'s page says its microphone / camera is on or off: the others are
        told, and a change is audited as *declared* by the page (the server's own
        camera check is a separate record)."""
        state = {"audio": audio, "video": video}
        if conn.media_state == state:
            return
        first = conn.media_state is None
        if not first and conn.media_state is not None and (
                conn.media_state["video"] != video) and conn.peer.camera is not None:
            conn.peer.camera.sample_soon()  # a hint: the server looks for itself
        conn.media_state = state
        if not (first and audio and video):  # joining with both on is the normal case
            async with self._db.session() as s:
                audit.record(s, "participant.switches", actor=f"participant:{conn.participant.id}",
                             dossier_id=conn.dossier_id, session_id=conn.session_id,
                             participant_id=conn.participant.id,
                             data={"microphone": audio, "camera": video, "declared_by": "page"})
                await s.commit()
        await _send([c for c in self.connections(conn.session_id) if c is not conn],
                    {"type": "media_state", "participant_id": conn.participant.id, **state})

    async def set_sharing(self, conn: Connection, sharing: bool) -> None:
        """``conn`` started or stopped sharing its screen: the others are shown it (the
        latest share first) and it is recorded like any other track."""
        room = self._rooms.get(conn.session_id)
        if room is None or conn.closed.is_set():
            return
        was = conn.participant.id in room.sharing()
        changed = room.set_sharing(conn.participant.id, sharing)
        now = conn.participant.id in room.sharing()
        if was != now:
            event = "participant.screen_started" if now else "participant.screen_stopped"
            async with self._db.session() as s:
                audit.record(s, event,
                             actor=f"participant:{conn.participant.id}",
                             dossier_id=conn.dossier_id, session_id=conn.session_id,
                             participant_id=conn.participant.id,
                             data={"connection": conn.id})
                await s.commit()
        await self._announce_slots(conn.session_id, changed)

    async def _announce_slots(self, session_id: str, members: set[str]) -> None:
        """Tell each of ``members`` which participant each of its receive slots shows."""
        room = self._rooms.get(session_id)
        by_id = self._sessions.get(session_id, {})
        if room is None:
            return
        for member in members:
            conn = by_id.get(member)
            if conn is None or conn.ws.closed:
                continue
            slots = []
            for slot in room.assignments(member):
                source = by_id.get(source_member(slot.track.source)) if slot.track.source else None
                slots.append({
                    "mid": slot.mid, "kind": slot.kind,
                    "participant": None if source is None else {
                        "id": source.participant.id, "name": public_name(source.participant),
                        "role": source.participant.role,
                    },
                })
            await _send([conn], {"type": "slots", "slots": slots})

    async def _finish(self, conn: Connection, reason: str) -> None:
        self.camera_rule.disconnected(conn)
        await self._departures.ended(conn.session_id, conn.dossier_id, conn.participant.id,
                                     conn.id, reason)
        room = self._rooms.get(conn.session_id)
        if room is not None:
            # Stop forwarding first: the others stop receiving a peer that is going away.
            await self._announce_slots(conn.session_id, room.leave(conn.participant.id))
            if not room.members() and not self._sessions.get(conn.session_id):
                self._rooms.pop(conn.session_id, None)
        results = await conn.peer.close()
        if not conn.ws.closed:
            await conn.ws.close()
        await self.segments.settle(10.0)  # the last segments are entered first
        for result in results:
            await keep_recording(
                self._db, self._store, result, session_id=conn.session_id,
                dossier_id=conn.dossier_id, participant_id=conn.participant.id,
                connection_id=conn.id, opened_at=conn.opened_at,
                assembler=self.worker,
            )
            await self.segments.assembled(conn.id, result.path.stem)

    async def end_session(self, session_id: str) -> None:
        """Tell everyone the session ended, close their connections, store media; returns
        once every connection's tracks of the session are stored (or failed)."""
        async with self.lock(session_id):
            conns = self.connections(session_id)
            self.lobby.end(session_id)
        await _send(conns, {"type": "session_ended"})
        await asyncio.gather(*(self.close(c, "session_ended") for c in conns))
        await self._departures.settle(session_id)
        await self.camera_rule.stop(session_id)
        # Connections that left before the end may still be putting their tracks
        # together (minutes for a long meeting): what comes after the end — the
        # transcript, the composite — must find them stored.
        prefix = f"finish:{session_id}:"
        await asyncio.gather(*(t for t in list(self._finishing)
                               if t.get_name().startswith(prefix)), return_exceptions=True)

    async def recover(self) -> Recovered:
        """At start-up: finish what a crashed process left (:mod:`server.recovery`)."""
        return await recover(self._db, self._store, self.segments, self._settings.spool_dir,
                             self.worker)

    async def shutdown(self) -> None:
        conns = [c for by in self._sessions.values() for c in by.values()]
        await asyncio.gather(
            *(self.close(c, "server_shutdown") for c in conns), return_exceptions=True
        )
        # Closes whose callers were cancelled are still storing: let them finish.
        await asyncio.gather(*self._finishing, return_exceptions=True)
        await self._departures.settle(None)
        await self.camera_rule.stop(None)
        await self.segments.close()
        await asyncio.to_thread(self._workers.close)
        await asyncio.to_thread(self.worker.shutdown)


def _track_of(conn: Connection, key: str) -> TrackOf:
    return TrackOf(conn.session_id, conn.dossier_id, conn.participant.id, conn.id, key,
                   SOURCE_OF_KEY[key.split("-", 1)[0]])


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


async def _send(conns: Iterable[Connection], message: dict[str, Any]) -> None:
    """Send ``message`` to each of ``conns`` still connected; one that vanished meanwhile
    is skipped (its own handler closes it), one not yet welcomed gets it after."""
    for conn in conns:
        if not conn.welcomed:
            conn.early.append(message)
        elif not conn.ws.closed:
            try:
                await conn.ws.send_json(message)
            except ConnectionError:
                pass
