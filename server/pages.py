"""HTML pages: staff workspace, a session's evidence page, the participant's join page.

Pages are Jinja2 templates whose every string comes from the catalogue (``t``); the
ES modules in ``web/static/js`` do the rest through the JSON API. The interface
language is Vietnamese unless ``?lang=en`` (remembered in a cookie) or the setting
says otherwise.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from server import jointoken, joinwindow
from server.api.join import CONSENT_KEYS
from server.auth import IDENTITY_KEY
from server.i18n import LANGUAGES, for_language, normalise_language, t
from server.models import (
    MeetingSession,
    Participant,
    SessionStatus,
    utcnow,
)
from server.session_policy import session_policy
from server.state import DB, SECRET, SETTINGS

LANG_COOKIE = "hoidong_lang"


def page_language(request: web.Request) -> str:
    """``?lang=``, else the logged-in user's own choice, else the browser's cookie, else
    the server's default."""
    default = request.app[SETTINGS].ui_language
    asked = request.query.get("lang")
    if asked in LANGUAGES:
        return asked
    ident = request.get(IDENTITY_KEY)
    if ident is not None and ident.user.language in LANGUAGES:
        return str(ident.user.language)
    return normalise_language(request.cookies.get(LANG_COOKIE), default)


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    lang = page_language(request)
    context.update(
        lang=lang,
        other_lang="en" if lang == "vi" else "vi",
        t=lambda key, **params: t(key, lang, params),
        # "<" escaped so no catalogue text can close the <script> it is embedded in.
        catalogue_json=json.dumps(for_language(lang), ensure_ascii=False).replace("<", "\\u003c"),
    )
    resp = aiohttp_jinja2.render_template(template, request, context, status=status)
    if request.query.get("lang") in LANGUAGES:
        resp.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="Lax", path="/")
    return resp


def error_page(
    request: web.Request, status: int, code: str, params: dict[str, str] | None = None
) -> web.Response:
    lang = page_language(request)
    other = "en" if lang == "vi" else "vi"
    return render(
        request,
        "error.html",
        status=status,
        code=code,
        message=t(code, lang, params),
        other_message=t(code, other, params),
    )


async def index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/staff")


async def staff_page(request: web.Request) -> web.Response:
    return render(request, "staff.html")


async def session_page(request: web.Request) -> web.Response:
    return render(request, "session.html", session_id=request.match_info["session_id"])


async def archive_page(request: web.Request) -> web.Response:
    return render(request, "archive.html")


async def player_page(request: web.Request) -> web.Response:
    return render(request, "player.html", session_id=request.match_info["session_id"])


async def join_page(request: web.Request) -> web.Response:
    session_id = request.match_info["session_id"]
    token = request.match_info["token"]
    try:
        claims = jointoken.verify(request.app[SECRET], token, session_id=session_id)
    except jointoken.JoinTokenError as exc:
        status = (
            410 if exc.code == "join.expired" else 403 if exc.code == "join.wrong_session" else 401
        )
        return error_page(request, status, exc.code)
    async with request.app[DB].session() as s:
        participant = await s.get(Participant, claims.participant_id)
        session = await s.get(MeetingSession, claims.session_id)
    if participant is None or session is None or participant.session_id != session.id:
        return error_page(request, 404, "participant.not_found")
    if session.status not in (SessionStatus.SCHEDULED, SessionStatus.LIVE):
        return error_page(request, 409, "session.ended")
    try:
        joinwindow.check(session, participant.role, request.app[SETTINGS], utcnow())
    except joinwindow.OutsideWindow as exc:
        return error_page(request, 403, exc.code, exc.params)
    lang = page_language(request)
    return render(
        request,
        "join.html",
        token=token,
        session=session,
        participant=participant,
        role_label=t(f"role.{participant.role}", lang),
        camera_required=session_policy(session).camera_required(participant.role),
        consent_keys=CONSENT_KEYS,
        consented=participant.consent_at is not None,
    )


async def minutes_page(request: web.Request) -> web.Response:
    """A party's page for agreeing to the minutes (the personal link is the credential;
    a forged, expired or other-session link gets an error page, nothing else)."""
    session_id = request.match_info["session_id"]
    token = request.match_info["token"]
    try:
        jointoken.verify(request.app[SECRET], token, session_id=session_id, typ="minutes")
    except jointoken.JoinTokenError as exc:
        status = (
            410 if exc.code == "join.expired" else 403 if exc.code == "join.wrong_session" else 401
        )
        return error_page(request, status, exc.code)
    return render(request, "minutes.html", token=token, session_id=session_id)


async def verify_page(request: web.Request) -> web.Response:
    """The public verification page (no login)."""
    return render(request, "verify.html")


async def stats_page(request: web.Request) -> web.Response:
    """The statistics page (staff; its figures come from /api/stats)."""
    return render(request, "stats.html")
