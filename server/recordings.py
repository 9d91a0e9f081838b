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

from media.assemble import Piece, assemble
from media.recorder import RecordingResult
from server import audit
from server.database import Database
from server.models import Recording
from storage import ObjectStore, StorageError
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
        pieces = [Piece(seg.path, seg.offset_s) for seg in result.segments]
        made = await asyncio.get_running_loop().run_in_executor(
            assembler, assemble, pieces, result.path)
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
    async with db.session() as s:
        s.add(rec)
        await s.flush()
        data["recording_id"] = rec.id
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
    if stored:
        # The store confirmed it and the row is committed: the spool copy may go.
        await asyncio.to_thread(_remove_spool_file, result.path)


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _remove_spool_file(path: Path) -> None:
    path.unlink(missing_ok=True)
    # Tidy the now-empty connection directory; a non-empty one stays.
    try:
        path.parent.rmdir()
    except OSError:
        pass
