"""Request and response bodies of the JSON API (pydantic; also the OpenAPI schemas).

Times are ISO 8601 in UTC on the wire; the browser shows them in Vietnam time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
)

from server.models import Admission, ParticipantRole, SessionKind, StakeholderGroup

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LanguageCode = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(Strict):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    username: str
    display_name: str
    role: str


class LoginOut(BaseModel):
    user: UserOut
    csrf_token: str


class DossierIn(Strict):
    title: Text
    institution: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""
    phase: Literal["evaluation", "appraisal"]


class DossierOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    title: str
    institution: str
    phase: str
    vocabulary: list[str] | None = None
    legal_hold: bool = False
    created_at: datetime


class LegalHoldIn(Strict):
    """Put every stored object of the dossier under a legal hold, or release it."""

    hold: bool
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                             max_length=1000)]


Term = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class VocabularyIn(Strict):
    """Words Whisper should expect in this dossier's sessions (names of the institution,
    programmes, people); null: the default accreditation terms."""

    terms: list[Term] | None = Field(max_length=200)


class PolicyIn(Strict):
    """A session's camera and quorum rules; what is left out takes the kind's default
    (council: chair, secretary and members keep the camera on; quorum 2/3 with the
    chair; other kinds: no quorum rule)."""

    camera_required_roles: list[ParticipantRole] | None = Field(
        default=None, max_length=20,
        description="Roles that must keep the camera on (refused without one).")
    camera_grace_s: float | None = Field(
        default=None, ge=0, le=3600, description="Seconds a camera may be off before the "
        "participant is warned (default 10).")
    camera_escalation_s: float | None = Field(
        default=None, ge=0, le=36000, description="Seconds after the warning until the off "
        "interval is marked non-compliant (default 60).")
    camera_to_lobby: bool | None = Field(
        default=None, description="Move a non-compliant participant back to the lobby.")
    quorum_ratio: float | None = Field(
        default=None, gt=0, le=1, description="Share of the council (or team) that must be "
        "present with the camera on or in the room; null: no quorum rule.")
    quorum_needs_chair: bool | None = Field(
        default=None, description="The chair (team lead) must be present for the quorum.")


class SessionIn(Strict):
    kind: SessionKind
    title: Text
    # With its offset (RFC 3339): a time without one is refused, not guessed.
    scheduled_at: AwareDatetime | None = None
    scheduled_end_at: AwareDatetime | None = Field(
        default=None, description="Planned end; an interviewee's link works until it (+ margin)."
    )
    language: LanguageCode | None = Field(
        default=None, description="Spoken language (ISO 639-1); default from settings."
    )
    mode: Literal["online", "hybrid"] = "online"
    admission: Admission = Field(
        default=Admission.INVITED,
        description="Who waits in the lobby: lobby = everyone but the hosts; invited = "
        "guests (observers, interviewees, institution representatives) only; open = nobody.",
    )
    policy: PolicyIn | None = Field(default=None, description="Camera and quorum rules.")


class SessionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    dossier_id: str
    kind: str
    title: str
    mode: str
    language: str
    status: str
    scheduled_at: datetime | None
    scheduled_end_at: datetime | None
    admission: str
    policy: dict[str, Any] | None
    started_at: datetime | None
    ended_at: datetime | None
    created_at: datetime


class ParticipantIn(Strict):
    name: Name
    role: ParticipantRole
    pseudonym: Annotated[str, StringConstraints(
        strip_whitespace=True, min_length=1, max_length=50
    )] | None = Field(default=None, description="What others, transcripts and archives show "
                      "(e.g. SV-03); the real name stays with staff.")
    email: Annotated[str, StringConstraints(
        strip_whitespace=True, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$"
    )] | None = None
    stakeholder_group: StakeholderGroup | None = Field(
        default=None, description="For interviewees: the group they speak for.")


class ParticipantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    session_id: str
    name: str
    role: str
    email: str | None
    pseudonym: str | None
    stakeholder_group: str | None = None
    consent_at: datetime | None
    admitted_at: datetime | None = None
    removed_at: datetime | None = None
    join_url: str | None = Field(
        default=None, description="Personal join link; returned when the participant is added."
    )
    camera_required: bool


class RecordingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    participant_id: str
    kind: str
    source: str | None = Field(default=None, description="microphone, camera or screen")
    codec: str
    container: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    frames: int
    object_key: str | None
    sha256: str | None
    size: int | None
    media_url: str


class TranscriptLine(BaseModel):
    participant_id: str
    speaker: str
    role: str
    start: float
    end: float
    text: str


class TranscriptOut(BaseModel):
    session_id: str
    status: str
    language: str
    model: str
    error: dict[str, Any] | None
    sha256: str | None
    segments: list[TranscriptLine]
    progress: dict[str, Any] | None = Field(
        default=None, description="Per track: {tracks: [{recording, participant, status, "
        "error, lines, incremental, started_at, ended_at}], done, total}.")
    exports: dict[str, str] = Field(default_factory=dict,
                                    description="Export format → download URL.")


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: datetime
    kind: str
    session_id: str | None
    participant_id: str | None
    actor: str
    data: dict[str, Any]
    chain: str
    seq: int
    prev_hash: str
    hash: str


class ChainBreakOut(BaseModel):
    seq: int
    event_id: int | None
    code: str
    message: dict[str, str]


class ChainCheckOut(BaseModel):
    chain: str
    ok: bool
    events: int
    head: str
    broken: ChainBreakOut | None


class ConsentIn(Strict):
    token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    accepted: Literal[True]
    language: Literal["vi", "en"] = "vi"

    @field_validator("accepted", mode="before")
    @classmethod
    def _only_true(cls, value: object) -> object:
        # A literal matches by equality, so 1 would pass for true even in strict mode.
        if value is not True:
            raise ValueError("accepted must be true")
        return value


class ConsentOut(BaseModel):
    participant_id: str
    consent_at: datetime


class RoomPresenceIn(Strict):
    participant_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    present: StrictBool = Field(description="In the meeting room from now (true) or no "
                                "longer.")


class SegmentOut(BaseModel):
    """One recording segment: where it lies on its track, its hash, whether it is stored."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    participant_id: str
    connection_id: str
    track: str
    kind: str
    source: str
    seq: int
    started_at: datetime
    ended_at: datetime
    offset_s: float
    duration_s: float
    frames: int
    sha256: str
    size: int
    object_key: str
    status: str
    stored_at: datetime | None


class CompositeOut(BaseModel):
    """The latest composite of a session."""

    model_config = ConfigDict(from_attributes=True)
    id: str | None = None
    status: str
    progress: float
    sha256: str | None = None
    size: int | None = None
    duration_s: float | None = None
    error: str | None = None
    details: dict[str, Any] | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None
    media_url: str | None = None
