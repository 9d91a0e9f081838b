"""Participant API (no account: the personal join link is the credential)."""

from __future__ import annotations

import hashlib

from aiohttp import web

from server import audit, jointoken, joinwindow
from server.api.framework import ApiRegistry
from server.api.schemas import ConsentIn, ConsentOut
from server.errors import ApiError
from server.i18n import t
from server.models import MeetingSession, Participant, SessionStatus, utcnow
from server.state import DB, SECRET, SETTINGS

api = ApiRegistry()

CONSENT_KEYS = ("consent.what", "consent.why", "consent.how_long", "consent.who", "consent.rights")


def consent_text(lang: str) -> str:
    """The exact consent text shown in ``lang``; its SHA-256 is stored with the consent."""
    return "\n\n".join(t(k, lang) for k in ("consent.title", *CONSENT_KEYS))


def consent_sha256(lang: str) -> str:
    return hashlib.sha256(consent_text(lang).encode()).hexdigest()


@api.route("POST", "/api/join/consent", summary="Record a participant's consent to being "
           "recorded (bound to the SHA-256 of the exact text shown)", body=ConsentIn,
           response=ConsentOut, auth="join", errors=[403])
async def give_consent(request: web.Request, body: ConsentIn) -> ConsentOut:
    try:
        claims = jointoken.verify(request.app[SECRET], body.token)
    except jointoken.JoinTokenError as exc:
        raise ApiError(401, exc.code) from None
    async with request.app[DB].session() as s:
        p = await s.get(Participant, claims.participant_id)
        session = await s.get(MeetingSession, claims.session_id)
        if p is None or session is None or p.session_id != session.id:
            raise ApiError(404, "participant.not_found")
        if session.status not in (SessionStatus.SCHEDULED, SessionStatus.LIVE):
            raise ApiError(409, "session.ended")
        try:
            joinwindow.check(session, p.role, request.app[SETTINGS], utcnow())
        except joinwindow.OutsideWindow as exc:
            raise ApiError(403, exc.code, exc.params) from None
        # Consent is evidence: a repeated acceptance is logged again, never overwritten.
        p.consent_at = p.consent_at or utcnow()
        p.consent_text_sha256 = p.consent_text_sha256 or consent_sha256(body.language)
        p.consent_language = p.consent_language or body.language
        audit.record(s, "participant.consented", actor=f"participant:{p.id}",
                     dossier_id=session.dossier_id, session_id=session.id, participant_id=p.id,
                     data={"language": body.language, "text_sha256": consent_sha256(body.language)})
        await s.commit()
        return ConsentOut(participant_id=p.id, consent_at=p.consent_at)
