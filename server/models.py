"""Database models: the evidence hoidong keeps, as SQLAlchemy 2.0 typed mappings.

Times are stored as UTC (timezone-aware in Python, naive UTC in SQLite). Identifiers
are random 32-character hex strings so they can be used in storage keys and URLs.
The schema itself is created by Alembic migrations (``server/migrations``), never by
``create_all``; the audit table is append-only, enforced by database triggers.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def new_id() -> str:
    return uuid.uuid4().hex


def plausible_id(ident: str) -> bool:
    """Whether ``ident`` could be one of our ids; others are not looked up at all
    (PostgreSQL refuses NUL in text with an error, not an empty result)."""
    return 0 < len(ident) <= 64 and "\x00" not in ident


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as naive UTC; returns them aware (tzinfo=UTC)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC is required")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class StaffRole(enum.StrEnum):
    ADMIN = "admin"
    SECRETARY = "secretary"
    ARCHIVIST = "archivist"
    CHAIR = "chair"
    REVIEWER = "reviewer"


class SessionKind(enum.StrEnum):
    COUNCIL_MEETING = "council_meeting"
    TEAM_SESSION = "team_session"
    PRELIMINARY_SURVEY = "preliminary_survey"
    INTERVIEW = "interview"


class SessionStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"
    ARCHIVED = "archived"


class StakeholderGroup(enum.StrEnum):
    """Who an interviewee is, for the evaluation team's interviews."""

    STUDENT = "student"
    ALUMNUS = "alumnus"
    LECTURER = "lecturer"
    STAFF = "staff"
    MANAGER = "manager"
    EMPLOYER = "employer"
    OTHER = "other"


class ParticipantRole(enum.StrEnum):
    CHAIR = "chair"
    SECRETARY = "secretary"
    MEMBER = "member"
    TEAM_LEAD = "team_lead"
    REVIEWER = "reviewer"
    INTERVIEWEE = "interviewee"
    INSTITUTION_REP = "institution_rep"
    OBSERVER = "observer"
    # The meeting room of a hybrid session, joining as one participant for the people
    # present there (who are recorded by the secretary's roll call, not by this link).
    ROOM = "room"


# Council members must keep the camera on for the whole meeting (MOET letter 001).
CAMERA_REQUIRED_ROLES = frozenset(
    {ParticipantRole.CHAIR, ParticipantRole.SECRETARY, ParticipantRole.MEMBER}
)


# Who runs a live meeting: admits from the lobby, mutes, removes, ends it for everyone.
# In an interview the reviewers run it as well (see :func:`is_host`).
CONTROLLER_ROLES = frozenset(
    {ParticipantRole.CHAIR, ParticipantRole.SECRETARY, ParticipantRole.TEAM_LEAD}
)

# Not members of the council or the evaluation team: with ``Admission.INVITED`` these
# wait in the lobby until a host admits them.
GUEST_ROLES = frozenset(
    {ParticipantRole.INTERVIEWEE, ParticipantRole.INSTITUTION_REP, ParticipantRole.OBSERVER}
)


class Admission(enum.StrEnum):
    """Who enters a session's meeting directly and who waits in its lobby.

    Only people on the session's roster have a join link at all; the lobby is where a
    host sees who is asking to come in and lets them in (or not). Hosts never wait.
    """

    LOBBY = "lobby"  # everyone but the hosts waits to be admitted
    INVITED = "invited"  # council and team members enter directly; guests wait
    OPEN = "open"  # everyone on the roster enters directly


def is_host(session_kind: str, role: str) -> bool:
    """Whether ``role`` runs a session of ``session_kind`` (admit, mute, remove, end)."""
    return role in CONTROLLER_ROLES or (
        session_kind == SessionKind.INTERVIEW and role == ParticipantRole.REVIEWER
    )


def must_wait(session: MeetingSession, participant: Participant) -> bool:
    """Whether ``participant`` waits in the lobby before entering ``session``.

    Someone a host admitted once (``admitted_at``) comes back directly, e.g. after a
    reconnect or a server restart.
    """
    if participant.admitted_at is not None or is_host(session.kind, participant.role):
        return False
    if session.admission == Admission.OPEN:
        return False
    if session.admission == Admission.INVITED:
        return participant.role in GUEST_ROLES
    return True


def public_name(p: Participant) -> str:
    """The name other participants, transcripts and archives show."""
    return p.pseudonym or p.name


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    # The language the user chose last (vi/en); None: the server's default.
    language: Mapped[str | None] = mapped_column(String(5), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A bearer token for scripts; only its SHA-256 is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class LoginSession(Base):
    """A browser login (cookie); only the cookie value's SHA-256 is kept."""

    __tablename__ = "login_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class Dossier(Base):
    __tablename__ = "dossiers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(500))
    institution: Mapped[str] = mapped_column(String(500), default="")
    phase: Mapped[str] = mapped_column(String(20))  # evaluation | appraisal
    # Words Whisper should expect (names, programmes); None: the default accreditation terms.
    vocabulary: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    # An admin's legal hold on every stored object of the dossier (storage legal hold).
    legal_hold: Mapped[bool] = mapped_column(default=False)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MeetingSession(Base):
    """A session (phiên): one meeting or interview of a dossier."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    title: Mapped[str] = mapped_column(String(500))
    mode: Mapped[str] = mapped_column(String(10), default="online")  # online | hybrid
    language: Mapped[str] = mapped_column(String(10), default="vi")
    status: Mapped[str] = mapped_column(String(20), default=SessionStatus.SCHEDULED)
    scheduled_at: Mapped[datetime | None] = mapped_column(default=None)
    scheduled_end_at: Mapped[datetime | None] = mapped_column(default=None)
    admission: Mapped[str] = mapped_column(String(20), default=Admission.INVITED)
    # Camera and quorum rules (server.session_policy), resolved when the session is made.
    policy: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Participant(Base):
    __tablename__ = "participants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(30))
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    # What others, the transcript and the archive show (e.g. "SV-03"); the real name
    # above is for staff only.
    pseudonym: Mapped[str | None] = mapped_column(String(50), default=None)
    # Whom an interviewee speaks for (STAKEHOLDER_GROUPS): the reports count interviews
    # per group, as the evaluation guidelines ask for each.
    stakeholder_group: Mapped[str | None] = mapped_column(String(20), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Consent is evidence too: when, and to exactly which text (its SHA-256).
    consent_at: Mapped[datetime | None] = mapped_column(default=None)
    consent_text_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    consent_language: Mapped[str | None] = mapped_column(String(5), default=None)
    # Let in from the lobby (by ``admitted_by``, an actor string), and removed from the
    # meeting by a host (no rejoin); both also in the audit log.
    admitted_at: Mapped[datetime | None] = mapped_column(default=None)
    admitted_by: Mapped[str | None] = mapped_column(String(100), default=None)
    removed_at: Mapped[datetime | None] = mapped_column(default=None)
    removed_by: Mapped[str | None] = mapped_column(String(100), default=None)


class Recording(Base):
    """One recorded track of one participant, stored in the object store."""

    __tablename__ = "recordings"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    participant_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # audio | video
    # microphone | camera | screen (None for recordings made before screens were shared)
    source: Mapped[str | None] = mapped_column(String(20), default=None)
    codec: Mapped[str] = mapped_column(String(20))
    container: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20), default="recording")  # recording|stored|failed
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_s: Mapped[float | None] = mapped_column(Float, default=None)
    frames: Mapped[int] = mapped_column(Integer, default=0)
    object_key: Mapped[str | None] = mapped_column(String(500), default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)


class RecordingSegment(Base):
    """One closed segment of one track (about ``segment_s`` seconds), hashed the moment
    it closed and uploaded during the session. ``status``: ``spooled`` (hashed, only in
    the local spool: the store has not confirmed it yet) or ``stored``. ``offset_s`` is
    where it starts on its track's timeline; ``started_at`` the server time of its first
    frame. Rows are never deleted; the spool file is, once stored and assembled."""

    __tablename__ = "recording_segments"
    __table_args__ = (UniqueConstraint("connection_id", "track", "seq"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    participant_id: Mapped[str] = mapped_column(ForeignKey("participants.id"))
    connection_id: Mapped[str] = mapped_column(String(32))
    track: Mapped[str] = mapped_column(String(40))  # e.g. audio-0, video-1, screen-3
    kind: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(20))
    seq: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    offset_s: Mapped[float] = mapped_column(Float)
    duration_s: Mapped[float] = mapped_column(Float)
    frames: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    spool_path: Mapped[str] = mapped_column(String(1000))
    object_key: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), default="spooled", index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    stored_at: Mapped[datetime | None] = mapped_column(default=None)


class Composite(Base):
    """The session composite (mixed audio, the members' video in a grid, names and the
    time) and the per-participant continuous files it was made from (``details``).
    ``status``: pending, running (``progress`` 0..1), done, failed. A later composite
    (e.g. after an interrupted session went on) is a new row."""

    __tablename__ = "composites"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    object_key: Mapped[str | None] = mapped_column(String(500), default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    duration_s: Mapped[float | None] = mapped_column(Float, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    details: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)


class SegmentTranscript(Base):
    """A recording segment transcribed during the meeting (incremental mode): Whisper's
    lines for it, times from the segment's start. The session's transcript is made from
    these where every segment of a track has one (same model and language)."""

    __tablename__ = "segment_transcripts"

    segment_id: Mapped[str] = mapped_column(ForeignKey("recording_segments.id"),
                                            primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|done|failed
    model: Mapped[str] = mapped_column(String(500), default="")
    language: Mapped[str] = mapped_column(String(10), default="")
    result: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)


class Transcript(Base):
    """The merged, speaker-attributed transcript of a session."""

    __tablename__ = "transcripts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    status: Mapped[str] = mapped_column(
        String(20), default="pending"
    )  # pending|running|done|failed
    language: Mapped[str] = mapped_column(String(10))
    model: Mapped[str] = mapped_column(String(500), default="")
    error_code: Mapped[str | None] = mapped_column(String(100), default=None)
    error_detail: Mapped[str | None] = mapped_column(Text, default=None)
    error_params: Mapped[dict[str, Any] | None] = mapped_column(default=None)  # for the message
    # The job: which worker runs it, its last sign of life, which attempt this is.
    worker: Mapped[str | None] = mapped_column(String(100), default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Per track: {"tracks": [{recording, participant, status, error?}], "done", "total"}.
    progress: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    # Exports besides JSON and WebVTT: format (srt, txt, docx, pdf, speaker-<id>.vtt …) → key.
    exports: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    json_key: Mapped[str | None] = mapped_column(String(500), default=None)
    json_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    vtt_key: Mapped[str | None] = mapped_column(String(500), default=None)
    vtt_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)


async def newest_transcript(s: Any, session_id: str) -> Transcript | None:
    """The session's newest finished transcript (what every export, package and draft
    uses; a re-run makes a new one, the older ones stay)."""
    from sqlalchemy import select

    row: Transcript | None = (await s.execute(select(Transcript).where(
        Transcript.session_id == session_id, Transcript.status == "done")
        .order_by(Transcript.created_at.desc()).limit(1))).scalar_one_or_none()
    return row


class TranscriptSegment(Base):
    """One line of a transcript, kept in the database for display and search."""

    __tablename__ = "transcript_segments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    transcript_id: Mapped[str] = mapped_column(ForeignKey("transcripts.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    participant_id: Mapped[str] = mapped_column(ForeignKey("participants.id"))
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    folded: Mapped[str] = mapped_column(Text, default="")  # server.search.fold(text)


class SessionReport(Base):
    """A document made from a session's record (e.g. the attendance report), stored in
    the object store when the session ends. Write-once: a later report is a new row."""

    __tablename__ = "session_reports"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))  # attendance
    format: Mapped[str] = mapped_column(String(10))  # json | csv | pdf
    language: Mapped[str] = mapped_column(String(5))
    object_key: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """An evidence-relevant event. Append-only: triggers refuse UPDATE and DELETE."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(50), index=True)
    dossier_id: Mapped[str | None] = mapped_column(String(32), index=True, default=None)
    session_id: Mapped[str | None] = mapped_column(String(32), index=True, default=None)
    participant_id: Mapped[str | None] = mapped_column(String(32), default=None)
    actor: Mapped[str] = mapped_column(
        String(100), default=""
    )  # user:<id>, participant:<id>, system
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The hash chain (storage.chain): set when the event is flushed (server.audit).
    chain: Mapped[str] = mapped_column(String(80), default="")
    seq: Mapped[int] = mapped_column(Integer, default=0)
    prev_hash: Mapped[str] = mapped_column(String(64), default="")
    hash: Mapped[str] = mapped_column(String(64), default="")

    __table_args__ = (Index("uq_audit_events_chain_seq", "chain", "seq", unique=True),)


class AuditChain(Base):
    """The head of one audit chain: its last ``seq`` and that event's hash. Updated in
    the transaction that adds the event, which also serialises writers of a chain."""

    __tablename__ = "audit_chains"

    chain: Mapped[str] = mapped_column(String(80), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    head: Mapped[str] = mapped_column(String(64), default="")


class ArchivePackage(Base):
    """A stored archive package (storage.archive): a BagIt zip of a session's evidence,
    its hash and Merkle root. Write-once: a later package is a new row."""

    __tablename__ = "archive_packages"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id"), index=True)
    session_id: Mapped[str | None] = mapped_column(ForeignKey("sessions.id"), index=True,
                                                   default=None)
    object_key: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    merkle_root: Mapped[str] = mapped_column(String(64))
    files: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(100), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # An RFC 3161 stamp of the root (storage.timestamp): the TSA's time and name.
    timestamped_at: Mapped[datetime | None] = mapped_column(default=None)
    timestamp_tsa: Mapped[str | None] = mapped_column(String(500), default=None)


class DossierDocument(Base):
    """An evidence item (minh chứng) of a dossier: an uploaded file with its evidence code
    (e.g. ``H1.01.01.01``), title and description, stored write-once with its SHA-256.
    Never changed; ``deleted_at``/``deleted_by`` are set only by the audited retention
    action that removed the stored file after its retention date."""

    __tablename__ = "dossier_documents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id"), index=True)
    code: Mapped[str] = mapped_column(String(40), index=True)
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    filename: Mapped[str] = mapped_column(String(255))
    file_type: Mapped[str] = mapped_column(String(20))
    content_type: Mapped[str] = mapped_column(String(100))
    object_key: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    uploaded_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    deleted_by: Mapped[str | None] = mapped_column(String(100), default=None)


class MinutesVersion(Base):
    """One saved version of a session's minutes (biên bản): plain-text fields
    (``server.minutes.FIELDS``) and the SHA-256 of their canonical JSON. Never changed;
    numbered from 1 per session (the unique pair refuses a concurrent second save)."""

    __tablename__ = "minutes_versions"
    __table_args__ = (UniqueConstraint("session_id", "number"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MinutesResponse(Base):
    """A party's answer to one version: ``agree`` or ``comment`` (with text), bound to
    the version's number and hash. A response to an older version no longer counts."""

    __tablename__ = "minutes_responses"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    version_number: Mapped[int] = mapped_column(Integer)
    version_sha256: Mapped[str] = mapped_column(String(64))
    participant_id: Mapped[str] = mapped_column(ForeignKey("participants.id"))
    decision: Mapped[str] = mapped_column(String(10))  # agree | comment
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MinutesFinal(Base):
    """The locked minutes: the version every required party agreed to, and its PDF and
    DOCX as stored (write-once, hashed)."""

    __tablename__ = "minutes_final"

    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), primary_key=True)
    version_number: Mapped[int] = mapped_column(Integer)
    version_sha256: Mapped[str] = mapped_column(String(64))
    pdf_key: Mapped[str] = mapped_column(String(500))
    pdf_sha256: Mapped[str] = mapped_column(String(64))
    docx_key: Mapped[str] = mapped_column(String(500))
    docx_sha256: Mapped[str] = mapped_column(String(64))
    locked_at: Mapped[datetime] = mapped_column(default=utcnow)


class MinutesSignature(Base):
    """A party's detached CMS signature of the locked minutes' PDF (storage.signature),
    checked when it arrived and stored write-once beside the PDF."""

    __tablename__ = "minutes_signatures"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    participant_id: Mapped[str] = mapped_column(ForeignKey("participants.id"))
    object_key: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    signer: Mapped[str] = mapped_column(String(500))
    cert_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
