"""After the session: per-participant continuous files and the session composite.

:class:`CompositeService` takes a session (when it ends, or when a crashed one is
recovered) and, one job at a time:

1. **One clock.** Every segment is placed on the session's timeline: its track's first
   frame by the server's receive time (from the session's start), the segment within the
   track by its RTP-derived offset. Where a participant has nothing (muted track that
   sent nothing, disconnected, lost) the timeline has a gap, listed in ``details.gaps``.
2. **Per-participant files**: for each participant, one audio and one camera file from
   all their segments (every connection), remuxed without re-encoding in the worker
   process (:mod:`media.assemble`), stored with their SHA-256.
3. **The composite** from those files by ffmpeg (:mod:`media.composite`), its own
   process; ``progress`` on the row as it goes (the session page shows it); stored
   with its SHA-256 and audited (``composite.stored``; a failure: ``composite.failed``).

Jobs left pending or running by a stopped process are taken up again at start.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from concurrent.futures import Executor
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from sqlalchemy import select

from media.assemble import Piece, assemble
from media.composite import CompositeError, Person, Track, composite_args, run_composite
from media.tasks import cancel_and_wait
from server import audit
from server.database import Database
from server.models import (
    Composite,
    MeetingSession,
    Participant,
    RecordingSegment,
    public_name,
    utcnow,
)
from storage import ObjectStore, StorageError, session_prefix, validate_key

log = logging.getLogger(__name__)

GAP_S = 1.0  # less than this between two pieces of a participant is not a gap


def timeline(rows: list[RecordingSegment], origin: float) -> dict[tuple[str, str], list[Piece]]:
    """(participant, audio|camera) → segments on the session timeline, in order."""
    first: dict[tuple[str, str], tuple[float, float]] = {}  # track → (start, offset)
    for r in sorted(rows, key=lambda r: (r.connection_id, r.track, r.seq)):
        first.setdefault((r.connection_id, r.track), (r.started_at.timestamp(), r.offset_s))
    out: dict[tuple[str, str], list[Piece]] = {}
    for r in rows:
        if r.source == "screen":
            continue  # shared screens are their own recordings, not tiles
        start, offset0 = first[(r.connection_id, r.track)]
        at = start - origin + (r.offset_s - offset0)
        kind = "audio" if r.kind == "audio" else "camera"
        out.setdefault((r.participant_id, kind), []).append(Piece(Path(r.spool_path), at))
    for pieces in out.values():
        pieces.sort(key=lambda p: p.offset_s)
    return out


def gaps(pieces: list[Piece], durations: dict[Path, float], length: float
         ) -> list[dict[str, float]]:
    """Where a participant's file has nothing, on the session timeline (seconds)."""
    out, cursor = [], 0.0
    for p in pieces:
        if p.offset_s - cursor >= GAP_S:
            out.append({"from": round(cursor, 3), "to": round(p.offset_s, 3)})
        cursor = max(cursor, p.offset_s + durations.get(p.path, 0.0))
    if length - cursor >= GAP_S:
        out.append({"from": round(cursor, 3), "to": round(length, 3)})
    return out


class CompositeService:
    def __init__(self, db: Database, store: ObjectStore, worker: Executor | None) -> None:
        self._db = db
        self._store = store
        self._worker = worker
        self._queue: asyncio.Queue[str] = asyncio.Queue()  # composite row ids
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        async with self._db.session() as s:
            stale = (await s.execute(select(Composite.id).where(
                Composite.status.in_(("pending", "running"))))).scalars().all()
        for cid in stale:
            self._idle.clear()
            await self._queue.put(cid)

    async def enqueue(self, session_id: str) -> str:
        """A new composite job for ``session_id``; returns its id."""
        async with self._db.session() as s:
            row = Composite(session_id=session_id)
            s.add(row)
            await s.commit()
            cid = row.id
        self._idle.clear()
        await self._queue.put(cid)
        return cid

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def close(self) -> None:
        await cancel_and_wait(self._task, name="composites")

    async def _run(self) -> None:
        while True:
            cid = await self._queue.get()
            try:
                await self._build(cid)
            except Exception as exc:  # one broken session must not stop the others
                log.exception("composite %s failed", cid)
                await self._failed(cid, f"{type(exc).__name__}: {exc}")
            if self._queue.empty():
                self._idle.set()

    async def _set(self, cid: str, **values: Any) -> None:
        async with self._db.session() as s:
            row = await s.get(Composite, cid)
            assert row is not None
            for k, v in values.items():
                setattr(row, k, v)
            await s.commit()

    async def _failed(self, cid: str, error: str) -> None:
        async with self._db.session() as s:
            row = await s.get(Composite, cid)
            if row is None:
                return
            row.status, row.error, row.completed_at = "failed", error[:4000], utcnow()
            m = await s.get(MeetingSession, row.session_id)
            audit.record(s, "composite.failed", session_id=row.session_id,
                         dossier_id=m.dossier_id if m else None,
                         data={"composite": cid, "error": error[:500]})
            await s.commit()

    async def _build(self, cid: str) -> None:
        await self._set(cid, status="running", progress=0.0)
        async with self._db.session() as s:
            row = await s.get(Composite, cid)
            assert row is not None
            m = await s.get(MeetingSession, row.session_id)
            assert m is not None
            people = {p.id: p for p in (await s.execute(select(Participant).where(
                Participant.session_id == m.id))).scalars()}
            segs = list((await s.execute(select(RecordingSegment).where(
                RecordingSegment.session_id == m.id))).scalars())
        if not segs:  # nothing was recorded: nothing to compose (not a failure)
            await self._set(cid, status="empty", progress=1.0, completed_at=utcnow())
            return
        origin = (m.started_at or min(r.started_at for r in segs)).timestamp()
        end = (m.ended_at.timestamp() if m.ended_at else max(r.ended_at.timestamp()
                                                            for r in segs))
        length = max(0.1, end - origin)
        prefix = session_prefix(m.dossier_id, m.id)
        loop = asyncio.get_running_loop()
        with tempfile.TemporaryDirectory(prefix="hoidong-composite-") as tmp:
            work = Path(tmp)
            placed = timeline(segs, origin)
            by_path = {Path(r.spool_path): r for r in segs}
            details: dict[str, Any] = {"participants": {}, "origin": origin,
                                       "length_s": round(length, 3)}
            tracks: dict[str, list[Track]] = {}
            for (pid, kind), pieces in sorted(placed.items()):
                local = []
                for piece in pieces:
                    seg = by_path[piece.path]
                    path = piece.path
                    if not await asyncio.to_thread(path.exists):
                        path = work / f"{seg.id}.webm"
                        try:
                            await self._store.download(seg.object_key, path)
                        except StorageError as exc:
                            log.warning("segment %s unavailable: %s", seg.id, exc)
                    local.append(Piece(path, piece.offset_s))
                out = work / f"{pid}-{kind}.webm"
                made = await loop.run_in_executor(self._worker, assemble, local, out)
                entry = details["participants"].setdefault(pid, {})
                entry[kind] = {"skipped": made.skipped, "truncated": made.truncated,
                               "gaps": gaps(pieces, {Path(r.spool_path): r.duration_s
                                                     for r in segs}, length)}
                if not made.packets:
                    continue
                key = validate_key(f"{prefix}participants/{pid}/{kind}-{cid}.webm")
                media = "audio" if kind == "audio" else "video"
                obj = await self._store.put_file(key, out, f"{media}/webm")
                entry[kind].update(key=key, sha256=obj.sha256, size=obj.size)
                tracks.setdefault(pid, []).append(Track(out, media, local[0].offset_s))
            cast = [Person(public_name(people[pid]), t) for pid, t in tracks.items()
                    if pid in people]
            result = work / "composite.webm"
            await self._set(cid, details=details, progress=0.05)
            with as_file(files("font_roboto") / "files" / "Roboto-Regular.ttf") as font:
                args = await asyncio.to_thread(composite_args, cast, result, length_s=length,
                                               start_epoch=origin, font=font)
                last = [0.0]

                def progress(done: float) -> None:
                    if done - last[0] >= 0.05 or done >= 1.0:
                        last[0] = done
                        asyncio.run_coroutine_threadsafe(
                            self._set(cid, progress=round(0.05 + 0.9 * done, 3)), loop)

                try:
                    await asyncio.to_thread(run_composite, args, length, progress)
                except CompositeError as exc:
                    await self._failed(cid, str(exc))
                    return
            key = validate_key(f"{prefix}composite/{cid}.webm")
            obj = await self._store.put_file(key, result, "video/webm")
        async with self._db.session() as s:
            row = await s.get(Composite, cid)
            assert row is not None
            row.status, row.progress, row.completed_at = "done", 1.0, utcnow()
            row.object_key, row.sha256, row.size = key, obj.sha256, obj.size
            row.duration_s, row.details = round(length, 3), details
            audit.record(s, "composite.stored", dossier_id=m.dossier_id, session_id=m.id,
                         data={"composite": cid, "key": key, "sha256": obj.sha256,
                               "size": obj.size, "duration_s": round(length, 3),
                               "participants": len(cast)})
            await s.commit()
