"""After a crash: find what the previous process left and finish it.

Run once at start-up, before anyone connects (:func:`recover`):

1. **Interrupted connections.** A connection the audit log shows joined but never left
   was cut by the crash: its session gets ``session.interrupted`` (once per recovery)
   and the connection ``participant.left`` with reason ``server_crash``, dated by the
   last media the server kept of it. The session stays live: people may come back.
2. **Segments nobody entered.** Every segment file in the spool without a row — the
   segment being written when the process died (truncated: its readable part is kept)
   or one that closed just before — is hashed, entered (``recording.segment_recovered``)
   and queued for upload like any other. Segments already entered but not stored are
   queued by :meth:`server.segments.SegmentKeeper.resume`.
3. **Tracks never finished.** For every track with segments but no recording, the
   continuous file is assembled from them (in the worker process) and stored, as when a
   track ends normally (:func:`server.recordings.keep_recording`).

What a crash can lose is the part of the open segment that never reached the disk: at
most one segment per track.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
from sqlalchemy import select

from media.peer import SOURCE_OF_KEY
from media.recorder import CONTAINER, RecordingResult, Segment
from server import audit
from server.database import Database
from server.models import AuditEvent, MeetingSession, Recording, RecordingSegment, utcnow
from server.recordings import keep_recording
from server.segments import SegmentKeeper, TrackOf, segment_key
from storage import ObjectStore, sha256_file

log = logging.getLogger(__name__)

OPEN_KINDS = ("participant.joined", "participant.reconnected")
CODECS = {"audio": "opus", "video": "vp8"}


@dataclass
class Recovered:
    sessions: list[str]
    connections: int
    segments_found: int
    tracks_finished: int


def _open_connections(events: Sequence[AuditEvent]) -> dict[str, AuditEvent]:
    """connection id → the event that opened it, for connections never closed."""
    opened: dict[str, AuditEvent] = {}
    for e in events:
        conn = e.data.get("connection") if isinstance(e.data, dict) else None
        if not isinstance(conn, str):
            continue
        if e.kind in OPEN_KINDS:
            opened[conn] = e
            previous = e.data.get("previous_connection")
            if isinstance(previous, str):
                opened.pop(previous, None)
        elif e.kind in ("participant.left", "participant.connection_lost"):
            opened.pop(conn, None)
    return opened


def _read_segment(path: Path) -> tuple[int, float]:
    """(frames, seconds) readable in a segment file; (0, 0) if none (blocking)."""
    frames, last = 0, 0.0
    try:
        with av.open(str(path)) as c:
            stream = c.streams[0]
            assert stream.time_base is not None
            try:
                for packet in c.demux(stream):
                    if packet.pts is not None and packet.size:
                        frames += 1
                        last = float(packet.pts * stream.time_base)
            except (av.FFmpegError, ValueError):
                pass  # truncated: what was read counts
    except (av.FFmpegError, OSError, ValueError, IndexError):
        return 0, 0.0
    return frames, last


async def recover(db: Database, store: ObjectStore, keeper: SegmentKeeper, spool: Path,
                  assembler: Executor | None) -> Recovered:
    """Finish what a previous process left (see the module doc)."""
    done = Recovered([], 0, 0, 0)
    async with db.session() as s:
        live = (await s.execute(select(MeetingSession).where(
            MeetingSession.status.in_(("scheduled", "live"))))).scalars().all()
    for m in live:
        async with db.session() as s:
            events = (await s.execute(select(AuditEvent).where(
                AuditEvent.session_id == m.id).order_by(AuditEvent.id))).scalars().all()
        cut = _open_connections(events)
        found = await _enter_spooled(db, m, spool, keeper)
        done.segments_found += found
        if cut:
            done.sessions.append(m.id)
            done.connections += len(cut)
            await _close_cut(db, m, cut)
        done.tracks_finished += await _finish_tracks(db, store, m, assembler, keeper)
    return done


async def _close_cut(db: Database, m: MeetingSession, cut: dict[str, AuditEvent]) -> None:
    async with db.session() as s:
        last_media = {}
        for conn in cut:
            row = (await s.execute(select(RecordingSegment).where(
                RecordingSegment.connection_id == conn)
                .order_by(RecordingSegment.ended_at.desc()).limit(1))).scalar_one_or_none()
            last_media[conn] = row.ended_at if row is not None else cut[conn].at
        audit.record(s, "session.interrupted", dossier_id=m.dossier_id, session_id=m.id,
                     data={"connections": sorted(cut), "detected_at": utcnow().isoformat(),
                           "reason": "server_restart"})
        for conn, opened in cut.items():
            audit.record(s, "participant.left", actor=f"participant:{opened.participant_id}",
                         dossier_id=m.dossier_id, session_id=m.id,
                         participant_id=opened.participant_id,
                         data={"connection": conn, "reason": "server_crash",
                               "server_time": last_media[conn].isoformat()})
        await s.commit()


async def _enter_spooled(db: Database, m: MeetingSession, spool: Path,
                         keeper: SegmentKeeper) -> int:
    """Hash and enter the spool's segment files that have no row; returns how many."""
    base = spool / m.id
    files = await asyncio.to_thread(lambda: sorted(base.glob("*/*/*-[0-9][0-9][0-9][0-9][0-9]"
                                                              ".webm")))
    if not files:
        return 0
    async with db.session() as s:
        known = {r.spool_path: r for r in (await s.execute(select(RecordingSegment).where(
            RecordingSegment.session_id == m.id))).scalars()}
    count = 0
    for path in files:
        if str(path) in known:
            continue
        participant, conn = path.parent.parent.name, path.parent.name
        track, seq_text = path.stem.rsplit("-", 1)
        kind = "audio" if track.startswith("audio") else "video"
        frames, seconds = await asyncio.to_thread(_read_segment, path)
        if frames == 0:
            log.warning("spooled segment %s holds no readable frame; kept, not entered", path)
            continue
        before = [r for r in known.values() if r.connection_id == conn and r.track == track]
        previous = max(before, key=lambda r: r.seq, default=None)
        offset = previous.offset_s + previous.duration_s if previous else 0.0
        started = previous.ended_at if previous else datetime.fromtimestamp(
            path.stat().st_mtime, UTC) - timedelta(seconds=seconds)
        digest, size = await asyncio.to_thread(sha256_file, path)
        owner = TrackOf(m.id, m.dossier_id, participant, conn, track,
                        SOURCE_OF_KEY[track.split("-", 1)[0]])
        row = RecordingSegment(
            session_id=m.id, participant_id=participant, connection_id=conn, track=track,
            kind=kind, source=owner.source, seq=int(seq_text), started_at=started,
            ended_at=started + timedelta(seconds=seconds), offset_s=round(offset, 6),
            duration_s=round(seconds, 3), frames=frames, sha256=digest, size=size,
            spool_path=str(path), object_key=segment_key(owner, int(seq_text)))
        async with db.session() as s:
            s.add(row)
            await s.flush()
            audit.record(s, "recording.segment_recovered", dossier_id=m.dossier_id,
                         session_id=m.id, participant_id=participant,
                         data={"segment": row.id, "track": track, "seq": row.seq,
                               "sha256": digest, "size": size, "frames": frames,
                               "connection": conn})
            await s.commit()
        known[str(path)] = row
        await keeper.enqueue(row.id, m.dossier_id, m.id)
        count += 1
    return count


async def _finish_tracks(db: Database, store: ObjectStore, m: MeetingSession,
                         assembler: Executor | None, keeper: SegmentKeeper) -> int:
    """Assemble and store every track of ``m`` that has segments but no recording."""
    async with db.session() as s:
        rows = (await s.execute(select(RecordingSegment).where(
            RecordingSegment.session_id == m.id).order_by(RecordingSegment.seq))).scalars().all()
        recs = (await s.execute(select(Recording.object_key).where(
            Recording.session_id == m.id))).scalars().all()
    finished = {Path(k).stem for k in recs if k}
    tracks: dict[tuple[str, str], list[RecordingSegment]] = {}
    for row in rows:
        tracks.setdefault((row.connection_id, row.track), []).append(row)
    count = 0
    for (conn, track), segs in tracks.items():
        if f"{conn}-{track}" in finished:
            continue
        first = segs[0]
        base = Path(first.spool_path).with_name(f"{track}.{CONTAINER}")
        pieces = []
        for row in segs:
            path = Path(row.spool_path)
            if row.status == "stored" and not await asyncio.to_thread(path.exists):
                await store.download(row.object_key, path)
            pieces.append(Segment(
                seq=row.seq, path=path, kind=row.kind, codec=CODECS[row.kind],
                clock_rate=1000, offset=round(row.offset_s * 1000),
                first_received_at=row.started_at.timestamp(),
                last_received_at=row.ended_at.timestamp(), frames=row.frames,
                duration_s=row.duration_s))
        last = segs[-1]
        result = RecordingResult(
            kind=first.kind, codec=CODECS[first.kind], container=CONTAINER, path=base,
            source=first.source, started_at=first.started_at.timestamp(),
            ended_at=last.ended_at.timestamp(),
            duration_s=round(last.offset_s + last.duration_s, 3),
            frames=sum(r.frames for r in segs), dropped=0, error=None,
            segments=tuple(pieces))
        await keep_recording(db, store, result, session_id=m.id, dossier_id=m.dossier_id,
                             participant_id=first.participant_id, connection_id=conn,
                             opened_at=first.started_at, assembler=assembler)
        await keeper.assembled(conn, track)
        count += 1
    return count
