"""The server's transcription service: a missing model is reported (at start-up and on the
transcript, in both languages); a session without audio gets an empty, finished transcript."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from server.i18n import catalogue
from server.models import Recording, utcnow
from server.state import DB, STORE, TRANSCRIPTION
from storage.keys import recording_key
from tests.conftest import Running, make_settings, start_app


@contextlib.asynccontextmanager
async def app_with(tmp_path: Path, **overrides: Any) -> AsyncIterator[Running]:
    async with contextlib.aclosing(start_app(make_settings(tmp_path, **overrides))) as gen:
        yield await anext(gen)


async def ended_session(running: Running, *, participant: bool = False) -> str:
    d = await running.api("POST", "/api/dossiers", {
        "title": "Hồ sơ đánh giá ngoài", "institution": "ĐH C", "phase": "appraisal",
    }, status=201)
    s = await running.api("POST", f"/api/dossiers/{d['id']}/sessions", {
        "kind": "council_meeting", "title": "Phiên họp không có tiếng",
    }, status=201)
    if participant:
        await running.api("POST", f"/api/sessions/{s['id']}/participants",
                          {"name": "Trần Thị B", "role": "member"}, status=201)
    assert (await running.api("POST", f"/api/sessions/{s['id']}/start"))["status"] == "live"
    assert (await running.api("POST", f"/api/sessions/{s['id']}/end"))["status"] == "ended"
    return str(s["id"])


async def settled_transcript(running: Running, session_id: str) -> dict[str, Any]:
    await asyncio.wait_for(running.app[TRANSCRIPTION].wait_idle(), timeout=300)
    body: dict[str, Any] = await running.api("GET", f"/api/sessions/{session_id}/transcript")
    return body


async def test_missing_model_is_reported_at_start_and_on_the_transcript(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nope"
    async with app_with(tmp_path, whisper_model=str(missing), transcribe_on_end=True) as running:
        service = running.app[TRANSCRIPTION]
        for _ in range(100):
            if service.model_error is not None:
                break
            await asyncio.sleep(0.1)
        assert service.model_error is not None, "the model check did not report within 10 s"
        assert service.model_error.code == "model.missing"
        assert service.model_path is None

        session_id = await ended_session(running)
        transcript = await settled_transcript(running, session_id)
        assert transcript["status"] == "failed", transcript
        assert transcript["segments"] == [] and transcript["sha256"] is None
        error = transcript["error"]
        assert error["code"] == "model.missing"
        assert error["message"] == catalogue()["model.missing"]
        assert error["message"]["vi"] != error["message"]["en"]
        assert str(missing) in error["detail"]  # for the operator; the message is for people

        events = await running.api("GET", f"/api/sessions/{session_id}/audit")
        failed = [e for e in events if e["kind"] == "transcript.failed"]
        assert len(failed) == 1 and failed[0]["data"]["code"] == "model.missing"
        assert not any(e["kind"] == "transcript.stored" for e in events)

        resp = await running.client.get(f"/api/sessions/{session_id}/transcript.vtt",
                                        headers=running.auth())
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "transcript.not_ready"


async def test_no_transcription_when_turned_off(tmp_path: Path) -> None:
    async with app_with(tmp_path, transcribe_on_end=False) as running:
        session_id = await ended_session(running)
        transcript = await settled_transcript(running, session_id)
        assert transcript["status"] == "none"
        assert transcript["error"] is None


@pytest.mark.slow
@pytest.mark.parametrize("participant", [False, True], ids=["nobody", "never-joined"])
async def test_session_without_audio_gets_an_empty_done_transcript(
    tmp_path: Path, participant: bool,
) -> None:
    async with app_with(tmp_path, transcribe_on_end=True) as running:  # tiny.en
        session_id = await ended_session(running, participant=participant)
        transcript = await settled_transcript(running, session_id)
        assert transcript["status"] == "done", transcript
        assert transcript["error"] is None
        assert transcript["segments"] == []
        assert transcript["model"] == "tiny.en"
        assert transcript["language"] == "en"
        assert transcript["sha256"] and len(transcript["sha256"]) == 64
        service = running.app[TRANSCRIPTION]
        assert service.model_error is None and service.model_path is not None

        resp = await running.client.get(f"/api/sessions/{session_id}/transcript.vtt",
                                        headers=running.auth())
        assert resp.status == 200
        assert (await resp.text()).startswith("WEBVTT")
        resp = await running.client.get(f"/api/sessions/{session_id}/transcript.json",
                                        headers=running.auth())
        assert resp.status == 200
        document = json.loads(await resp.read())
        assert document["session_id"] == session_id

        events = await running.api("GET", f"/api/sessions/{session_id}/audit")
        stored = [e for e in events if e["kind"] == "transcript.stored"]
        assert len(stored) == 1
        assert stored[0]["data"]["segments"] == 0 and stored[0]["data"]["tracks"] == 0
        assert stored[0]["data"]["json_sha256"] == transcript["sha256"]


@pytest.mark.slow
async def test_unreadable_recording_gives_an_empty_transcript_with_the_reason(
        tmp_path: Path) -> None:
    async with app_with(tmp_path, transcribe_on_end=True) as running:  # tiny.en
        d = await running.api("POST", "/api/dossiers", {"title": "H", "phase": "evaluation"},
                              status=201)
        s = await running.api("POST", f"/api/dossiers/{d['id']}/sessions",
                              {"kind": "interview", "title": "P"}, status=201)
        p = await running.api("POST", f"/api/sessions/{s['id']}/participants",
                              {"name": "Lê Văn C", "role": "interviewee"}, status=201)
        await running.api("POST", f"/api/sessions/{s['id']}/start")
        key = recording_key(d["id"], s["id"], p["id"], "broken", "webm")
        obj = await running.app[STORE].put_bytes(key, b"this is not audio", "audio/webm")
        async with running.app[DB].session() as db:
            db.add(Recording(session_id=s["id"], participant_id=p["id"], kind="audio",
                             codec="opus", container="webm", status="stored",
                             started_at=utcnow(), ended_at=utcnow(), duration_s=1.0, frames=50,
                             object_key=key, sha256=obj.sha256, size=obj.size))
            await db.commit()
        await running.api("POST", f"/api/sessions/{s['id']}/end")
        transcript = await settled_transcript(running, s["id"])
        # Never a stuck or failed job: an empty transcript that says why.
        assert transcript["status"] == "done", transcript
        assert transcript["segments"] == []
        assert transcript["error"]["code"] == "audio.unreadable"
        (track,) = transcript["progress"]["tracks"]
        assert track["status"] == "failed" and track["error"]["code"] == "audio.unreadable"
        # The message names the file (its parameters were kept), never a raw placeholder.
        messages = transcript["error"]["message"]
        assert set(messages) == {"vi", "en"}
        for lang, message in messages.items():
            assert "{" not in message, (lang, message)
            assert ".webm" in message, (lang, message)
        events = await running.api("GET", f"/api/sessions/{s['id']}/audit")
        (stored,) = [e for e in events if e["kind"] == "transcript.stored"]
        assert stored["data"]["failed_tracks"] == 1


async def stored_speech(running: Running, sid: str, did: str, pid: str, wav: Path,
                        out: Path) -> None:
    """``wav`` as an Opus WebM recording of ``pid`` (as the recorder would store it)."""
    import subprocess

    from media.ffmpeg import ffmpeg_path

    await asyncio.to_thread(subprocess.run, [ffmpeg_path(), "-v", "error", "-y", "-i",
                                             str(wav), "-c:a", "libopus", str(out)], check=True)
    key = recording_key(did, sid, pid, f"c0-{pid[:6]}-audio-0", "webm")
    obj = await running.app[STORE].put_file(key, out, "audio/webm")
    async with running.app[DB].session() as db:
        db.add(Recording(session_id=sid, participant_id=pid, kind="audio", codec="opus",
                         container="webm", status="stored", started_at=utcnow(),
                         ended_at=utcnow(), duration_s=3.0, frames=150, object_key=key,
                         sha256=obj.sha256, size=obj.size))
        await db.commit()


@pytest.mark.slow
@pytest.mark.parametrize("parallel", [1, 2])
async def test_tracks_are_transcribed_side_by_side(tmp_path: Path, espeak: str,
                                                   parallel: int) -> None:
    """With ``whisper_parallel_tracks`` = 2, two tracks are in Whisper at once (each on
    one of the two threads; the worker process dates each track's start and end); the
    transcript is the same as one at a time: both speakers, an unreadable third track
    named and left out."""
    from datetime import datetime

    from tests.test_e2e_browser import make_speech

    wav = make_speech(espeak, tmp_path / "speech.wav")
    async with app_with(tmp_path, transcribe_on_end=True,
                        whisper_parallel_tracks=parallel) as running:  # tiny.en
        d = await running.api("POST", "/api/dossiers", {"title": "H", "phase": "appraisal"},
                              status=201)
        s = await running.api("POST", f"/api/dossiers/{d['id']}/sessions",
                              {"kind": "council_meeting", "title": "P"}, status=201)
        people = [await running.api("POST", f"/api/sessions/{s['id']}/participants",
                                    {"name": name, "role": "member"}, status=201)
                  for name in ("Ủy viên Một", "Ủy viên Hai", "Ủy viên Ba")]
        await running.api("POST", f"/api/sessions/{s['id']}/start")
        for n, p in enumerate(people[:2]):
            await stored_speech(running, s["id"], d["id"], p["id"], wav,
                                tmp_path / f"{n}.webm")
        key = recording_key(d["id"], s["id"], people[2]["id"], "broken", "webm")
        obj = await running.app[STORE].put_bytes(key, b"not audio", "audio/webm")
        async with running.app[DB].session() as db:
            db.add(Recording(session_id=s["id"], participant_id=people[2]["id"], kind="audio",
                             codec="opus", container="webm", status="stored",
                             started_at=utcnow(), ended_at=utcnow(), duration_s=1.0,
                             frames=50, object_key=key, sha256=obj.sha256, size=obj.size))
            await db.commit()
        await running.api("POST", f"/api/sessions/{s['id']}/end")
        transcript = await settled_transcript(running, s["id"])
    assert transcript["status"] == "done", transcript
    assert transcript["error"]["code"] == "audio.unreadable"
    tracks = transcript["progress"]["tracks"]
    assert [t["status"] for t in tracks] == ["done", "done", "failed"]
    spans = [(datetime.fromisoformat(t["started_at"]), datetime.fromisoformat(t["ended_at"]))
             for t in tracks]
    at_once = max(sum(1 for a, b in spans if a <= start < b) for start, _ in spans)
    assert at_once == parallel, spans
    assert transcript["progress"]["done"] == 3
    speakers = {seg["speaker"] for seg in transcript["segments"]}
    assert speakers == {"Ủy viên Một", "Ủy viên Hai"}
    for name in speakers:
        said = " ".join(seg["text"] for seg in transcript["segments"] if seg["speaker"] == name)
        assert "council" in said.lower(), (name, said)


@pytest.mark.slow
async def test_exports_progress_vocabulary_and_rerun(tmp_path: Path, espeak: str) -> None:
    """Two speakers: the transcript's SRT, text and per-speaker exports; progress per
    track; a dossier's own vocabulary; staff run it again (a new transcript)."""
    from tests.test_e2e_browser import make_speech

    wav = make_speech(espeak, tmp_path / "speech.wav")
    async with app_with(tmp_path, transcribe_on_end=True) as running:  # tiny.en
        d = await running.api("POST", "/api/dossiers", {"title": "H", "phase": "appraisal"},
                              status=201)
        vocab = await running.api("PUT", f"/api/dossiers/{d['id']}/vocabulary",
                                  {"terms": ["accreditation council", "university report"]})
        assert vocab["vocabulary"] == ["accreditation council", "university report"]
        s = await running.api("POST", f"/api/dossiers/{d['id']}/sessions",
                              {"kind": "council_meeting", "title": "P"}, status=201)
        people = [await running.api("POST", f"/api/sessions/{s['id']}/participants",
                                    {"name": name, "role": "member"}, status=201)
                  for name in ("Ủy viên Một", "Ủy viên Hai")]
        await running.api("POST", f"/api/sessions/{s['id']}/start")
        for n, p in enumerate(people):
            await stored_speech(running, s["id"], d["id"], p["id"], wav,
                                tmp_path / f"{n}.webm")
        resp = await running.client.post(f"/api/sessions/{s['id']}/transcript/rerun",
                                         headers=running.auth())
        assert resp.status == 409  # not ended yet
        await running.api("POST", f"/api/sessions/{s['id']}/end")
        transcript = await settled_transcript(running, s["id"])
        assert transcript["status"] == "done" and transcript["error"] is None
        assert transcript["progress"]["done"] == transcript["progress"]["total"] == 2
        assert {x["status"] for x in transcript["progress"]["tracks"]} == {"done"}
        speakers = {seg["speaker"] for seg in transcript["segments"]}
        assert speakers == {"Ủy viên Một", "Ủy viên Hai"}
        exports = transcript["exports"]
        srt = await (await running.client.get(exports["srt"], headers=running.auth())).text()
        assert srt.startswith("1\n") and "Ủy viên Một: " in srt and "Ủy viên Hai: " in srt
        txt = await (await running.client.get(exports["txt"], headers=running.auth())).text()
        assert "council" in txt.lower()
        resp = await running.client.get(exports["pdf"], headers=running.auth())
        pdf = await resp.read()
        assert resp.status == 200 and pdf.startswith(b"%PDF")
        from pypdf import PdfReader

        words = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
        assert "Ủy viên Một" in words and "council" in words.lower()
        resp = await running.client.get(exports["docx"], headers=running.auth())
        from docx import Document

        paragraphs = [p.text for p in Document(io.BytesIO(await resp.read())).paragraphs]
        assert any("Ủy viên Hai" in p for p in paragraphs), paragraphs
        one = people[0]["id"]
        resp = await running.client.get(exports[f"speaker-{one}.vtt"], headers=running.auth())
        own = await resp.text()
        assert resp.status == 200 and own.startswith("WEBVTT")
        assert "Ủy viên Một" in own and "Ủy viên Hai" not in own
        # Run again: a new transcript; the first one stays.
        resp = await running.client.post(f"/api/sessions/{s['id']}/transcript/rerun",
                                         headers=running.auth())
        assert resp.status == 202
        again = await settled_transcript(running, s["id"])
        assert again["status"] == "done" and again["sha256"]
        events = await running.api("GET", f"/api/sessions/{s['id']}/audit")
        assert [e["kind"] for e in events].count("transcript.stored") == 2
        assert "transcript.rerun" in [e["kind"] for e in events]


@pytest.mark.slow
async def test_a_killed_worker_loses_no_job_and_makes_no_duplicates(
        tmp_path: Path, espeak: str) -> None:
    """The worker process is SIGKILLed mid-job: the server starts another, gives the job
    back, and the transcript is made once — one stored transcript, no duplicate lines."""
    import os
    import signal

    from server.models import Transcript, TranscriptSegment
    from tests.test_e2e_browser import make_speech

    wav = make_speech(espeak, tmp_path / "speech.wav")
    async with app_with(tmp_path, transcribe_on_end=True) as running:  # tiny.en
        d = await running.api("POST", "/api/dossiers", {"title": "H", "phase": "appraisal"},
                              status=201)
        s = await running.api("POST", f"/api/dossiers/{d['id']}/sessions",
                              {"kind": "council_meeting", "title": "P"}, status=201)
        people = [await running.api("POST", f"/api/sessions/{s['id']}/participants",
                                    {"name": f"Ủy viên {n}", "role": "member"}, status=201)
                  for n in range(6)]
        await running.api("POST", f"/api/sessions/{s['id']}/start")
        for n, p in enumerate(people):
            await stored_speech(running, s["id"], d["id"], p["id"], wav,
                                tmp_path / f"{n}.webm")
        await running.api("POST", f"/api/sessions/{s['id']}/end")
        service = running.app[TRANSCRIPTION]
        # Wait until the worker is inside the job (a track done, others to go).
        for _ in range(300):
            tr = await running.api("GET", f"/api/sessions/{s['id']}/transcript")
            if tr["status"] == "running" and (tr["progress"] or {}).get("done", 0) >= 1:
                break
            await asyncio.sleep(0.1)
        assert tr["status"] == "running" and tr["progress"]["done"] < 6, tr
        worker = service.worker
        assert worker is not None and worker.pid is not None
        killed = worker.pid
        os.kill(killed, signal.SIGKILL)
        transcript = await settled_transcript(running, s["id"])
        assert worker.pid != killed  # another worker took over
        assert transcript["status"] == "done", transcript
        assert transcript["progress"]["done"] == 6
        events = await running.api("GET", f"/api/sessions/{s['id']}/audit")
        kinds = [e["kind"] for e in events]
        assert kinds.count("transcript.stored") == 1 and "transcript.requeued" in kinds
        async with running.app[DB].session() as db:
            from sqlalchemy import func, select

            rows = (await db.execute(select(Transcript).where(
                Transcript.session_id == s["id"]))).scalars().all()
            assert len(rows) == 1 and rows[0].attempts == 2
            lines = (await db.execute(select(func.count()).select_from(TranscriptSegment)
                                      .where(TranscriptSegment.transcript_id == rows[0].id))
                     ).scalar_one()
            seqs = (await db.execute(select(TranscriptSegment.seq).where(
                TranscriptSegment.transcript_id == rows[0].id))).scalars().all()
        assert lines == len(transcript["segments"]) == len(set(seqs)) > 0
        assert {seg["speaker"] for seg in transcript["segments"]} == {
            p["name"] for p in people}


@pytest.mark.slow
async def test_jobs_go_through_redis_when_asked(tmp_path: Path) -> None:
    """The same job through huey's Redis storage (the machine's Redis), as workers on
    other machines would take it."""
    import redis

    from tests.conftest import need

    url = "redis://127.0.0.1:6379/15"
    try:
        client = redis.Redis.from_url(url)
        client.flushdb()
    except redis.exceptions.ConnectionError:
        client = None
    need(client is not None, "Redis on 127.0.0.1:6379")
    queue = f"hoidong-test-{tmp_path.name}-{os.getpid()}"  # no other worker's queue
    async with app_with(tmp_path, transcribe_on_end=True, job_queue="redis",
                        redis_url=url, job_queue_name=queue) as running:
        session_id = await ended_session(running, participant=True)
        transcript = await settled_transcript(running, session_id)
        assert transcript["status"] == "done", transcript
        # Not through the embedded queue: there is no SQLite queue file at all.
        assert not (running.settings.data_dir / "jobs.sqlite3").exists()
    assert client is not None and client.llen(f"huey.redis.{queue}") == 0  # taken, none left


@pytest.mark.slow
async def test_a_language_the_model_does_not_know_is_a_clear_failure(tmp_path: Path) -> None:
    """A session in a language code the (multilingual) model has never heard of ends in
    a failed transcript that says so in both languages — not a stuck job."""
    async with app_with(tmp_path, transcribe_on_end=True, whisper_model="base") as running:
        d = await running.api("POST", "/api/dossiers", {"title": "H", "phase": "appraisal"},
                              status=201)
        s = await running.api("POST", f"/api/dossiers/{d['id']}/sessions",
                              {"kind": "interview", "title": "P", "language": "xx"},
                              status=201)
        await running.api("POST", f"/api/sessions/{s['id']}/start")
        await running.api("POST", f"/api/sessions/{s['id']}/end")
        transcript = await settled_transcript(running, s["id"])
        assert transcript["status"] == "failed", transcript
        assert transcript["error"]["code"] == "transcript.language_unsupported"
        assert "xx" in transcript["error"]["message"]["vi"]


@pytest.mark.slow
async def test_incremental_transcription_during_the_meeting(tmp_path: Path, espeak: str
                                                            ) -> None:
    """Incremental mode: segments are transcribed while the meeting goes on; at the end
    the transcript is put together from them, with no second pass over the track."""
    from sqlalchemy import select

    from server.models import SegmentTranscript
    from tests.mediaclient import accept_answer, make_offer
    from tests.test_e2e_browser import make_speech
    from tests.test_signalling import invite, joined, new_session, recv_json

    wav = make_speech(espeak, tmp_path / "speech.wav")
    async with app_with(tmp_path, transcribe_on_end=True, incremental_transcription=True,
                        segment_s=2.0) as running:
        sid = await new_session(running)
        who = await invite(running, sid, "Quan sát viên Dũng", "observer")
        ws = await joined(running, who, sid)
        pc = await make_offer(video=False, speech=str(wav))
        await ws.send_json({"type": "offer", "sdp": pc.localDescription.sdp})
        await accept_answer(pc, (await recv_json(ws))["sdp"])
        try:
            done: list[SegmentTranscript] = []
            for _ in range(150):  # still in the meeting: segments transcribed already
                async with running.app[DB].session() as db:
                    done = list((await db.execute(select(SegmentTranscript).where(
                        SegmentTranscript.session_id == sid,
                        SegmentTranscript.status == "done"))).scalars())
                if len(done) >= 2:
                    break
                await asyncio.sleep(0.2)
            assert len(done) >= 2, done
        finally:
            await ws.send_json({"type": "leave"})
            await pc.close()
            await ws.close()
        await asyncio.sleep(1.0)
        await running.api("POST", f"/api/sessions/{sid}/end")
        transcript = await settled_transcript(running, sid)
        assert transcript["status"] == "done", transcript
        (track,) = transcript["progress"]["tracks"]
        assert track.get("incremental") is True, track
        text = " ".join(seg["text"] for seg in transcript["segments"]).lower()
        assert "university" in text or "report" in text, text
        assert {seg["speaker"] for seg in transcript["segments"]} == {"Quan sát viên Dũng"}
