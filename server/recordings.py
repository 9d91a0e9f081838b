"""Keeping a finished recording: the continuous file, the object store, its row, its
audit event.

A track is recorded in segments (kept one by one during the session:
:mod:`server.segments`); when the track ends its continuous file is assembled from them
without re-encoding (:mod:`media.assemble`) in the given worker process. A damaged
segment is left out of it and named in the audit event. The continuous file's spool copy
is deleted only after the store has confirmed it and the database row is committed. If
the upload fails the file stays in the spool and both the row (status ``failed``) and the
audit event say where it is, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, select

from media.assemble import Piece, assemble
from media.recorder import RecordingResult
from server import audit
from server.database import Database, retry_transient
from server.models import Recording, RecordingSegment
from storage import ObjectStore, StorageError, sha256_file
from storage.keys import recording_key

log = logging.getLogger(__name__)


async def keep_recording(
    db: Database,
    store: ObjectStore,
    result: RecordingResult,
    *,
    session_id: str,
    dossier_id: str,
    participant_id: str,
    connection_id: str,
    opened_at: datetime,
    assembler: Executor | None = None,
) -> None:
    """Store ``result`` (one track of one connection), enter it and audit it.

    A track that received nothing is entered as ``empty``; a store failure as ``failed``.
    """
    rec = Recording(
        session_id=session_id,
        participant_id=participant_id,
        kind=result.kind,
        source=result.source,
        codec=result.codec,
        container=result.container,
        started_at=_utc(result.started_at) or opened_at,
        ended_at=_utc(result.ended_at),
        duration_s=result.duration_s,
        frames=result.frames,
        error=result.error,
    )
    data: dict[str, Any] = {
        "kind": result.kind,
        "source": result.source,
        "connection": connection_id,
        "frames": result.frames,
        "dropped": result.dropped,
        "duration_s": result.duration_s,
    }
    stored = False
    if result.segments:
        pieces, restored = await _checked_pieces(db, store, result, connection_id)
        if restored:
            data["segments_restored"] = restored
        made = await asyncio.get_running_loop().run_in_executor(
            assembler, assemble, pieces, result.path)
        for piece in pieces:  # copies fetched from the store for this assembly only
            if piece.path not in {seg.path for seg in result.segments}:
                await asyncio.to_thread(piece.path.unlink, True)
        data["segments"] = len(result.segments)
        if made.skipped or made.truncated:
            log.warning("%s: segments left out %s, truncated %s", result.path, made.skipped,
                        made.truncated)
            data.update(segments_skipped=made.skipped, segments_truncated=made.truncated)
    if result.frames == 0 or not result.path.exists():
        rec.status, event = "empty", "recording.empty"
    else:
        key = recording_key(
            dossier_id,
            session_id,
            participant_id,
            f"{connection_id}-{result.path.stem}",
            "webm",
        )
        try:
            obj = await store.put_file(key, result.path, f"{result.kind}/webm")
        except StorageError as exc:
            log.error("storing %s failed (%s); it stays in the spool", result.path, exc)
            rec.status, rec.error, event = "failed", exc.code, "recording.store_failed"
            data["spool_path"] = str(result.path)
        else:
            rec.status, rec.object_key, rec.sha256, rec.size = (
                "stored",
                key,
                obj.sha256,
                obj.size,
            )
            event, stored = "recording.stored", True
            data.update(key=key, sha256=obj.sha256, size=obj.size)
    values = {attr.key: getattr(rec, attr.key) for attr in inspect(Recording).column_attrs
              if getattr(rec, attr.key) is not None}

    async def enter() -> None:
        row = Recording(**values)  # a fresh row for each try: a failed flush spoils one
        async with db.session() as s:
            s.add(row)
            await s.flush()
            data["recording_id"] = row.id
            audit.record(
                s,
                event,
                actor="system",
                dossier_id=dossier_id,
                session_id=session_id,
                participant_id=participant_id,
                data=data,
            )
            await s.commit()

    # Evidence: a track stored but not entered would be found by nobody. In the
    # 20-participant soak SQLite's write lock was not had within 30 s for five tracks,
    # and their rows, audit events and the connections' later tracks were lost.
    await retry_transient(enter, f"recording {result.path.name}")
    if stored:
        # The store confirmed it and the row is committed: the spool copy may go.
        await asyncio.to_thread(_remove_spool_file, result.path)


async def _checked_pieces(db: Database, store: ObjectStore, result: RecordingResult,
                          connection_id: str) -> tuple[list[Piece], list[str]]:
    """The track's segments to assemble, each checked against the hash taken when it
    closed; a spool copy that no longer matches (or is gone) is replaced by the stored
    one when the store has it (and it matches), else left for the assembler to judge.
    Returns the pieces and the names of the segments restored from the store."""
    async with db.session() as s:
        rows = {r.seq: r for r in (await s.execute(select(RecordingSegment).where(
            RecordingSegment.connection_id == connection_id,
            RecordingSegment.track == result.path.stem))).scalars()}
    pieces, restored = [], []
    for seg in result.segments:
        path, row = seg.path, rows.get(seg.seq)
        if row is not None:
            try:
                digest, _ = await asyncio.to_thread(sha256_file, path)
            except OSError:
                digest = ""
            if digest != row.sha256 and row.status == "stored":
                path = path.with_name(f"{path.stem}.restored{path.suffix}")
                try:
                    await store.download(row.object_key, path)
                    copy, _ = await asyncio.to_thread(sha256_file, path)
                    if copy != row.sha256:
                        raise StorageError(f"the stored copy's SHA-256 is {copy}")
                    restored.append(seg.path.name)
                except StorageError as exc:
                    log.warning("segment %s could not be restored: %s", seg.path.name, exc)
                    await asyncio.to_thread(path.unlink, True)
                    path = seg.path
        pieces.append(Piece(path, seg.offset_s))
    return pieces, restored


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _remove_spool_file(path: Path) -> None:
    path.unlink(missing_ok=True)
    # Tidy the now-empty connection directory; a non-empty one stays.
    try:
        path.parent.rmdir()
    except OSError:
        pass
