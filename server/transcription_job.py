"""A transcription job: what a worker does with one session (or, in incremental mode,
one recording segment).

:class:`TranscriptionJobs` claims the session's unfinished transcript (so a job queued
twice runs once), keeps a heartbeat while it works, downloads each stored audio recording
from the object store (the evidence copy), transcribes it (or takes the lines its
segments got during the meeting), places it on the session timeline and stores the
merged JSON, WebVTT, SRT, text, per-speaker files, DOCX and PDF with their SHA-256.
:func:`run_job` and :func:`run_segment_job` are what the worker's tasks call
(:mod:`server.jobs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from server import audit
from server.database import Database
from server.i18n import t
from server.jobs import HEARTBEAT_S, STALE_S, worker_name
from server.models import (
    Dossier,
    MeetingSession,
    Participant,
    Recording,
    RecordingSegment,
    SegmentTranscript,
    SessionStatus,
    Transcript,
    TranscriptSegment,
    public_name,
    utcnow,
)
from server.search import fold
from server.settings import Settings
from server.transcript_docs import render_transcript_docx, render_transcript_pdf
from storage import ObjectStore, StorageError
from storage.keys import session_prefix, validate_key
from transcription import (
    AudioError,
    Speaker,
    SpeakerSegment,
    Transcriber,
    TranscriptionError,
    Word,
    for_speaker,
    initial_prompt,
    merge_by_time,
    resolve_model,
    to_json,
    to_srt,
    to_text,
    to_webvtt,
)
from transcription import TranscriptSegment as Line

log = logging.getLogger(__name__)



class TranscriptionJobs:
    """Runs transcription jobs (in a worker process; the server's service is one too)."""

    def __init__(self, db: Database, store: ObjectStore, settings: Settings) -> None:
        self._db = db
        self._store = store
        self._settings = settings
        self._transcriber: Transcriber | None = None
        self._load_lock = asyncio.Lock()

    async def run_segment(self, segment_id: str) -> None:
        """Transcribe one stored segment (in the worker); idempotent."""
        async with self._db.session() as s:
            job = await s.get(SegmentTranscript, segment_id)
            seg = await s.get(RecordingSegment, segment_id)
            if job is None or seg is None or job.status == "done":
                return
            session = await s.get(MeetingSession, seg.session_id)
            assert session is not None
            dossier = await s.get(Dossier, session.dossier_id)
        transcriber = await self._get_transcriber()
        language = session.language if transcriber.multilingual else "en"
        prompt = self._prompt(dossier)
        with tempfile.TemporaryDirectory(prefix="hoidong-asr-") as tmp:
            local = Path(tmp) / "segment.webm"
            await self._store.download(seg.object_key, local)
            try:
                lines = await asyncio.to_thread(
                    transcriber.transcribe, local, language=language, prompt=prompt,
                    others=self._settings.other_language_codes)
                result: list[Any] | None = [dataclasses.asdict(x) for x in lines]
                status, error = "done", None
            except (AudioError, ValueError) as exc:
                result, status, error = None, "failed", str(exc)
        async with self._db.session() as s:
            job = await s.get(SegmentTranscript, segment_id)
            assert job is not None
            job.status, job.result, job.error = status, result, error
            job.model, job.language, job.completed_at = (
                self._settings.whisper_model, language, utcnow())
            await s.commit()

    @staticmethod
    def _prompt(dossier: Dossier | None) -> Callable[[str | None], str | None]:
        """Whisper's prompt for a track in a given language: the dossier's vocabulary
        (or the default accreditation terms; none for English then)."""
        terms = dossier.vocabulary if dossier else None
        return lambda language: initial_prompt(terms, language)

    async def _incremental(self, rec: Recording, language: str) -> list[Line] | None:
        """The track's lines from its segments' transcripts, if every segment has one
        (same model and language); None otherwise (the track is transcribed whole)."""
        if rec.object_key is None:
            return None
        conn, _, track = Path(rec.object_key).stem.partition("-")
        async with self._db.session() as s:
            pairs = (await s.execute(
                select(RecordingSegment, SegmentTranscript)
                .outerjoin(SegmentTranscript,
                           SegmentTranscript.segment_id == RecordingSegment.id)
                .where(RecordingSegment.connection_id == conn,
                       RecordingSegment.track == track)
                .order_by(RecordingSegment.seq))).all()
        if not pairs or any(
                job is None or job.status != "done" or job.language != language
                or job.model != self._settings.whisper_model for _, job in pairs):
            return None
        out: list[Line] = []
        for seg, job in pairs:
            for raw in job.result or []:
                words = [Word(w["start"] + seg.offset_s, w["end"] + seg.offset_s, w["text"],
                              w["probability"]) for w in raw["words"]]
                out.append(Line(
                    start=raw["start"] + seg.offset_s, end=raw["end"] + seg.offset_s,
                    text=raw["text"], words=words, avg_logprob=raw["avg_logprob"],
                    no_speech_prob=raw["no_speech_prob"]))
        return out

    async def _get_transcriber(self) -> Transcriber:
        async with self._load_lock:
            if self._transcriber is None:
                s = self._settings
                path = await asyncio.to_thread(resolve_model, s.whisper_model, s.model_cache_dir)
                self._transcriber = await asyncio.to_thread(
                    Transcriber, path, cpu_threads=s.threads_per_track,
                    workers=s.whisper_parallel_tracks,
                    compute_type=s.whisper_compute_type, beam_size=s.whisper_beam_size,
                    temperature_fallback=s.whisper_temperature_fallback,
                    fallback_temperatures=s.fallback_temperatures,
                    batch_size=s.whisper_batch_size,
                )
            return self._transcriber

    # -- jobs -----------------------------------------------------------------------

    async def run_job(self, session_id: str, attempt: int) -> bool:
        """Run the job (in the worker); True if it should be tried again later."""
        row = await self._claim(session_id, attempt)
        if row is None:
            return False  # done, or being done by another worker
        beat = asyncio.get_running_loop().create_task(self._heartbeat(row))
        try:
            await self._transcribe(session_id)
        except (TranscriptionError, StorageError) as exc:
            if isinstance(exc, StorageError) and attempt < self._settings.job_retries:
                await self._release(row, f"{exc.code}: {exc}")
                return True
            await self._fail(session_id, exc.code, str(exc), exc.params)
        except OSError as exc:  # the database or the network, for a while
            if attempt < self._settings.job_retries:
                await self._release(row, f"{type(exc).__name__}: {exc}")
                return True
            await self._fail(session_id, "transcript.failed", f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            log.exception("transcription of session %s failed", session_id)
            await self._fail(session_id, "transcript.failed", f"{type(exc).__name__}: {exc}")
        finally:
            beat.cancel()
        return False

    async def _claim(self, session_id: str, attempt: int) -> Transcript | None:
        """Take the session's unfinished transcript for this worker, unless another
        worker holds it (running with a fresh heartbeat)."""
        me, now = worker_name(), utcnow()
        async with self._db.session() as s:
            t = (await s.execute(
                select(Transcript).where(Transcript.session_id == session_id,
                                         Transcript.status.in_(("pending", "running")))
                .order_by(Transcript.created_at.desc()).limit(1).with_for_update()
            )).scalar_one_or_none()
            if t is None or (t.status == "running" and t.heartbeat_at is not None
                             and (now - t.heartbeat_at).total_seconds() < STALE_S):
                return None
            t.status, t.worker, t.heartbeat_at, t.attempts = "running", me, now, attempt
            await s.commit()
            return t

    async def _release(self, row: Transcript, why: str) -> None:
        async with self._db.session() as s:
            t = await s.get(Transcript, row.id)
            if t is not None:
                t.status, t.worker, t.error_detail = "pending", None, why[:2000]
                await s.commit()

    async def _heartbeat(self, row: Transcript) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            async with self._db.session() as s:
                t = await s.get(Transcript, row.id)
                if t is not None and t.status == "running":
                    t.heartbeat_at = utcnow()
                    await s.commit()

    async def _transcript_row(self, session_id: str) -> Transcript | None:
        async with self._db.session() as s:
            return (await s.execute(
                select(Transcript).where(Transcript.session_id == session_id,
                                         Transcript.status.in_(("pending", "running")))
                .order_by(Transcript.created_at.desc()).limit(1)
            )).scalar_one_or_none()

    async def _fail(
        self, session_id: str, code: str, detail: str, params: dict[str, str] | None = None
    ) -> None:
        row = await self._transcript_row(session_id)
        if row is None:
            return
        async with self._db.session() as s:
            t = await s.get(Transcript, row.id)
            assert t is not None
            t.status, t.error_code, t.error_detail = "failed", code, detail[:2000]
            t.error_params = dict(params or {})
            t.completed_at = utcnow()
            session = await s.get(MeetingSession, session_id)
            audit.record(s, "transcript.failed", dossier_id=session.dossier_id if session else None,
                         session_id=session_id, data={"code": code, "transcript_id": t.id})
            await s.commit()

    async def _transcribe(self, session_id: str) -> None:
        row = await self._transcript_row(session_id)
        if row is None:
            return  # already done by an earlier run of the queue
        async with self._db.session() as s:
            session = await s.get(MeetingSession, session_id)
            assert session is not None and session.status != SessionStatus.SCHEDULED
            recordings = (await s.execute(
                select(Recording, Participant)
                .join(Participant, Participant.id == Recording.participant_id)
                .where(Recording.session_id == session_id, Recording.kind == "audio",
                       Recording.status == "stored")
                .order_by(Recording.started_at)
            )).all()
            dossier = await s.get(Dossier, session.dossier_id)
        transcriber = await self._get_transcriber()
        language = session.language
        if not transcriber.multilingual:
            language = "en"
        elif language not in transcriber.languages:
            raise TranscriptionError(
                "transcript.language_unsupported",
                f"the model does not know the language {language!r}", {"language": language})
        prompt = self._prompt(dossier)
        progress: dict[str, Any] = {"tracks": [
            {"recording": rec.id, "participant": participant.id, "status": "pending"}
            for rec, participant in recordings], "done": 0, "total": len(recordings)}
        await self._progress(row.id, progress)
        origin = session.started_at or min(
            (r.started_at for r, _ in recordings), default=utcnow()
        )
        lines: list[list[Line] | None] = [None] * len(recordings)
        # Up to `workers` tracks at once (the transcriber's limit), each on its share of
        # the threads; a failure other than one unreadable track cancels the rest.
        turns = asyncio.Semaphore(transcriber.workers)

        async def one(n: int, rec: Recording, tmp: Path) -> None:
            assert rec.object_key is not None
            track = progress["tracks"][n]
            async with turns:
                track["status"], track["started_at"] = "running", utcnow().isoformat()
                await self._progress(row.id, progress)
                ready = await self._incremental(rec, language)
                if ready is not None:  # transcribed segment by segment during the meeting
                    lines[n] = ready
                    track.update(status="done", lines=len(ready), incremental=True)
                else:
                    local = tmp / f"{rec.id}.webm"
                    await self._store.download(rec.object_key, local)
                    try:
                        heard = await asyncio.to_thread(
                            transcriber.transcribe, local, language=language, prompt=prompt,
                            others=self._settings.other_language_codes)
                        lines[n] = heard
                        track["status"], track["lines"] = "done", len(heard)
                    except AudioError as exc:
                        # One unreadable track must not sink the others: it says why, and
                        # the transcript is made from the rest.
                        track.update(status="failed", error={
                            "code": exc.code, "params": dict(exc.params or {})})
                    finally:
                        local.unlink(missing_ok=True)
                track["ended_at"] = utcnow().isoformat()
                progress["done"] += 1
                await self._progress(row.id, progress)

        with tempfile.TemporaryDirectory(prefix="hoidong-asr-") as tmp:
            try:
                async with asyncio.TaskGroup() as group:
                    for n, (rec, _) in enumerate(recordings):
                        group.create_task(one(n, rec, Path(tmp)))
            except BaseExceptionGroup as group_error:
                # The caller retries or fails the job by the error's own type.
                raise group_error.exceptions[0] from None
        tracks: list[tuple[Speaker, float, Any]] = []
        speakers: dict[str, Speaker] = {}
        for (rec, participant), segments in zip(recordings, lines, strict=True):
            if segments is None:
                continue  # unreadable: named in the progress
            speaker = speakers.setdefault(participant.id, Speaker(
                participant.id, public_name(participant), participant.role))
            offset = max(0.0, (rec.started_at - origin).total_seconds())
            tracks.append((speaker, offset, segments))
        merged = merge_by_time(tracks)
        model_name = self._settings.whisper_model
        document = to_json(merged, session_id=session_id, language=language, model=model_name,
                           speakers=list(speakers.values()))
        prefix = session_prefix(session.dossier_id, session_id)
        # Each attempt writes its own objects: a retry never overwrites evidence.
        base = f"{prefix}transcripts/{row.id}/{row.attempts or 1}"
        json_key = validate_key(f"{base}/transcript.json")
        vtt_key = validate_key(f"{base}/transcript.vtt")
        json_obj = await self._store.put_bytes(
            json_key, json.dumps(document, ensure_ascii=False, indent=1).encode(),
            "application/json",
        )
        vtt_obj = await self._store.put_bytes(vtt_key, to_webvtt(merged).encode(), "text/vtt")
        # Stored documents go into the archive: they carry the public name only (an
        # interviewee's pseudonym); the real name stays on the participant record.
        people = [{"id": p.id, "name": public_name(p), "pseudonym": p.pseudonym,
                   "role": p.role} for p in dict.fromkeys(p for _, p in recordings)]
        layout = {"dossier_title": dossier.title if dossier else "", "session": {
            "title": session.title, "kind": session.kind,
            "started_at": _iso(session.started_at), "ended_at": _iso(session.ended_at),
            "spoken_language": language, "model": model_name}, "participants": people}
        exports = await self._exports(base, merged, list(speakers.values()), layout)
        async with self._db.session() as s:
            t = await s.get(Transcript, row.id)
            assert t is not None
            # Idempotent: a job resumed after a crash replaces its own half-written lines.
            await s.execute(
                delete(TranscriptSegment).where(TranscriptSegment.transcript_id == t.id)
            )
            for seq, seg in enumerate(merged):
                s.add(TranscriptSegment(
                    transcript_id=t.id, seq=seq, participant_id=seg.speaker_id,
                    start_s=round(seg.start, 3), end_s=round(seg.end, 3), text=seg.text,
                    folded=fold(seg.text),
                ))
            t.status, t.model, t.language = "done", model_name, language
            t.json_key, t.json_sha256 = json_key, json_obj.sha256
            t.vtt_key, t.vtt_sha256 = vtt_key, vtt_obj.sha256
            t.exports, t.progress = exports, progress
            failed = [tr for tr in progress["tracks"] if tr["status"] == "failed"]
            if failed:  # made from the other tracks; the reason stays on the transcript
                t.error_code = failed[0]["error"]["code"]
                t.error_params = failed[0]["error"]["params"]
                t.error_detail = f"{len(failed)} of {len(progress['tracks'])} tracks unreadable"
            t.completed_at = utcnow()
            audit.record(s, "transcript.stored", dossier_id=session.dossier_id,
                         session_id=session_id,
                         data={"transcript_id": t.id, "json_key": json_key,
                               "json_sha256": json_obj.sha256, "vtt_key": vtt_key,
                               "vtt_sha256": vtt_obj.sha256, "segments": len(merged),
                               "exports": exports, "failed_tracks": sum(
                                   tr["status"] == "failed" for tr in progress["tracks"]),
                               "tracks": len(tracks), "model": model_name})
            await s.commit()
        log.info("session %s transcribed: %d lines from %d tracks", session_id, len(merged),
                 len(tracks))



    async def _progress(self, transcript_id: str, progress: dict[str, Any]) -> None:
        async with self._db.session() as s:
            t = await s.get(Transcript, transcript_id)
            if t is not None:
                t.progress = json.loads(json.dumps(progress))  # a new value: JSON is compared
                await s.commit()

    async def _exports(self, base: str, merged: list[SpeakerSegment],
                       speakers: list[Speaker], layout: dict[str, Any]) -> dict[str, Any]:
        """SRT, plain text, DOCX and PDF (Vietnamese layout, in the interface's language)
        for the session, WebVTT and SRT per speaker; stored write-once under the
        transcript's id; returns format → {key, sha256, size}."""
        lang = self._settings.ui_language

        def text(key: str, params: Mapping[str, object] | None) -> str:
            return t(key, lang, params)

        doc = {**layout, "language": lang, "generated_at": utcnow().isoformat(),
               "segments": [{"start": s.start, "end": s.end, "speaker_id": s.speaker_id,
                             "speaker_name": s.speaker_name, "text": s.text} for s in merged]}
        documents: dict[str, tuple[bytes, str]] = {
            "srt": (to_srt(merged).encode(), "application/x-subrip"),
            "txt": (to_text(merged).encode(), "text/plain"),
            "docx": (await asyncio.to_thread(render_transcript_docx, doc, text),
                     "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
            "pdf": (await asyncio.to_thread(render_transcript_pdf, doc, text),
                    "application/pdf"),
        }
        for speaker in speakers:
            own = for_speaker(merged, speaker.id)
            documents[f"speaker-{speaker.id}.vtt"] = (to_webvtt(own).encode(), "text/vtt")
            documents[f"speaker-{speaker.id}.srt"] = (to_srt(own).encode(),
                                                      "application/x-subrip")
        out: dict[str, Any] = {}
        for name, (data, content_type) in documents.items():
            key = validate_key(f"{base}/{name}")
            obj = await self._store.put_bytes(key, data, content_type)
            out[name] = {"key": key, "sha256": obj.sha256, "size": obj.size}
        return out


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


@contextlib.asynccontextmanager
async def _in_worker(settings: Settings, state: dict[str, Any]
                     ) -> AsyncIterator[TranscriptionJobs]:
    """A service with its own database and store connections for one job in a worker
    process; the loaded model is kept in ``state`` for the next job."""
    db = Database(settings.resolved_database_url)
    store = settings.open_store()
    service = TranscriptionJobs(db, store, settings)
    service._transcriber = state.get("transcriber")
    try:
        yield service
    finally:
        state["transcriber"] = service._transcriber
        await store.close()
        await db.close()


async def run_job(settings: Settings, state: dict[str, Any], session_id: str,
                  attempt: int) -> bool:
    """One session's transcription in a worker process (:mod:`server.jobs`); True: try
    again later."""
    async with _in_worker(settings, state) as service:
        return await service.run_job(session_id, attempt)


async def run_segment_job(settings: Settings, state: dict[str, Any], segment_id: str) -> None:
    """One segment's transcription in a worker process (incremental mode)."""
    async with _in_worker(settings, state) as service:
        await service.run_segment(segment_id)
