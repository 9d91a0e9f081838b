"""Staff API: login, dossiers, sessions, participants, starting and ending sessions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server import audit, auth, control, jointoken
from server.api.framework import ApiRegistry
from server.api.schemas import (
    DossierIn,
    DossierOut,
    LegalHoldIn,
    LoginIn,
    LoginOut,
    ParticipantIn,
    ParticipantOut,
    PolicyIn,
    SessionIn,
    SessionOut,
    UserOut,
    VocabularyIn,
)
from server.errors import ApiError
from server.models import (
    Base,
    Dossier,
    MeetingSession,
    Participant,
    SessionStatus,
    plausible_id,
    utcnow,
)
from server.policy import require
from server.session_policy import resolve, session_policy
from server.state import DB, SECRET, SETTINGS, STORE

api = ApiRegistry()
T = TypeVar("T", bound=Base)


async def get_or_404(s: AsyncSession, model: type[T], ident: str, code: str) -> T:
    row = await s.get(model, ident) if plausible_id(ident) else None
    if row is None:
        raise ApiError(404, code)
    return row


async def session_from_path(s: AsyncSession, request: web.Request) -> MeetingSession:
    """The session named by the route's ``{session_id}``, or a 404."""
    return await get_or_404(s, MeetingSession, request.match_info["session_id"],
                            "session.not_found")


# -- login ----------------------------------------------------------------------------

@api.route("POST", "/api/login", summary="Log in (sets the login cookie)", body=LoginIn,
           response=LoginOut, auth="none", errors=[401])
async def login(request: web.Request, body: LoginIn) -> web.Response:
    settings = request.app[SETTINGS]
    new = await auth.login(
        request.app[DB], body.username, body.password, settings.login_session_hours
    )
    if new is None:
        raise ApiError(401, "auth.bad_credentials")
    out = LoginOut(user=UserOut.model_validate(new.user), csrf_token=new.csrf_token)
    resp = web.json_response(out.model_dump(mode="json"))
    resp.set_cookie(
        auth.COOKIE_NAME, new.cookie, httponly=True, samesite="Lax", secure=settings.cookie_secure,
        max_age=settings.login_session_hours * 3600, path="/",
    )
    return resp


@api.route("POST", "/api/logout", summary="Log out", auth="staff", response=None)
async def logout(request: web.Request) -> web.Response:
    auth.require_staff(request)
    cookie = request.cookies.get(auth.COOKIE_NAME)
    if cookie:
        await auth.logout(request.app[DB], cookie)
    resp = web.json_response({"ok": True})
    resp.del_cookie(auth.COOKIE_NAME, path="/")
    return resp


@api.route("GET", "/api/me", summary="The logged-in staff user", response=LoginOut)
async def me(request: web.Request) -> LoginOut:
    ident = auth.require_staff(request)
    return LoginOut(user=UserOut.model_validate(ident.user), csrf_token=ident.csrf_token or "")


# -- dossiers -------------------------------------------------------------------------

@api.route("POST", "/api/dossiers", summary="Create a dossier", body=DossierIn,
           response=DossierOut, status=201)
async def create_dossier(request: web.Request, body: DossierIn) -> DossierOut:
    ident = require(request, "dossier.create")
    async with request.app[DB].session() as s:
        d = Dossier(title=body.title, institution=body.institution, phase=body.phase,
                    created_by=ident.user.id)
        s.add(d)
        await s.flush()
        audit.record(s, "dossier.created", actor=ident.actor, dossier_id=d.id,
                     data={"title": d.title, "phase": d.phase})
        await s.commit()
        return DossierOut.model_validate(d)


@api.route("GET", "/api/dossiers", summary="List dossiers", response=list[DossierOut])
async def list_dossiers(request: web.Request) -> list[DossierOut]:
    require(request, "dossier.read")
    async with request.app[DB].session() as s:
        rows = (await s.execute(select(Dossier).order_by(Dossier.created_at.desc()))).scalars()
        return [DossierOut.model_validate(d) for d in rows]


@api.route("GET", "/api/dossiers/{dossier_id}", summary="One dossier", response=DossierOut)
async def get_dossier(request: web.Request) -> DossierOut:
    require(request, "dossier.read")
    async with request.app[DB].session() as s:
        d = await get_or_404(s, Dossier, request.match_info["dossier_id"], "dossier.not_found")
        return DossierOut.model_validate(d)


@api.route("PUT", "/api/dossiers/{dossier_id}/vocabulary", summary="The words Whisper "
           "should expect in this dossier's sessions (null: the default accreditation terms)",
           body=VocabularyIn, response=DossierOut)
async def set_vocabulary(request: web.Request, body: VocabularyIn) -> DossierOut:
    ident = require(request, "dossier.create")
    async with request.app[DB].session() as s:
        d = await get_or_404(s, Dossier, request.match_info["dossier_id"], "dossier.not_found")
        d.vocabulary = body.terms
        audit.record(s, "dossier.vocabulary", actor=ident.actor, dossier_id=d.id,
                     data={"terms": body.terms})
        await s.commit()
        return DossierOut.model_validate(d)


@api.route("PUT", "/api/dossiers/{dossier_id}/legal-hold", summary="Put every stored "
           "object of the dossier under a legal hold (nothing can be deleted, whatever its "
           "retention date) or release it; admins only, audited with the reason",
           body=LegalHoldIn, response=DossierOut)
async def set_legal_hold(request: web.Request, body: LegalHoldIn) -> DossierOut:
    ident = require(request, "dossier.legal_hold")
    async with request.app[DB].session() as s:
        d = await get_or_404(s, Dossier, request.match_info["dossier_id"], "dossier.not_found")
    store = request.app[STORE]
    keys = await store.list_keys(f"dossiers/{d.id}/")
    for key in keys:
        await store.set_legal_hold(key, body.hold)
    async with request.app[DB].session() as s:
        row = await s.get(Dossier, d.id)
        assert row is not None
        row.legal_hold = body.hold
        data = {"reason": body.reason, "objects": len(keys)}
        if body.hold:
            audit.record(s, "dossier.legal_hold_set", actor=ident.actor, dossier_id=d.id,
                         data=data)
        else:
            audit.record(s, "dossier.legal_hold_released", actor=ident.actor,
                         dossier_id=d.id, data=data)
        await s.commit()
        return DossierOut.model_validate(row)


# -- sessions -------------------------------------------------------------------------

def session_policy_from(kind: str, given: PolicyIn | None) -> dict[str, Any]:
    """The stored, fully resolved policy of a new session (defaults of its kind)."""
    chosen = None if given is None else given.model_dump(mode="json", exclude_unset=True)
    return resolve(kind, chosen).to_json()


@api.route("POST", "/api/dossiers/{dossier_id}/sessions", summary="Create a session",
           body=SessionIn, response=SessionOut, status=201)
async def create_session(request: web.Request, body: SessionIn) -> SessionOut:
    ident = require(request, "session.create")
    settings = request.app[SETTINGS]
    async with request.app[DB].session() as s:
        d = await get_or_404(s, Dossier, request.match_info["dossier_id"], "dossier.not_found")
        if body.scheduled_end_at is not None and (
            body.scheduled_at is None or body.scheduled_end_at <= body.scheduled_at
        ):
            raise ApiError(400, "session.bad_schedule")
        m = MeetingSession(
            dossier_id=d.id, kind=body.kind.value, title=body.title, mode=body.mode,
            language=body.language or settings.default_language, scheduled_at=body.scheduled_at,
            scheduled_end_at=body.scheduled_end_at, admission=body.admission.value,
            policy=session_policy_from(body.kind.value, body.policy),
        )
        s.add(m)
        await s.flush()
        audit.record(s, "session.created", actor=ident.actor, dossier_id=d.id, session_id=m.id,
                     data={"kind": m.kind, "title": m.title, "language": m.language,
                           "admission": m.admission, "mode": m.mode, "policy": m.policy})
        await s.commit()
        return SessionOut.model_validate(m)


@api.route("GET", "/api/dossiers/{dossier_id}/sessions", summary="List a dossier's sessions",
           response=list[SessionOut])
async def list_sessions(request: web.Request) -> list[SessionOut]:
    require(request, "session.read")
    async with request.app[DB].session() as s:
        d = await get_or_404(s, Dossier, request.match_info["dossier_id"], "dossier.not_found")
        rows = (await s.execute(
            select(MeetingSession).where(MeetingSession.dossier_id == d.id)
            .order_by(MeetingSession.created_at)
        )).scalars()
        return [SessionOut.model_validate(m) for m in rows]


@api.route("GET", "/api/sessions/{session_id}", summary="One session", response=SessionOut)
async def get_session(request: web.Request) -> SessionOut:
    require(request, "session.read")
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
        return SessionOut.model_validate(m)


@api.route("POST", "/api/sessions/{session_id}/start", summary="Start a session",
           response=SessionOut)
async def start_session(request: web.Request) -> SessionOut:
    ident = require(request, "session.control")
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
        if m.status != SessionStatus.SCHEDULED:
            raise ApiError(409, "session.not_scheduled", {"status": m.status})
        m.status = SessionStatus.LIVE
        m.started_at = utcnow()
        audit.record(s, "session.started", actor=ident.actor, dossier_id=m.dossier_id,
                     session_id=m.id)
        await s.commit()
        return SessionOut.model_validate(m)


@api.route("POST", "/api/sessions/{session_id}/end", summary="End a session for everyone; "
           "recordings are finished and stored before this returns, transcription follows",
           response=SessionOut)
async def end_session(request: web.Request) -> SessionOut:
    ident = require(request, "session.control")
    try:
        ended = await control.end_session(request.app, request.match_info["session_id"],
                                          ident.actor)
    except control.SessionStateError as exc:
        raise ApiError(404 if exc.code == "session.not_found" else 409, exc.code) from None
    return SessionOut.model_validate(ended)


# -- participants ---------------------------------------------------------------------

def participant_out(p: Participant, session: MeetingSession,
                    join_url: str | None = None) -> ParticipantOut:
    return ParticipantOut(
        id=p.id, session_id=p.session_id, name=p.name, role=p.role, email=p.email,
        pseudonym=p.pseudonym, stakeholder_group=p.stakeholder_group,
        consent_at=p.consent_at, admitted_at=p.admitted_at, removed_at=p.removed_at,
        join_url=join_url,
        camera_required=session_policy(session).camera_required(p.role),
    )


@api.route("POST", "/api/sessions/{session_id}/participants", summary="Invite a participant; "
           "the response carries their personal join link", body=ParticipantIn,
           response=ParticipantOut, status=201)
async def add_participant(request: web.Request, body: ParticipantIn) -> ParticipantOut:
    ident = require(request, "participant.add")
    settings = request.app[SETTINGS]
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
        if m.status not in (SessionStatus.SCHEDULED, SessionStatus.LIVE):
            raise ApiError(409, "session.already_ended")
        p = Participant(session_id=m.id, name=body.name, role=body.role.value, email=body.email,
                        pseudonym=body.pseudonym,
                        stakeholder_group=body.stakeholder_group.value
                        if body.stakeholder_group else None)
        s.add(p)
        await s.flush()
        audit.record(s, "participant.invited", actor=ident.actor, dossier_id=m.dossier_id,
                     session_id=m.id, participant_id=p.id, data={"role": p.role})
        await s.commit()
    token = jointoken.issue(
        request.app[SECRET], session_id=p.session_id, participant_id=p.id, role=p.role,
        now=utcnow(), lifetime=timedelta(hours=settings.join_link_hours),
    )
    return participant_out(p, m, f"{settings.resolved_public_url}/join/{p.session_id}/{token}")


@api.route("GET", "/api/sessions/{session_id}/participants", summary="List participants",
           response=list[ParticipantOut])
async def list_participants(request: web.Request) -> list[ParticipantOut]:
    require(request, "participant.read")
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
        rows = (await s.execute(
            select(Participant).where(Participant.session_id == m.id)
            .order_by(Participant.created_at)
        )).scalars()
        return [participant_out(p, m) for p in rows]
