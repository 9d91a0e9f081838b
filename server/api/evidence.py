"""Evidence API: a session's recordings (and their bytes), transcript and audit trail."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from server import audit, reports
from server.access import log_access
from server.api.framework import LANG, ApiRegistry
from server.api.schemas import (
    AuditEventOut,
    ChainBreakOut,
    ChainCheckOut,
    CompositeOut,
    RecordingOut,
    RoomPresenceIn,
    SegmentOut,
    TranscriptLine,
    TranscriptOut,
)
from server.api.staff import get_or_404, session_from_path
from server.api.streaming import stream_object
from server.audit import verify_chains
from server.errors import ApiError
from server.i18n import both, normalise_language
from server.models import (
    AuditEvent,
    Composite,
    MeetingSession,
    Participant,
    Recording,
    RecordingSegment,
    SessionStatus,
    Transcript,
    TranscriptSegment,
    newest_transcript,
    public_name,
)
from server.policy import require
from server.state import DB, LIVE, SETTINGS, STORE, TRANSCRIPTION
from storage.chain import session_chain, verify_chain

api = ApiRegistry()


def recording_out(r: Recording) -> RecordingOut:
    return RecordingOut.model_validate(
        {**{c: getattr(r, c) for c in RecordingOut.model_fields if hasattr(r, c)},
         "media_url": f"/api/recordings/{r.id}/media"}
    )


@api.route("GET", "/api/sessions/{session_id}/recordings", summary="A session's recordings",
           response=list[RecordingOut])
async def list_recordings(request: web.Request) -> list[RecordingOut]:
    require(request, "recording.read")
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
        rows = (await s.execute(
            select(Recording).where(Recording.session_id == m.id)
            .order_by(Recording.started_at, Recording.kind)
        )).scalars()
        return [recording_out(r) for r in rows]


@api.route("GET", "/api/sessions/{session_id}/segments", summary="A session's recording "
           "segments (hashed as each closed; stored during the session)",
           response=list[SegmentOut])
async def list_segments(request: web.Request) -> list[SegmentOut]:
    require(request, "recording.read")
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
        rows = (await s.execute(
            select(RecordingSegment).where(RecordingSegment.session_id == m.id)
            .order_by(RecordingSegment.connection_id, RecordingSegment.track,
                      RecordingSegment.seq)
        )).scalars()
        return [SegmentOut.model_validate(r) for r in rows]


@api.route("GET", "/api/recordings/{recording_id}/media", summary="A recording's bytes "
           "(WebM; HTTP range requests supported)", response=None,
           response_content_type=("audio/webm", "video/webm"), ranges=True)
async def recording_media(request: web.Request) -> web.StreamResponse:
    who = require(request, "recording.read")
    async with request.app[DB].session() as s:
        r = await get_or_404(s, Recording, request.match_info["recording_id"],
                             "recording.not_found")
        m = await s.get(MeetingSession, r.session_id)
    if r.object_key is None or r.size is None or m is None:
        raise ApiError(404, "recording.not_stored")
    await log_access(request, who, "viewed", dossier_id=m.dossier_id, session_id=m.id,
                     what="recording", recording=r.id, sha256=r.sha256 or "")
    return await stream_object(request, r.object_key, r.size, r.sha256 or "",
                                f"{r.kind}/webm")


@api.route("GET", "/api/sessions/{session_id}/transcript", summary="A session's "
           "speaker-attributed transcript (status, then lines merged by time)",
           response=TranscriptOut)
async def get_transcript(request: web.Request) -> TranscriptOut:
    require(request, "transcript.read")
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
        t = (await s.execute(
            select(Transcript).where(Transcript.session_id == m.id)
            .order_by(Transcript.created_at.desc()).limit(1)
        )).scalar_one_or_none()
        if t is None:
            return TranscriptOut(session_id=m.id, status="none", language=m.language, model="",
                                 error=None, sha256=None, segments=[])
        rows = (await s.execute(
            select(TranscriptSegment, Participant)
            .join(Participant, Participant.id == TranscriptSegment.participant_id)
            .where(TranscriptSegment.transcript_id == t.id).order_by(TranscriptSegment.seq)
        )).all()
    error = None
    if t.error_code:
        error = {"code": t.error_code, "message": both(t.error_code, t.error_params),
                 "detail": t.error_detail}
    base = f"/api/sessions/{m.id}"
    exports = {"json": f"{base}/transcript.json", "vtt": f"{base}/transcript.vtt"} if (
        t.status == "done") else {}
    for name in t.exports or {}:
        if name.startswith("speaker-"):
            pid, _, fmt = name[len("speaker-"):].partition(".")
            exports[name] = f"{base}/speakers/{pid}/transcript.{fmt}"
        else:
            exports[name] = f"{base}/transcript.{name}"
    return TranscriptOut(
        session_id=m.id, status=t.status, language=t.language, model=t.model, error=error,
        sha256=t.json_sha256,
        segments=[TranscriptLine(participant_id=p.id, speaker=public_name(p), role=p.role,
                                 start=seg.start_s, end=seg.end_s, text=seg.text)
                  for seg, p in rows],
        progress=t.progress, exports=exports,
    )


EXPORT_TYPES = {"srt": "application/x-subrip", "txt": "text/plain",
                "vtt": "text/vtt",
                "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "pdf": "application/pdf"}


async def _export(request: web.Request, name: str, fmt: str) -> web.Response:
    """A stored export of the session's latest finished transcript."""
    who = require(request, "transcript.read")
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
        t = await newest_transcript(s, m.id)
    entry = (t.exports or {}).get(name) if t is not None else None
    if t is None or entry is None:
        raise ApiError(404, "transcript.not_ready")
    data = await request.app[STORE].get_bytes(entry["key"])
    await log_access(request, who, "downloaded", dossier_id=m.dossier_id, session_id=m.id,
                     what=f"transcript.{name}", transcript=t.id, sha256=entry["sha256"])
    binary = fmt in ("docx", "pdf")
    return web.Response(body=data, content_type=EXPORT_TYPES[fmt],
                        charset=None if binary else "utf-8",
                        headers={"X-Content-SHA256": entry["sha256"], "Content-Disposition":
                                 f'attachment; filename="transcript-{m.id}-{name}"'})


@api.route("GET", "/api/sessions/{session_id}/transcript.srt", summary="The transcript as "
           "SubRip (Name: text)", response=None, response_content_type="application/x-subrip")
async def get_transcript_srt(request: web.Request) -> web.Response:
    return await _export(request, "srt", "srt")


@api.route("GET", "/api/sessions/{session_id}/transcript.txt", summary="The transcript as "
           "plain text ([HH:MM:SS] Name: text)", response=None,
           response_content_type="text/plain")
async def get_transcript_txt(request: web.Request) -> web.Response:
    return await _export(request, "txt", "txt")


@api.route("GET", "/api/sessions/{session_id}/transcript.docx", summary="The transcript as "
           "a Word document (Vietnamese layout)", response=None,
           response_content_type=EXPORT_TYPES["docx"])
async def get_transcript_docx(request: web.Request) -> web.Response:
    return await _export(request, "docx", "docx")


@api.route("GET", "/api/sessions/{session_id}/transcript.pdf", summary="The transcript as "
           "an A4 PDF (Vietnamese layout)", response=None,
           response_content_type="application/pdf")
async def get_transcript_pdf(request: web.Request) -> web.Response:
    return await _export(request, "pdf", "pdf")


@api.route("GET", "/api/sessions/{session_id}/speakers/{participant_id}/transcript.vtt",
           summary="One speaker's transcript as WebVTT", response=None,
           response_content_type="text/vtt")
async def get_speaker_vtt(request: web.Request) -> web.Response:
    pid = request.match_info["participant_id"]
    return await _export(request, f"speaker-{pid}.vtt", "vtt")


@api.route("GET", "/api/sessions/{session_id}/speakers/{participant_id}/transcript.srt",
           summary="One speaker's transcript as SubRip", response=None,
           response_content_type="application/x-subrip")
async def get_speaker_srt(request: web.Request) -> web.Response:
    pid = request.match_info["participant_id"]
    return await _export(request, f"speaker-{pid}.srt", "srt")


@api.route("POST", "/api/sessions/{session_id}/transcript/rerun", summary="Transcribe the "
           "session again (a new transcript; the earlier ones stay)", response=None,
           status=202)
async def rerun_transcript(request: web.Request) -> web.Response:
    ident = require(request, "session.control")
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
        busy = (await s.execute(select(Transcript.id).where(
            Transcript.session_id == m.id, Transcript.status.in_(("pending", "running")))
        )).first()
    if m.status not in (SessionStatus.ENDED, SessionStatus.ARCHIVED):
        raise ApiError(409, "session.not_ended")
    if busy is not None:
        raise ApiError(409, "transcript.busy")
    await request.app[TRANSCRIPTION].enqueue(m.id)
    async with request.app[DB].session() as s:
        audit.record(s, "transcript.rerun", actor=ident.actor, dossier_id=m.dossier_id,
                     session_id=m.id)
        await s.commit()
    return web.json_response({"ok": True}, status=202)


@api.route("GET", "/api/sessions/{session_id}/transcript.vtt", summary="The transcript as "
           "WebVTT (speaker voice tags)", response=None, response_content_type="text/vtt")
async def get_transcript_vtt(request: web.Request) -> web.Response:
    return await _stored_transcript(request, "vtt", "text/vtt")


@api.route("GET", "/api/sessions/{session_id}/transcript.json", summary="The stored transcript "
           "document (format hoidong-transcript/1, with words)", response=None,
           response_content_type="application/json")
async def get_transcript_json(request: web.Request) -> web.Response:
    return await _stored_transcript(request, "json", "application/json")


async def _stored_transcript(request: web.Request, fmt: str, content_type: str) -> web.Response:
    who = require(request, "transcript.read")
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
        t = await newest_transcript(s, m.id)
    key = None if t is None else (t.vtt_key if fmt == "vtt" else t.json_key)
    if t is None or key is None:
        raise ApiError(404, "transcript.not_ready")
    data = await request.app[STORE].get_bytes(key)
    await log_access(request, who, "viewed", dossier_id=m.dossier_id, session_id=m.id,
                     what=f"transcript.{fmt}", transcript=t.id)
    return web.Response(body=data, content_type=content_type, charset="utf-8")


@api.route("GET", "/api/sessions/{session_id}/audit", summary="A session's audit events, "
           "oldest first", response=list[AuditEventOut])
async def list_audit(request: web.Request) -> list[AuditEventOut]:
    require(request, "audit.read")
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
        rows = (await s.execute(
            select(AuditEvent).where(AuditEvent.session_id == m.id).order_by(AuditEvent.id)
        )).scalars()
        return [AuditEventOut.model_validate(e) for e in rows]


@api.route("GET", "/api/sessions/{session_id}/audit/verify", summary="Check the "
           "session's audit chain as stored: every event's hash, the links between them "
           "and the recorded head; names the first broken event",
           response=ChainCheckOut)
async def verify_audit(request: web.Request) -> ChainCheckOut:
    require(request, "audit.read")
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
    chain = session_chain(m.id)
    checks = await verify_chains(request.app[DB], [chain])
    check = checks[0] if checks else verify_chain(chain, [])
    broken = None
    if check.broken is not None:
        b = check.broken
        broken = ChainBreakOut(seq=b.seq, event_id=b.event_id, code=b.code,
                               message=both(b.code, {"seq": b.seq, "chain": b.chain}))
    return ChainCheckOut(chain=check.chain, ok=check.ok, events=check.events,
                         head=check.head, broken=broken)


# -- attendance -----------------------------------------------------------------------

@api.route("GET", "/api/sessions/{session_id}/attendance", summary="The attendance report "
           "(JSON; ?lang=vi|en): joins, leaves, gaps, camera-on time, non-compliant "
           "intervals, in-room presence, quorum. The stored one once the session ended.",
           response=None, response_content_type="application/json", query=[LANG])
async def attendance_json(request: web.Request) -> web.Response:
    return await _attendance(request, "json")


@api.route("GET", "/api/sessions/{session_id}/attendance.csv", summary="The attendance "
           "report as CSV (UTF-8)", response=None, response_content_type="text/csv",
           query=[LANG])
async def attendance_csv(request: web.Request) -> web.Response:
    return await _attendance(request, "csv")


@api.route("GET", "/api/sessions/{session_id}/attendance.pdf", summary="The attendance "
           "report as PDF (A4, Vietnamese)", response=None,
           response_content_type="application/pdf", query=[LANG])
async def attendance_pdf(request: web.Request) -> web.Response:
    return await _attendance(request, "pdf")


async def _attendance(request: web.Request, fmt: str) -> web.Response:
    """An ended session's stored report (with its SHA-256), else one made now."""
    who = require(request, "attendance.read")
    lang = normalise_language(request.query.get("lang"), request.app[SETTINGS].ui_language)
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
    headers = {"Content-Disposition": f'attachment; filename="attendance-{m.id}-{lang}.{fmt}"'}
    stored = await reports.stored_attendance(request.app[DB], m.id, fmt, lang)
    if stored is not None:
        data = await request.app[STORE].get_bytes(stored.object_key)
        headers |= {"X-Content-SHA256": stored.sha256, "X-Report-Id": stored.id}
    else:
        report = await reports.build_attendance(request.app[DB], m.id, lang)
        assert report is not None
        data = await reports.render(report, fmt)
    await log_access(request, who, "downloaded", dossier_id=m.dossier_id, session_id=m.id,
                     what=f"attendance.{fmt}", language=lang,
                     report=stored.id if stored is not None else "")
    return web.Response(body=data, content_type=reports.FORMATS[fmt],
                        charset=None if fmt == "pdf" else "utf-8", headers=headers)


@api.route("POST", "/api/sessions/{session_id}/room", summary="Roll call of a hybrid "
           "session: a participant is (no longer) in the meeting room, from now",
           body=RoomPresenceIn, response=None)
async def room_presence(request: web.Request, body: RoomPresenceIn) -> web.Response:
    ident = require(request, "session.control")
    async with request.app[DB].session() as s:
        m: MeetingSession = await session_from_path(s, request)
    if m.mode != "hybrid":
        raise ApiError(409, "session.not_hybrid")
    if m.status != SessionStatus.LIVE:
        raise ApiError(409, "session.not_live")
    if not await request.app[LIVE].camera_rule.set_in_room(m.id, body.participant_id,
                                                           body.present, ident.actor):
        raise ApiError(404, "participant.not_found")
    return web.json_response({"ok": True})


# -- the composite ----------------------------------------------------------------------

async def _latest_composite(request: web.Request) -> Composite | None:
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
        return (await s.execute(select(Composite).where(Composite.session_id == m.id)
                                .order_by(Composite.created_at.desc()).limit(1))
                ).scalar_one_or_none()


@api.route("GET", "/api/sessions/{session_id}/composite", summary="The session composite: "
           "status (none, pending, running with progress 0..1, done, failed), hash, details "
           "(per-participant files, gaps)", response=CompositeOut)
async def get_composite(request: web.Request) -> CompositeOut:
    require(request, "recording.read")
    c = await _latest_composite(request)
    if c is None:
        return CompositeOut(status="none", progress=0.0)
    return CompositeOut.model_validate(
        {**{k: getattr(c, k) for k in CompositeOut.model_fields if hasattr(c, k)},
         "media_url": f"/api/sessions/{c.session_id}/composite.webm" if c.object_key else None})


@api.route("GET", "/api/sessions/{session_id}/composite.webm", summary="The composite's "
           "bytes (WebM VP8/Opus; HTTP range requests supported)", response=None,
           response_content_type="video/webm", ranges=True)
async def composite_media(request: web.Request) -> web.StreamResponse:
    who = require(request, "recording.read")
    c = await _latest_composite(request)
    if c is None or c.object_key is None or c.size is None:
        raise ApiError(404, "composite.not_ready")
    async with request.app[DB].session() as s:
        m = await s.get(MeetingSession, c.session_id)
        assert m is not None
    await log_access(request, who, "viewed", dossier_id=m.dossier_id, session_id=m.id,
                     what="composite", composite=c.id, sha256=c.sha256 or "")
    return await stream_object(request, c.object_key, c.size, c.sha256 or "", "video/webm")
