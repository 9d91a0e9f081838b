"""Minutes API: the secretary drafts and saves versions; each required party agrees to
or comments on the newest version through a personal signed link; the locked minutes'
PDF and DOCX. See :mod:`server.minutes` for the rules."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, StringConstraints

from server import audit, jointoken, minutes
from server.access import log_access
from server.api.framework import LANG, ApiRegistry, Query
from server.api.schemas import Strict
from server.api.staff import session_from_path
from server.errors import ApiError
from server.i18n import normalise_language
from server.minutes import MinutesError
from server.models import MeetingSession, MinutesFinal, Participant, utcnow
from server.policy import require
from server.state import DB, SECRET, SETTINGS, STORE

api = ApiRegistry()
LINK_LIFETIME = timedelta(days=90)
Field = Annotated[str, StringConstraints(max_length=minutes.MAX_FIELD_CHARS)]


class MinutesContent(Strict):
    organisation: Field = ""
    number: Field = ""
    place: Field = ""
    date: Field = ""
    title: Field = ""
    attendees: Field = ""
    agenda: Field = ""
    content: Field = ""
    conclusions: Field = ""
    signatures: Field = ""


class VersionIn(Strict):
    base: int | None = None  # the version the editor started from (None: none yet)
    content: MinutesContent


class ResponseOut(BaseModel):
    participant_id: str
    name: str
    decision: str
    comment: str
    at: datetime
    void: bool


class VersionOut(BaseModel):
    number: int
    sha256: str
    content: dict[str, str]
    created_by: str
    created_at: datetime
    responses: list[ResponseOut]


class PartyOut(BaseModel):
    participant_id: str
    name: str
    role: str
    agreed_at: datetime | None


class FinalOut(BaseModel):
    version: int
    sha256: str
    pdf_sha256: str
    docx_sha256: str
    locked_at: datetime


class SignatureOut(BaseModel):
    participant_id: str
    name: str
    signer: str
    sha256: str
    at: datetime


class MinutesOut(BaseModel):
    session_id: str
    locked: bool
    current: int | None
    versions: list[VersionOut]
    required: list[PartyOut]
    signatures: list[SignatureOut]
    final: FinalOut | None


class SignIn(Strict):
    token: Annotated[str, StringConstraints(max_length=4096)]
    signature: Annotated[str, StringConstraints(max_length=2 * 1024 * 1024)]  # base64, DER


class LinkOut(BaseModel):
    participant_id: str
    name: str
    role: str
    url: str


class PartyViewIn(Strict):
    token: Annotated[str, StringConstraints(max_length=4096)]


class PartyViewOut(BaseModel):
    session_title: str
    party: PartyOut
    required_party: bool
    locked: bool
    version: VersionOut | None


class RespondIn(Strict):
    token: Annotated[str, StringConstraints(max_length=4096)]
    version: int
    sha256: Annotated[str, StringConstraints(min_length=64, max_length=64)]
    decision: Literal["agree", "comment"]
    comment: Annotated[str, StringConstraints(max_length=minutes.MAX_FIELD_CHARS)] = ""


def _fail(exc: MinutesError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.params)


@api.route("GET", "/api/sessions/{session_id}/minutes", summary="The session's minutes: "
           "every version with its hash and the parties' responses, who must agree, and "
           "the final once locked", response=MinutesOut)
async def get_minutes(request: web.Request) -> MinutesOut:
    require(request, "minutes.read")
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
    return MinutesOut.model_validate(await minutes.minutes_state(request.app[DB], m.id))


@api.route("GET", "/api/sessions/{session_id}/minutes/template", summary="A first draft "
           "of the minutes for the session's kind, prefilled from the session",
           response=MinutesContent, query=[LANG])
async def minutes_template(request: web.Request) -> MinutesContent:
    require(request, "minutes.edit")
    lang = normalise_language(request.query.get("lang"), "vi")
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
    return MinutesContent.model_validate(await minutes.template(request.app[DB], m.id, lang))


@api.route("POST", "/api/sessions/{session_id}/minutes/versions", summary="Save (and "
           "share) a new version of the minutes, edited from version `base`; refused if "
           "another save came first or the minutes are locked", body=VersionIn,
           response=MinutesOut, status=201)
async def save_minutes(request: web.Request, body: VersionIn) -> MinutesOut:
    who = require(request, "minutes.edit")
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
    try:
        await minutes.save_version(request.app[DB], m.id, body.content.model_dump(), body.base,
                                   actor=who.actor)
    except MinutesError as exc:
        raise _fail(exc) from None
    return MinutesOut.model_validate(await minutes.minutes_state(request.app[DB], m.id))


@api.route("POST", "/api/sessions/{session_id}/minutes/lock", summary="Lock the minutes at "
           "the newest version, once every required party agreed to it: the PDF and DOCX "
           "are made and their hashes recorded", response=MinutesOut)
async def lock_minutes(request: web.Request) -> MinutesOut:
    who = require(request, "minutes.edit")
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
    try:
        state = await minutes.lock(request.app[DB], request.app[STORE], m.id, actor=who.actor)
    except MinutesError as exc:
        raise _fail(exc) from None
    return MinutesOut.model_validate(state)


@api.route("POST", "/api/sessions/{session_id}/minutes/links", summary="Personal links "
           "for the parties who must agree (no account needed)", response=list[LinkOut],
           status=201)
async def minutes_links(request: web.Request) -> list[LinkOut]:
    who = require(request, "minutes.edit")
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
    state = await minutes.minutes_state(request.app[DB], m.id)
    now, out = utcnow(), []
    for party in state["required"]:
        token = jointoken.issue(request.app[SECRET], session_id=m.id,
                                participant_id=party["participant_id"], role=party["role"],
                                now=now, lifetime=LINK_LIFETIME, typ="minutes")
        out.append(LinkOut(participant_id=party["participant_id"], name=party["name"],
                           role=party["role"],
                           url=f"{request.app[SETTINGS].resolved_public_url}"
                               f"/minutes/{m.id}/{token}"))
    async with request.app[DB].session() as s:
        audit.record(s, "minutes.links_issued", actor=who.actor, dossier_id=m.dossier_id,
                     session_id=m.id, data={"parties": [x.participant_id for x in out]})
        await s.commit()
    return out


async def _final_file(request: web.Request, fmt: str) -> web.Response:
    who = require(request, "minutes.read")
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
        final = await s.get(MinutesFinal, m.id)
    if final is None:
        raise ApiError(404, "minutes.not_locked")
    key, sha = (final.pdf_key, final.pdf_sha256) if fmt == "pdf" else (
        final.docx_key, final.docx_sha256)
    data = await request.app[STORE].get_bytes(key)
    await log_access(request, who, "downloaded", dossier_id=m.dossier_id, session_id=m.id,
                     what=f"minutes.{fmt}", version=final.version_number, sha256=sha)
    ctype = "application/pdf" if fmt == "pdf" else (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
    return web.Response(body=data, content_type=ctype, headers={
        "X-Content-SHA256": sha,
        "Content-Disposition": f'attachment; filename="minutes-{m.id}.{fmt}"'})


@api.route("GET", "/api/sessions/{session_id}/minutes.pdf", summary="The locked minutes "
           "as an A4 PDF", response=None, response_content_type="application/pdf")
async def minutes_pdf(request: web.Request) -> web.Response:
    return await _final_file(request, "pdf")


@api.route("GET", "/api/sessions/{session_id}/minutes.docx", summary="The locked minutes "
           "as a Word document", response=None,
           response_content_type="application/vnd.openxmlformats-officedocument."
           "wordprocessingml.document")
async def minutes_docx(request: web.Request) -> web.Response:
    return await _final_file(request, "docx")


# -- the parties, through their personal link -----------------------------------------

async def _party(request: web.Request, token: str) -> tuple[MeetingSession, Participant]:
    try:
        claims = jointoken.verify(request.app[SECRET], token, typ="minutes")
    except jointoken.JoinTokenError as exc:
        raise ApiError(401, exc.code) from None
    async with request.app[DB].session() as s:
        p = await s.get(Participant, claims.participant_id)
        m = await s.get(MeetingSession, claims.session_id)
    if p is None or m is None or p.session_id != m.id:
        raise ApiError(404, "participant.not_found")
    return m, p


@api.route("POST", "/api/minutes/view", summary="What a party's link shows: the newest "
           "version of the minutes and the party's own responses", body=PartyViewIn,
           response=PartyViewOut, auth="join")
async def party_view(request: web.Request, body: PartyViewIn) -> PartyViewOut:
    m, p = await _party(request, body.token)
    state = await minutes.minutes_state(request.app[DB], m.id)
    mine = next((x for x in state["required"] if x["participant_id"] == p.id), None)
    version: dict[str, Any] | None = state["versions"][-1] if state["versions"] else None
    return PartyViewOut(
        session_title=m.title, required_party=mine is not None, locked=state["locked"],
        party=PartyOut(participant_id=p.id, name=mine["name"] if mine else p.name,
                       role=p.role, agreed_at=mine["agreed_at"] if mine else None),
        version=VersionOut.model_validate(version) if version else None)


@api.route("GET", "/api/minutes/final.pdf", summary="The locked minutes' PDF for a party "
           "(`?token=` the personal link's token), to read and to sign", response=None,
           response_content_type="application/pdf", auth="join", query=[
               Query("token", {"type": "string"}, "The party's personal link's token",
                     required=True)])
async def party_pdf(request: web.Request) -> web.Response:
    m, p = await _party(request, request.query.get("token", ""))
    async with request.app[DB].session() as s:
        final = await s.get(MinutesFinal, m.id)
    if final is None:
        raise ApiError(404, "minutes.not_locked")
    await log_access(request, f"participant:{p.id}", "downloaded", dossier_id=m.dossier_id,
                     session_id=m.id, what="minutes.pdf", version=final.version_number,
                     sha256=final.pdf_sha256)
    data = await request.app[STORE].get_bytes(final.pdf_key)
    return web.Response(body=data, content_type="application/pdf", headers={
        "X-Content-SHA256": final.pdf_sha256,
        "Content-Disposition": f'attachment; filename="minutes-{m.id}.pdf"'})


@api.route("POST", "/api/minutes/sign", summary="A party's digital signature of the locked "
           "PDF: a detached CMS (PKCS #7) SignedData, DER, base64; checked against the "
           "stored PDF, then kept write-once and recorded", body=SignIn, response=MinutesOut,
           status=201, auth="join", errors=[403, 422])
async def party_sign(request: web.Request, body: SignIn) -> MinutesOut:
    m, p = await _party(request, body.token)
    try:
        raw = base64.b64decode(body.signature, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "signature.unreadable", {"path": ".p7s"}) from None
    try:
        await minutes.sign(request.app[DB], request.app[STORE], m.id, p.id, raw)
    except MinutesError as exc:
        raise _fail(exc) from None
    return MinutesOut.model_validate(await minutes.minutes_state(request.app[DB], m.id))


@api.route("POST", "/api/minutes/respond", summary="A party agrees to, or comments on, the "
           "newest version (named by number and SHA-256)", body=RespondIn,
           response=MinutesOut, auth="join", errors=[403])
async def party_respond(request: web.Request, body: RespondIn) -> MinutesOut:
    m, p = await _party(request, body.token)
    try:
        state = await minutes.respond(request.app[DB], m.id, p.id, body.version, body.sha256,
                                      body.decision, body.comment)
    except MinutesError as exc:
        raise _fail(exc) from None
    return MinutesOut.model_validate(state)
