"""Minutes (biên bản) agreed by all parties, bound to the exact text agreed.

* **Versions.** The secretary saves the minutes as plain-text fields (:data:`FIELDS`);
  every save is a new :class:`~server.models.MinutesVersion` numbered from 1, with the
  SHA-256 of its canonical JSON (:func:`storage.canonical.canonical_json`) — and saving
  is sharing: the parties see the newest version. A save names the version it was
  edited from (``base``); if another save came first it is refused
  (``minutes.stale_base``), nothing lost, and the editor reloads.
* **Agreement.** Each required party (:data:`REQUIRED_ROLES` per session kind) agrees to,
  or comments on, one version by number *and* hash, through a personal signed link
  (:func:`server.jointoken.issue` with ``typ="minutes"``). A response to any version but
  the newest is refused (``minutes.stale_version``); a new version voids the agreements
  given to earlier ones (they are kept, shown as void, and ``minutes.agreements_voided``
  is recorded).
* **Final.** Once every required party has agreed to the newest version, the secretary
  locks the minutes (:func:`lock`; refused before, ``minutes.not_agreed``) — an explicit
  step, so that a version everyone agreed to can still be improved and agreed again:
  the PDF and DOCX (:mod:`server.minutes_docs`) are stored write-once, their hashes
  recorded (:class:`~server.models.MinutesFinal`, audit ``minutes.locked``), and no
  version or answer can be added (``minutes.locked``). Both go into the session's
  package.
* **Signatures** (a further step). A party may sign the locked PDF with its own key and
  send the detached CMS signature (:func:`sign`): it is checked against the stored PDF
  (:func:`storage.signature.check_detached`), stored write-once, recorded
  (``minutes.signed``) and packaged; ``hoidong verify`` checks it again.

Every step is an audit event in the session's chain.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from server import audit
from server.database import Database
from server.i18n import t
from server.minutes_docs import render_minutes_docx, render_minutes_pdf
from server.models import (
    Dossier,
    MeetingSession,
    MinutesFinal,
    MinutesResponse,
    MinutesSignature,
    MinutesVersion,
    Participant,
    SessionKind,
    TranscriptSegment,
    newest_transcript,
    public_name,
    utcnow,
)
from storage import ObjectStore, session_prefix, validate_key
from storage.canonical import canonical_json
from storage.signature import SignatureError, check_detached

__all__ = ["FIELDS", "MAX_FIELD_CHARS", "REQUIRED_ROLES", "MinutesError", "lock",
           "minutes_state", "respond", "save_version", "sign", "template"]

FIELDS = ("organisation", "number", "place", "date", "title", "attendees", "agenda",
          "content", "conclusions", "signatures")
MAX_FIELD_CHARS = 50_000
_VN = timezone(timedelta(hours=7))
# Who must agree, per session kind (MOET's letters: the preliminary survey's minutes are
# agreed by the institution and the evaluation team).
REQUIRED_ROLES: dict[str, tuple[str, ...]] = {
    SessionKind.COUNCIL_MEETING: ("chair", "secretary"),
    SessionKind.TEAM_SESSION: ("team_lead", "secretary"),
    SessionKind.PRELIMINARY_SURVEY: ("institution_rep", "team_lead"),
    SessionKind.INTERVIEW: ("team_lead", "reviewer"),
}


class MinutesError(Exception):
    """``status`` (HTTP) and ``code`` (catalogue key)."""

    def __init__(self, status: int, code: str, params: dict[str, str] | None = None) -> None:
        super().__init__(code)
        self.status, self.code, self.params = status, code, params or {}


def content_hash(content: dict[str, str]) -> str:
    return hashlib.sha256(canonical_json(content)).hexdigest()


def clean_content(raw: dict[str, Any]) -> dict[str, str]:
    """The fields as kept: every field a string (missing ones empty), no NUL, each at
    most MAX_FIELD_CHARS; anything else is refused (400)."""
    out = {}
    for name in FIELDS:
        value = raw.get(name, "")
        if not isinstance(value, str) or "\x00" in value or len(value) > MAX_FIELD_CHARS:
            raise MinutesError(400, "http.invalid_field", {"field": name})
        out[name] = value.replace("\r\n", "\n")
    extra = set(raw) - set(FIELDS)
    if extra:
        raise MinutesError(400, "http.invalid_field", {"field": sorted(extra)[0][:40]})
    return out


async def template(db: Database, session_id: str, lang: str) -> dict[str, str]:
    """A first draft for the session's kind, prefilled from the session: the dossier,
    the date and times, the mode, who attended with their role."""
    async with db.session() as s:
        m = await s.get(MeetingSession, session_id)
        assert m is not None
        d = await s.get(Dossier, m.dossier_id)
        people = (await s.execute(select(Participant).where(
            Participant.session_id == m.id).order_by(Participant.created_at))).scalars().all()
        newest = await newest_transcript(s, m.id)
        spoke = set() if newest is None else set((await s.execute(
            select(TranscriptSegment.participant_id).where(
                TranscriptSegment.transcript_id == newest.id).distinct())).scalars())

    def say(key: str, params: dict[str, object] | None = None) -> str:
        return t(key, lang, params)

    when = m.started_at or m.scheduled_at or m.created_at
    local = when.astimezone(_VN) if when else None
    ended = m.ended_at.astimezone(_VN) if m.ended_at else None
    attendees = "\n".join(f"- {public_name(p)}: {say('role.' + p.role)}" for p in people
                          if p.role != "room")
    return {
        "organisation": (d.institution if d and d.institution else say("minutes.default_org")
                         ).upper(),
        "number": say("minutes.default_number"),
        "place": "",
        "date": local.date().isoformat() if local else "",
        "title": say(f"minutes.title.{m.kind}"),
        "attendees": attendees,
        "agenda": say("minutes.default_agenda", {
            "dossier": d.title if d else "", "session": m.title,
            "start": local.strftime("%H:%M %d/%m/%Y") if local else "-",
            "end": ended.strftime("%H:%M") if ended else "-",
            "mode": say(f"mode.{m.mode}")}),
        # Who spoke, from the transcript: the secretary writes what they said.
        "content": "\n".join(say("minutes.spoke", {"name": public_name(p)})
                             for p in people if p.id in spoke),
        "conclusions": "",
        "signatures": "",
    }


@dataclass(frozen=True, slots=True)
class Party:
    participant_id: str
    name: str
    role: str
    agreed_at: datetime | None  # to the newest version


async def minutes_state(db: Database, session_id: str) -> dict[str, Any]:
    """Everything the pages show: versions (newest last) with their responses (void
    when given to an older version), the required parties and whether each agreed to
    the newest, and the final, if locked."""
    async with db.session() as s:
        m = await s.get(MeetingSession, session_id)
        assert m is not None
        versions = (await s.execute(select(MinutesVersion).where(
            MinutesVersion.session_id == m.id).order_by(MinutesVersion.number))).scalars().all()
        responses = (await s.execute(select(MinutesResponse).where(
            MinutesResponse.session_id == m.id).order_by(MinutesResponse.created_at))
        ).scalars().all()
        people = (await s.execute(select(Participant).where(
            Participant.session_id == m.id))).scalars().all()
        final = await s.get(MinutesFinal, m.id)
        signatures = (await s.execute(select(MinutesSignature).where(
            MinutesSignature.session_id == m.id).order_by(MinutesSignature.created_at))
        ).scalars().all()
    newest = versions[-1].number if versions else 0
    names = {p.id: public_name(p) for p in people}
    parties = _parties(m.kind, people, responses, newest)
    return {
        "session_id": m.id,
        "locked": final is not None,
        "current": newest or None,
        "versions": [{
            "number": v.number, "sha256": v.sha256, "content": v.content,
            "created_by": v.created_by, "created_at": v.created_at,
            "responses": [{"participant_id": r.participant_id,
                           "name": names.get(r.participant_id, ""),
                           "decision": r.decision, "comment": r.comment,
                           "at": r.created_at, "void": r.version_number != newest}
                          for r in responses if r.version_number == v.number]}
            for v in versions],
        "required": [{"participant_id": p.participant_id, "name": p.name, "role": p.role,
                      "agreed_at": p.agreed_at} for p in parties],
        "signatures": [{"participant_id": x.participant_id,
                        "name": names.get(x.participant_id, ""), "signer": x.signer,
                        "sha256": x.sha256, "at": x.created_at} for x in signatures],
        "final": None if final is None else {
            "version": final.version_number, "sha256": final.version_sha256,
            "pdf_sha256": final.pdf_sha256, "docx_sha256": final.docx_sha256,
            "locked_at": final.locked_at},
    }


def _parties(kind: str, people: Any, responses: Any, newest: int) -> list[Party]:
    roles = REQUIRED_ROLES.get(kind, ())
    agreed = {r.participant_id: r.created_at for r in responses
              if r.version_number == newest and r.decision == "agree"}
    return [Party(p.id, public_name(p), p.role, agreed.get(p.id))
            for p in people if p.role in roles and p.removed_at is None]


async def save_version(db: Database, session_id: str, raw: dict[str, Any], base: int | None,
                       *, actor: str) -> MinutesVersion:
    """Save a new version edited from version ``base`` (None: the first)."""
    content = clean_content(raw)
    async with db.session() as s:
        if await s.get(MinutesFinal, session_id) is not None:
            raise MinutesError(409, "minutes.locked")
        newest = (await s.execute(select(func.max(MinutesVersion.number)).where(
            MinutesVersion.session_id == session_id))).scalar_one() or 0
        if (base or 0) != newest:
            raise MinutesError(409, "minutes.stale_base", {"base": str(base or 0),
                                                           "newest": str(newest)})
        agreed = (await s.execute(select(func.count()).select_from(MinutesResponse).where(
            MinutesResponse.session_id == session_id, MinutesResponse.version_number == newest,
            MinutesResponse.decision == "agree"))).scalar_one()
        m = await s.get(MeetingSession, session_id)
        assert m is not None
        version = MinutesVersion(session_id=session_id, number=newest + 1, content=content,
                                 sha256=content_hash(content), created_by=actor)
        s.add(version)
        audit.record(s, "minutes.version_saved", actor=actor, dossier_id=m.dossier_id,
                     session_id=m.id, data={"version": version.number,
                                            "sha256": version.sha256})
        if agreed:
            audit.record(s, "minutes.agreements_voided", actor=actor, dossier_id=m.dossier_id,
                         session_id=m.id, data={"version": newest, "agreements": agreed,
                                                "by_version": version.number})
        try:
            await s.commit()
        except IntegrityError:  # a concurrent save took this number first
            raise MinutesError(409, "minutes.stale_base", {"base": str(base or 0),
                                                           "newest": str(newest + 1)}) from None
    return version


async def respond(db: Database, session_id: str, participant_id: str,
                  number: int, sha256: str, decision: str, comment: str) -> dict[str, Any]:
    """A party agrees to (or comments on) version ``number`` whose hash is ``sha256``.
    Returns the state."""
    if decision not in ("agree", "comment") or len(comment) > MAX_FIELD_CHARS \
            or "\x00" in comment or (decision == "comment" and not comment.strip()):
        raise MinutesError(400, "http.invalid_field", {"field": "comment"})
    async with db.session() as s:
        m = await s.get(MeetingSession, session_id)
        p = await s.get(Participant, participant_id)
        assert m is not None
        if p is None or p.session_id != m.id or p.removed_at is not None:
            raise MinutesError(403, "minutes.not_a_party")
        if decision == "agree" and p.role not in REQUIRED_ROLES.get(m.kind, ()):
            raise MinutesError(403, "minutes.not_a_party")
        if await s.get(MinutesFinal, m.id) is not None:
            raise MinutesError(409, "minutes.locked")
        newest = (await s.execute(select(MinutesVersion).where(
            MinutesVersion.session_id == m.id).order_by(MinutesVersion.number.desc())
            .limit(1))).scalar_one_or_none()
        if newest is None or newest.number != number or newest.sha256 != sha256:
            raise MinutesError(409, "minutes.stale_version", {
                "version": str(number), "newest": str(newest.number if newest else 0)})
        s.add(MinutesResponse(session_id=m.id, version_number=number, version_sha256=sha256,
                              participant_id=p.id, decision=decision, comment=comment))
        data = {"version": number, "sha256": sha256, **({"comment": comment} if comment else {})}
        if decision == "agree":
            audit.record(s, "minutes.agreed", actor=f"participant:{p.id}",
                         dossier_id=m.dossier_id, session_id=m.id, participant_id=p.id,
                         data=data)
        else:
            audit.record(s, "minutes.commented", actor=f"participant:{p.id}",
                         dossier_id=m.dossier_id, session_id=m.id, participant_id=p.id,
                         data=data)
        await s.commit()
    return await minutes_state(db, session_id)


async def lock(db: Database, store: ObjectStore, session_id: str, *, actor: str
               ) -> dict[str, Any]:
    """Lock the minutes at the newest version, which every required party must have
    agreed to; make and store the PDF and DOCX. Returns the state."""
    state = await minutes_state(db, session_id)
    if state["locked"]:
        raise MinutesError(409, "minutes.locked")
    required = state["required"]
    if not state["versions"] or not required:
        raise MinutesError(409, "minutes.no_parties")
    waiting = [x["name"] for x in required if not x["agreed_at"]]
    if waiting:
        raise MinutesError(409, "minutes.not_agreed", {"names": ", ".join(waiting)})
    version = state["versions"][-1]
    doc = {"content": version["content"], "version": version["number"],
           "sha256": version["sha256"],
           "parties": [{"name": x["name"], "role": x["role"],
                        "agreed_at": x["agreed_at"].isoformat()} for x in state["required"]]}

    def text(key: str, params: Any) -> str:
        return t(key, "vi", params)

    pdf = await asyncio.to_thread(render_minutes_pdf, doc, text)
    docx = await asyncio.to_thread(render_minutes_docx, doc, text)
    async with db.session() as s:
        m = await s.get(MeetingSession, session_id)
        assert m is not None
    base = f"{session_prefix(m.dossier_id, m.id)}minutes/v{version['number']}"
    pdf_obj = await store.put_bytes(validate_key(f"{base}/minutes.pdf"), pdf, "application/pdf")
    docx_obj = await store.put_bytes(
        validate_key(f"{base}/minutes.docx"), docx,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
    async with db.session() as s:
        s.add(MinutesFinal(session_id=m.id, version_number=version["number"],
                           version_sha256=version["sha256"], pdf_key=pdf_obj.key,
                           pdf_sha256=pdf_obj.sha256, docx_key=docx_obj.key,
                           docx_sha256=docx_obj.sha256, locked_at=utcnow()))
        audit.record(s, "minutes.locked", actor=actor, dossier_id=m.dossier_id, session_id=m.id,
                     data={"version": version["number"], "sha256": version["sha256"],
                           "pdf_sha256": pdf_obj.sha256, "docx_sha256": docx_obj.sha256,
                           "pdf_key": pdf_obj.key, "docx_key": docx_obj.key})
        try:
            await s.commit()
        except IntegrityError:  # locked by a concurrent call: the first one stands
            raise MinutesError(409, "minutes.locked") from None
    return await minutes_state(db, session_id)



async def sign(db: Database, store: ObjectStore, session_id: str, participant_id: str,
               signature: bytes) -> MinutesSignature:
    """Keep a party's detached CMS signature of the locked PDF, once it checks."""
    async with db.session() as s:
        m = await s.get(MeetingSession, session_id)
        p = await s.get(Participant, participant_id)
        final = await s.get(MinutesFinal, session_id)
        assert m is not None
        if p is None or p.session_id != m.id or p.role not in REQUIRED_ROLES.get(m.kind, ()):
            raise MinutesError(403, "minutes.not_a_party")
    if final is None:
        raise MinutesError(409, "minutes.not_locked")
    pdf = await store.get_bytes(final.pdf_key)
    try:
        signer = await asyncio.to_thread(check_detached, signature, pdf)
    except SignatureError as exc:
        raise MinutesError(422, exc.code, {"path": ".p7s"}) from None
    digest = hashlib.sha256(signature).hexdigest()
    row = MinutesSignature(session_id=m.id, participant_id=p.id, object_key="",
                           sha256=digest, signer=signer.subject[:500],
                           cert_sha256=signer.cert_sha256)
    key = validate_key(f"{final.pdf_key.rsplit('/', 1)[0]}/signatures/{p.id}-{row.id}.p7s")
    obj = await store.put_bytes(key, signature, "application/pkcs7-signature")
    row.object_key = obj.key
    async with db.session() as s:
        s.add(row)
        audit.record(s, "minutes.signed", actor=f"participant:{p.id}", dossier_id=m.dossier_id,
                     session_id=m.id, participant_id=p.id,
                     data={"version": final.version_number, "pdf_sha256": final.pdf_sha256,
                           "signature_sha256": digest, "signer": signer.subject,
                           "cert_sha256": signer.cert_sha256, "key": obj.key})
        await s.commit()
    return row
