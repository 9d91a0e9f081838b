"""Transcribing sessions, seen from the server: queue the job, keep a worker, give back
lost jobs.

:class:`TranscriptionService` enters a pending transcript and puts the job on the queue
(:mod:`server.jobs`); the work itself runs in a worker process
(:mod:`server.transcription_job`, whose class this one extends). The model is checked at
start-up, so a missing or corrupt model is reported in the log straight away — and, if
a job then needs it, on the transcript as a catalogue error code rather than a stack
trace. Jobs left pending or running by a stopped process are given back at start; a job
whose worker died or whose heartbeat stopped is given back while running.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from media.tasks import cancel_and_wait
from server import audit
from server.database import Database
from server.jobs import STALE_S, Queue, WorkerProcess
from server.models import (
    MeetingSession,
    RecordingSegment,
    SegmentTranscript,
    Transcript,
    utcnow,
)
from server.settings import Settings
from server.transcription_job import TranscriptionJobs
from storage import ObjectStore
from transcription import (
    ModelError,
    resolve_model,
)

log = logging.getLogger(__name__)


class TranscriptionService(TranscriptionJobs):
    """The server's side: queue jobs, keep a worker running, give back lost jobs. The
    job itself runs in a worker (:class:`~server.transcription_job.TranscriptionJobs`)."""

    def __init__(self, db: Database, store: ObjectStore, settings: Settings) -> None:
        super().__init__(db, store, settings)
        self._model_check: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self.model_error: ModelError | None = None
        self.model_path: Path | None = None
        self._jobs: Queue | None = None
        self.worker: WorkerProcess | None = None

    async def start(self) -> None:
        """Check the model; give back jobs a stopped process left; watch heartbeats."""
        self._jobs = await asyncio.to_thread(Queue, self._settings)
        if self._settings.run_worker:
            self.worker = WorkerProcess(self._settings, self._requeue_worker)
        self._model_check = asyncio.create_task(
            self._check_model(), name="transcription-model-check"
        )
        requeued = await self._requeue(stale_only=False)
        if requeued:
            log.info("resuming %d transcriptions", requeued)
        self._watch = asyncio.create_task(self._watch_heartbeats(), name="transcription-watch")

    async def close(self) -> None:
        await cancel_and_wait(self._watch)
        if self.worker is not None:
            await self.worker.close()
        if self._model_check is not None:
            await self._model_check

    async def enqueue(self, session_id: str) -> None:
        """Schedule a transcription of ``session_id`` (a pending transcript row now)."""
        async with self._db.session() as s:
            session = await s.get(MeetingSession, session_id)
            if session is None:
                raise LookupError(session_id)
            s.add(Transcript(session_id=session_id, status="pending", language=session.language))
            await s.commit()
        await self._submit(session_id, 1)

    async def segment_stored(self, row: RecordingSegment) -> None:
        """Incremental mode: an audio segment was stored; transcribe it now."""
        if row.kind != "audio":
            return
        async with self._db.session() as s:
            if await s.get(SegmentTranscript, row.id) is not None:
                return
            s.add(SegmentTranscript(segment_id=row.id, session_id=row.session_id))
            await s.commit()
        assert self._jobs is not None
        await asyncio.to_thread(self._jobs.segment, row.id)
        if self.worker is not None:
            await self.worker.ensure()

    async def _submit(self, session_id: str, attempt: int) -> None:
        assert self._jobs is not None
        await asyncio.to_thread(self._jobs.transcribe, session_id, attempt)
        if self.worker is not None:
            await self.worker.ensure()

    async def wait_idle(self) -> None:
        """Wait until no transcription is pending or running (for tests and shutdown)."""
        while True:
            async with self._db.session() as s:
                busy = (await s.execute(select(Transcript.id).where(
                    Transcript.status.in_(("pending", "running"))).limit(1))).first()
            if busy is None:
                return
            await asyncio.sleep(0.2)

    async def _requeue(self, *, stale_only: bool, worker: str | None = None) -> int:
        """Give jobs back to the queue: a dead ``worker``'s, those whose heartbeat stopped,
        or (``stale_only`` false, at start) every unfinished one. A job queued twice runs
        once: the worker claims its row first."""
        limit = utcnow() - timedelta(seconds=STALE_S)
        async with self._db.session() as s:
            rows = (await s.execute(select(Transcript).where(
                Transcript.status.in_(("pending", "running"))))).scalars().all()
            lost = [t for t in rows if t.status == "running" and (
                (worker is not None and t.worker == worker)
                or (t.heartbeat_at is None or t.heartbeat_at < limit))]
            chosen = lost if stale_only or worker else rows
            for t in lost:
                t.status, t.worker = "pending", None
                m = await s.get(MeetingSession, t.session_id)
                audit.record(s, "transcript.requeued", session_id=t.session_id,
                             dossier_id=m.dossier_id if m else None,
                             data={"transcript_id": t.id, "worker": worker or "stale"})
            await s.commit()
            jobs = [(t.session_id, t.attempts + 1) for t in chosen]
        for session_id, attempt in dict(jobs).items():
            await self._submit(session_id, attempt)
        return len(jobs)

    async def _requeue_worker(self, worker: str) -> None:
        await self._requeue(stale_only=True, worker=worker)

    async def _watch_heartbeats(self) -> None:
        while True:
            await asyncio.sleep(STALE_S / 4)
            try:
                await self._requeue(stale_only=True)
            except Exception:  # the watch must outlive a database hiccup
                log.exception("checking transcription heartbeats failed")

    # -- model ----------------------------------------------------------------------

    async def _check_model(self) -> None:
        try:
            self.model_path = await asyncio.to_thread(
                resolve_model, self._settings.whisper_model, self._settings.model_cache_dir
            )
            log.info("Whisper model ready: %s", self.model_path)
        except ModelError as exc:
            self.model_error = exc
            log.error("Whisper model %r is not usable: %s", self._settings.whisper_model, exc)
