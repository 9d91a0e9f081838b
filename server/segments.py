"""Keeping recording segments during the session: hash, record, upload, retry.

When a track's segment closes (:class:`media.recorder.Segment`), :meth:`SegmentKeeper.
closed` hashes the file (in a thread), enters it (``recording_segments``, status
``spooled``) with an audit event ``recording.segment_closed`` carrying its SHA-256, and
queues it for upload. One uploader task puts segments into the object store in order;
while the store is down it waits and tries again (1 s, doubling to ``retry_max_s``), so a
storage outage delays segments but loses none. Once the store confirms one the row is
``stored`` (``recording.segment_stored``).

A spool file is deleted only when the store has confirmed it *and* its track's continuous
file has been assembled and stored (:meth:`SegmentKeeper.assembled`): until then the
assembler reads segments from the spool. At start-up :meth:`SegmentKeeper.resume` queues
every segment a previous process left ``spooled``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from media.recorder import Segment
from media.tasks import cancel_and_wait
from server import audit
from server.database import Database, is_transient
from server.models import MeetingSession, RecordingSegment, utcnow
from storage import ObjectExists, ObjectStore, StorageError, sha256_file
from storage.keys import recording_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackOf:
    """Whose track a segment belongs to."""

    session_id: str
    dossier_id: str
    participant_id: str
    connection_id: str
    track: str  # the peer's key: audio-0, video-1, screen-3
    source: str


def segment_key(owner: TrackOf, seq: int) -> str:
    return recording_key(owner.dossier_id, owner.session_id, owner.participant_id,
                         f"{owner.connection_id}-{owner.track}-{seq:05d}", "webm")


# Segments stored at once. One at a time fell behind in the 20-participant soak (~2 of
# the 4 segments a second closing were stored): each takes several database round trips
# and a file copy, each an await on a loop busy with media, and they need not wait for
# each other (the audit chain takes its head inside each transaction).
UPLOADERS = 4
# Closed segments entered at once. Each holds a database connection while it waits for
# SQLite's single write lock; unbounded, the 20-participant soak's ~4 segments a second
# held every pooled connection, and joins, leaves, camera events and /metrics waited
# 30 s for one and failed. The others wait here, holding nothing (the file is spooled).
ENTERING = 2


class SegmentKeeper:
    def __init__(self, db: Database, store: ObjectStore, *, retry_max_s: float = 30.0) -> None:
        self._db = db
        self._store = store
        self._retry_max_s = retry_max_s
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()  # (row id, dossier)
        self._tasks: list[asyncio.Task[None]] = []
        self._keeping: set[asyncio.Task[None]] = set()
        self._assembled: set[tuple[str, str]] = set()  # (connection, track)
        self._entering = asyncio.Semaphore(ENTERING)
        self._entering_now = 0
        self.entering_most = 0  # the most segments entered at once (for the tests)
        self.pending: dict[str, int] = {}  # session id -> segments not yet stored
        # Told of every stored segment (incremental transcription), if set.
        self.on_stored: Callable[[RecordingSegment], Awaitable[None]] | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._upload_forever()) for _ in range(UPLOADERS)]

    def closed(self, owner: TrackOf, segment: Segment) -> None:
        """A segment closed (called on the event loop): keep it."""
        task = asyncio.get_running_loop().create_task(self._keep(owner, segment))
        self._keeping.add(task)
        task.add_done_callback(self._keeping.discard)

    async def _keep(self, owner: TrackOf, segment: Segment) -> None:
        try:
            digest, size = await asyncio.to_thread(sha256_file, segment.path)
        except OSError as exc:
            log.error("segment %s vanished before it was hashed: %s", segment.path, exc)
            return
        delay = 1.0
        while True:
            try:
                async with self._entering:
                    self._entering_now += 1
                    self.entering_most = max(self.entering_most, self._entering_now)
                    try:
                        row_id = await self._enter(owner, segment, digest, size)
                    finally:
                        self._entering_now -= 1
                break
            except Exception as exc:
                if not is_transient(exc):
                    raise
                # A segment is never given up for a database that passes (nor is it lost
                # while waiting: the file stays in the spool).
                log.warning("segment %s not entered yet (%s); will retry", segment.path.name,
                            exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_s)
        await self.enqueue(row_id, owner.dossier_id, owner.session_id)

    async def _enter(self, owner: TrackOf, segment: Segment, digest: str, size: int) -> str:
        """Enter a closed segment and audit it (one transaction); returns its row id."""
        row = RecordingSegment(
            session_id=owner.session_id, participant_id=owner.participant_id,
            connection_id=owner.connection_id, track=owner.track, kind=segment.kind,
            source=owner.source, seq=segment.seq,
            started_at=datetime.fromtimestamp(segment.first_received_at, UTC),
            ended_at=datetime.fromtimestamp(segment.last_received_at, UTC),
            offset_s=round(segment.offset_s, 6), duration_s=segment.duration_s,
            frames=segment.frames, sha256=digest, size=size, spool_path=str(segment.path),
            object_key=segment_key(owner, segment.seq),
        )
        async with self._db.session() as s:
            s.add(row)
            await s.flush()
            audit.record(s, "recording.segment_closed", dossier_id=owner.dossier_id,
                         session_id=owner.session_id, participant_id=owner.participant_id,
                         data={"segment": row.id, "track": owner.track, "seq": segment.seq,
                               "sha256": digest, "size": size, "offset_s": row.offset_s,
                               "duration_s": segment.duration_s,
                               "connection": owner.connection_id})
            await s.commit()
        return row.id

    async def enqueue(self, row_id: str, dossier_id: str, session_id: str) -> None:
        """Queue the entered segment ``row_id`` for upload."""
        self.pending[session_id] = self.pending.get(session_id, 0) + 1
        await self._queue.put((row_id, dossier_id))

    async def resume(self) -> int:
        """Queue what a previous process left unstored; returns how many."""
        async with self._db.session() as s:
            rows = (await s.execute(select(RecordingSegment).where(
                RecordingSegment.status == "spooled").order_by(RecordingSegment.created_at)
            )).scalars().all()
            dossiers = {m.id: m.dossier_id for m in (await s.execute(select(MeetingSession).where(
                MeetingSession.id.in_({r.session_id for r in rows})))).scalars()}
        for row in rows:
            await self.enqueue(row.id, dossiers.get(row.session_id, ""), row.session_id)
        return len(rows)

    async def _upload_forever(self) -> None:
        while True:
            row_id, dossier_id = await self._queue.get()
            delay = 1.0
            while not await self._upload_or_retry(row_id, dossier_id):
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_s)

    async def _upload_or_retry(self, row_id: str, dossier_id: str) -> bool:
        """:meth:`_upload`, and False (try again) when the database fails for a while:
        one error must not end this task, or no later segment would be stored."""
        try:
            return await self._upload(row_id, dossier_id)
        except Exception as exc:
            if is_transient(exc):
                log.warning("segment %s not marked stored yet (%s); will retry", row_id, exc)
                return False
            # Not one to wait out: the segment stays spooled (the next start queues it
            # again) and the others go on.
            log.exception("segment %s could not be stored", row_id)
            return True

    async def _upload(self, row_id: str, dossier_id: str) -> bool:
        """Store one segment; False to try again later (the store is failing)."""
        async with self._db.session() as s:
            row = await s.get(RecordingSegment, row_id)
        if row is None or row.status == "stored":
            return True
        path = Path(row.spool_path)
        try:
            try:
                obj = await self._store.put_file(row.object_key, path, "video/webm")
            except ObjectExists:
                obj = await self._store.stat(row.object_key)  # a retry after a lost answer
                if obj.sha256 != row.sha256:
                    raise
        except FileNotFoundError:
            log.error("segment %s is gone from the spool; it cannot be stored", path)
            return True
        except StorageError as exc:
            log.warning("segment %s not stored yet (%s); will retry", path.name, exc)
            return False
        async with self._db.session() as s:
            stored = await s.get(RecordingSegment, row_id)
            assert stored is not None
            stored.status, stored.stored_at = "stored", utcnow()
            audit.record(s, "recording.segment_stored", dossier_id=dossier_id or None,
                         session_id=stored.session_id, participant_id=stored.participant_id,
                         data={"segment": stored.id, "key": stored.object_key,
                               "sha256": obj.sha256, "size": obj.size})
            await s.commit()
        self.pending[row.session_id] = max(0, self.pending.get(row.session_id, 1) - 1)
        if self.on_stored is not None:
            try:
                await self.on_stored(stored)
            except Exception:  # a queue hiccup must not stop uploads
                log.exception("could not queue segment %s for transcription", row_id)
        if (row.connection_id, row.track) in self._assembled:
            await asyncio.to_thread(path.unlink, True)
        return True

    async def assembled(self, connection_id: str, track: str) -> None:
        """The track's continuous file is stored: drop the spool files of its stored
        segments (the others go as soon as the store confirms them)."""
        self._assembled.add((connection_id, track))
        async with self._db.session() as s:
            rows = (await s.execute(select(RecordingSegment).where(
                RecordingSegment.connection_id == connection_id,
                RecordingSegment.track == track, RecordingSegment.status == "stored",
            ))).scalars().all()
        for row in rows:
            await asyncio.to_thread(Path(row.spool_path).unlink, True)

    async def settle(self, within_s: float) -> None:
        """Wait (up to ``within_s``) for segments being hashed to be entered."""
        if self._keeping:
            await asyncio.wait(set(self._keeping), timeout=within_s)

    async def close(self) -> None:
        await self.settle(10.0)
        for task in self._tasks:
            await cancel_and_wait(task, name="segment uploads")
