"""The JSON API and the join pages against the real app on a real port.

Everything goes over HTTP to the app started by ``tests.conftest.start_app``: the
OpenAPI document, the staff flow (bearer token and cookie login with CSRF), the
access policy table, refusal of bad input (always a 4xx with a bilingual body,
never a 500), the participant's join page and the consent API. The flow and the
bad-input table run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import re
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp

from server import jointoken
from server.api.join import consent_sha256
from server.app import api_registry
from server.auth import COOKIE_NAME, CSRF_HEADER
from server.i18n import both, catalogue, t
from server.models import ParticipantRole, SessionKind, StaffRole, utcnow
from server.policy import POLICY
from server.state import SECRET
from tests import figures
from tests.conftest import ADMIN_PASSWORD, Running, make_staff

JSON_HEADERS = {"Content-Type": "application/json"}


# -- helpers --------------------------------------------------------------------------


async def call(
    r: Running,
    method: str,
    path: str,
    *,
    json_body: Any = None,
    data: Any = None,
    headers: dict[str, str] | None = None,
    token: str | None = "admin",
) -> tuple[int, Any]:
    """(status, parsed JSON body) of one request; ``token`` "admin", a token, or None."""
    h: dict[str, str] = {}
    if token == "admin":
        h.update(r.auth())
    elif token is not None:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    resp = await r.client.request(method, path, json=json_body, data=data, headers=h)
    text = await resp.text()
    try:
        body = json.loads(text)
    except ValueError:
        body = text
    return resp.status, body


def assert_error(status: int, body: Any, want_status: int, code: str,
                 params: dict[str, object] | None = None) -> None:
    """A bilingual error body: {"error": {"code", "message": {"vi", "en"}}}."""
    assert status == want_status, (status, body)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert err["code"] == code, body
    message = err["message"]
    assert set(message) == {"vi", "en"}, body
    assert message["vi"].strip() and message["en"].strip(), body
    assert message["vi"] != message["en"], body
    assert code in catalogue(), f"{code} is not in the catalogue"
    if params is not None or "{" not in catalogue()[code]["en"]:
        assert message == both(code, params), body


def join_path(join_url: str) -> str:
    return "/join/" + join_url.split("/join/", 1)[1]


def token_of(join_url: str) -> str:
    return join_url.rsplit("/", 1)[1]


async def new_session(r: Running, kind: str = "council_meeting", **extra: Any) -> dict[str, Any]:
    dossier = await r.api("POST", "/api/dossiers", {"title": "Hồ sơ", "phase": "evaluation"}, 201)
    body = {"kind": kind, "title": f"Phiên {kind}", **extra}
    session: dict[str, Any] = await r.api(
        "POST", f"/api/dossiers/{dossier['id']}/sessions", body, 201
    )
    return session


async def add_participant(r: Running, session_id: str, name: str = "Nguyễn Văn An",
                          role: str = "member") -> dict[str, Any]:
    p: dict[str, Any] = await r.api(
        "POST", f"/api/sessions/{session_id}/participants", {"name": name, "role": role}, 201
    )
    return p


def alg_none_token(claims: dict[str, Any]) -> str:
    def b64(obj: dict[str, Any]) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


# -- OpenAPI --------------------------------------------------------------------------


def _refs(node: Any) -> list[str]:
    found: list[str] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for k, v in item.items():
                if k == "$ref":
                    found.append(v)
                else:
                    stack.append(v)
        elif isinstance(item, list):
            stack.extend(item)
    return found


async def test_openapi_lists_every_route_and_every_ref_resolves(running: Running) -> None:
    resp = await running.client.get("/api/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.")
    registered = {(rt.method.lower(), rt.path) for rt in api_registry().routes}
    assert len(registered) >= 15
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == registered
    # Every registered route is really served (not 404/405 from the router).
    for method, path in sorted(registered):
        concrete = re.sub(r"\{[^}]+\}", "0" * 32, path)
        r = await running.client.request(method, concrete)
        assert r.status not in (405,), (method, path, r.status)
        if "{" not in path and method == "get":
            assert r.status != 404, (method, path)
    refs = _refs(doc)
    assert refs, "the document should use $ref"
    schemas = doc["components"]["schemas"]
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, f"unresolved {ref}"
    for method, path in registered:
        op = doc["paths"][path][method]
        assert op["summary"] and op["responses"]
        for seg in re.findall(r"\{([^}]+)\}", path):
            assert {"name": seg, "in": "path", "required": True,
                    "schema": {"type": "string"}} in op["parameters"]
    for route in api_registry().routes:
        op = doc["paths"][route.path][route.method.lower()]
        if route.body is not None:
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/" + route.body.__name__)
        assert ("security" in op) == (route.auth == "staff"), route.path
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "cookie"}
    assert doc["components"]["securitySchemes"]["cookie"]["name"] == COOKIE_NAME


# -- the staff flow -------------------------------------------------------------------


async def test_full_flow_with_bearer_token(running_db: Running) -> None:
    r = running_db
    dossier = await r.api("POST", "/api/dossiers", {
        "title": "  Hồ sơ tự đánh giá Trường Đại học A ", "institution": "Trường ĐH A",
        "phase": "appraisal",
    }, 201)
    assert dossier["title"] == "Hồ sơ tự đánh giá Trường Đại học A"  # stripped
    assert dossier["phase"] == "appraisal" and re.fullmatch(r"[0-9a-f]{32}", dossier["id"])
    assert await r.api("GET", f"/api/dossiers/{dossier['id']}") == dossier
    assert dossier in await r.api("GET", "/api/dossiers")

    sessions = {}
    for kind in SessionKind:
        s = await r.api("POST", f"/api/dossiers/{dossier['id']}/sessions", {
            "kind": kind.value, "title": f"Phiên {kind.value}", "language": "vi",
            "scheduled_at": "2030-01-02T03:04:05Z", "mode": "hybrid",
        }, 201)
        assert s["kind"] == kind.value and s["status"] == "scheduled"
        assert s["dossier_id"] == dossier["id"] and s["mode"] == "hybrid"
        assert s["scheduled_at"].startswith("2030-01-02T03:04:05")
        assert s["started_at"] is None and s["ended_at"] is None
        sessions[kind.value] = s
    listed = await r.api("GET", f"/api/dossiers/{dossier['id']}/sessions")
    assert {s["id"] for s in listed} == {s["id"] for s in sessions.values()}
    defaulted = await r.api("POST", f"/api/dossiers/{dossier['id']}/sessions",
                            {"kind": "interview", "title": "Phỏng vấn"}, 201)
    assert defaulted["language"] == r.settings.default_language
    assert defaulted["mode"] == "online"

    sid = sessions["council_meeting"]["id"]
    invited = {}
    for role in ParticipantRole:
        p = await r.api("POST", f"/api/sessions/{sid}/participants",
                        {"name": f"Người {role.value}", "role": role.value,
                         "email": f"{role.value}@example.edu.vn"}, 201)
        assert p["session_id"] == sid and p["role"] == role.value and p["consent_at"] is None
        assert p["camera_required"] == (role.value in ("chair", "secretary", "member"))
        url = p["join_url"]
        m = re.fullmatch(re.escape(r.settings.resolved_public_url)
                         + r"/join/([0-9a-f]{32})/([\w-]+\.[\w-]+\.[\w-]+)", url)
        assert m, url
        assert m.group(1) == sid
        claims = jointoken.verify(r.app[SECRET], m.group(2), session_id=sid)
        assert (claims.participant_id, claims.role) == (p["id"], role.value)
        left = claims.expires_at - utcnow()
        assert timedelta(hours=r.settings.join_link_hours - 1) < left
        assert left <= timedelta(hours=r.settings.join_link_hours)
        invited[p["id"]] = p
    listed_p = await r.api("GET", f"/api/sessions/{sid}/participants")
    assert [p["id"] for p in listed_p] == list(invited)
    assert all(p["join_url"] is None for p in listed_p)  # the link is shown once

    started = await r.api("POST", f"/api/sessions/{sid}/start")
    assert started["status"] == "live" and started["started_at"]
    status, body = await call(r, "POST", f"/api/sessions/{sid}/start")
    assert_error(status, body, 409, "session.not_scheduled", {"status": "live"})
    assert (await r.api("GET", f"/api/sessions/{sid}"))["status"] == "live"
    # Participants may still be invited while the session is live.
    await add_participant(r, sid, "Khách mời", "observer")

    ended = await r.api("POST", f"/api/sessions/{sid}/end")
    assert ended["status"] == "ended" and ended["ended_at"]
    assert ended["started_at"] == started["started_at"]
    status, body = await call(r, "POST", f"/api/sessions/{sid}/end")
    assert_error(status, body, 409, "session.already_ended")
    status, body = await call(r, "POST", f"/api/sessions/{sid}/start")
    assert_error(status, body, 409, "session.not_scheduled", {"status": "ended"})
    status, body = await call(r, "POST", f"/api/sessions/{sid}/participants",
                              json_body={"name": "Muộn", "role": "member"})
    assert_error(status, body, 409, "session.already_ended")
    assert len(await r.api("GET", f"/api/sessions/{sid}/participants")) == len(invited) + 1

    # A session ended without ever starting still gets a start time.
    other = sessions["interview"]["id"]
    ended_early = await r.api("POST", f"/api/sessions/{other}/end")
    assert ended_early["started_at"] == ended_early["ended_at"]

    assert await r.api("GET", f"/api/sessions/{sid}/recordings") == []
    transcript = await r.api("GET", f"/api/sessions/{sid}/transcript")
    assert transcript["status"] == "none" and transcript["segments"] == []
    status, body = await call(r, "GET", f"/api/sessions/{sid}/transcript.vtt")
    assert_error(status, body, 404, "transcript.not_ready")
    status, body = await call(r, "GET", f"/api/sessions/{sid}/transcript.json")
    assert_error(status, body, 404, "transcript.not_ready")

    events = await r.api("GET", f"/api/sessions/{sid}/audit")
    kinds = [e["kind"] for e in events]
    assert kinds == (["session.created"] + ["participant.invited"] * len(invited)
                     + ["session.started", "participant.invited", "session.ended",
                        "report.stored"]), kinds
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    admin_actor = events[0]["actor"]
    assert admin_actor.startswith("user:")
    assert all(e["actor"] == admin_actor and e["session_id"] == sid for e in events
               if e["kind"] != "report.stored")
    assert events[-1]["actor"] == "system"  # the server stored the attendance report
    created = events[0]["data"]
    assert created == {"kind": "council_meeting", "title": "Phiên council_meeting",
                       "language": "vi", "admission": "invited", "mode": "hybrid",
                       "policy": created["policy"]}
    # The rules the session is held under, resolved when it was made (council defaults).
    assert created["policy"]["camera_required_roles"] == ["chair", "member", "secretary"]
    assert created["policy"]["quorum_needs_chair"] is True


# -- cookie login ---------------------------------------------------------------------


async def test_cookie_login_csrf_and_logout(running: Running) -> None:
    base = running.base_url
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        async def req(method: str, path: str, cookie: str | None = None,
                      csrf: str | None = None, body: Any = None) -> tuple[int, Any]:
            headers = {}
            if cookie is not None:
                headers["Cookie"] = f"{COOKIE_NAME}={cookie}"
            if csrf is not None:
                headers[CSRF_HEADER] = csrf
            async with http.request(method, base + path, json=body, headers=headers) as resp:
                return resp.status, await resp.json()

        for username, password in (("admin", "wrong"), ("nobody", ADMIN_PASSWORD),
                                   ("admin", ADMIN_PASSWORD.upper())):
            status, body = await req("POST", "/api/login",
                                     body={"username": username, "password": password})
            assert_error(status, body, 401, "auth.bad_credentials")

        async with http.post(base + "/api/login",
                             json={"username": "admin", "password": ADMIN_PASSWORD}) as resp:
            assert resp.status == 200
            login = await resp.json()
            morsel = resp.cookies[COOKIE_NAME]
        cookie = morsel.value
        assert len(cookie) >= 32
        assert morsel["httponly"] and morsel["samesite"] == "Lax" and morsel["path"] == "/"
        csrf = login["csrf_token"]
        assert csrf and csrf != cookie
        assert login["user"]["username"] == "admin" and login["user"]["role"] == "admin"

        # Safe methods need no CSRF token.
        status, me = await req("GET", "/api/me", cookie)
        assert status == 200 and me["csrf_token"] == csrf and me["user"] == login["user"]
        assert (await req("GET", "/api/dossiers", cookie))[0] == 200

        new = {"title": "Qua cookie", "phase": "evaluation"}
        status, body = await req("POST", "/api/dossiers", cookie, body=new)
        assert_error(status, body, 403, "auth.csrf")
        status, body = await req("POST", "/api/dossiers", cookie, csrf="x" + csrf, body=new)
        assert_error(status, body, 403, "auth.csrf")
        status, body = await req("POST", "/api/dossiers", cookie, csrf=csrf, body=new)
        assert status == 201 and body["title"] == "Qua cookie"
        status, listed = await req("GET", "/api/dossiers", cookie)
        assert [d["title"] for d in listed] == ["Qua cookie"]

        # A second login gets its own cookie and CSRF token; they do not mix.
        async with http.post(base + "/api/login",
                             json={"username": "admin", "password": ADMIN_PASSWORD}) as resp:
            other_cookie = resp.cookies[COOKIE_NAME].value
            other_csrf = (await resp.json())["csrf_token"]
        assert other_cookie != cookie and other_csrf != csrf
        status, body = await req("POST", "/api/dossiers", cookie, csrf=other_csrf, body=new)
        assert_error(status, body, 403, "auth.csrf")

        # Logging out is itself protected, then invalidates the cookie on the server.
        status, body = await req("POST", "/api/logout", cookie)
        assert_error(status, body, 403, "auth.csrf")
        async with http.post(base + "/api/logout", headers={
            "Cookie": f"{COOKIE_NAME}={cookie}", CSRF_HEADER: csrf,
        }) as resp:
            assert resp.status == 200
            assert resp.cookies[COOKIE_NAME].value == ""  # the browser drops it
        status, body = await req("GET", "/api/me", cookie)
        assert_error(status, body, 401, "auth.required")
        status, body = await req("POST", "/api/dossiers", cookie, csrf=csrf, body=new)
        assert_error(status, body, 401, "auth.required")
        assert (await req("GET", "/api/me", other_cookie))[0] == 200

    # A real cookie jar (as a browser keeps it) carries the login across requests.
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        async with browser.post(base + "/api/login",
                                json={"username": "admin", "password": ADMIN_PASSWORD}) as resp:
            csrf = (await resp.json())["csrf_token"]
        async with browser.get(base + "/api/me") as resp:
            assert resp.status == 200
        async with browser.post(base + "/api/logout", headers={CSRF_HEADER: csrf}) as resp:
            assert resp.status == 200
        async with browser.get(base + "/api/me") as resp:
            assert resp.status == 401


# -- access policy --------------------------------------------------------------------


async def test_access_policy_matches_the_table(running: Running) -> None:
    r = running
    tokens = {StaffRole.ADMIN: r.token}
    for role in StaffRole:
        if role != StaffRole.ADMIN:
            tokens[role] = await make_staff(r, f"staff_{role.value}", role.value)
    dossier = await r.api("POST", "/api/dossiers", {"title": "Hồ sơ", "phase": "evaluation"}, 201)
    session = await r.api("POST", f"/api/dossiers/{dossier['id']}/sessions",
                          {"kind": "team_session", "title": "Phiên"}, 201)
    did, sid = dossier["id"], session["id"]

    async def fresh_session() -> str:
        s = await r.api("POST", f"/api/dossiers/{did}/sessions",
                        {"kind": "interview", "title": "Phỏng vấn"}, 201)
        return str(s["id"])

    # action -> (method, path or a coroutine making one, body, success status)
    actions: dict[str, tuple[str, Any, Any, int]] = {
        "dossier.create": ("POST", "/api/dossiers", {"title": "T", "phase": "appraisal"}, 201),
        "dossier.read": ("GET", f"/api/dossiers/{did}", None, 200),
        "session.create": ("POST", f"/api/dossiers/{did}/sessions",
                           {"kind": "interview", "title": "P"}, 201),
        "session.read": ("GET", f"/api/sessions/{sid}", None, 200),
        "session.control": ("POST", "start", None, 200),
        "participant.add": ("POST", f"/api/sessions/{sid}/participants",
                            {"name": "N", "role": "observer"}, 201),
        "participant.read": ("GET", f"/api/sessions/{sid}/participants", None, 200),
        "recording.read": ("GET", f"/api/sessions/{sid}/recordings", None, 200),
        "transcript.read": ("GET", f"/api/sessions/{sid}/transcript", None, 200),
        "audit.read": ("GET", f"/api/sessions/{sid}/audit", None, 200),
        "attendance.read": ("GET", f"/api/sessions/{sid}/attendance", None, 200),
        # Allowed: refused for what the session is (not ended), not for who asks.
        "archive.create": ("POST", f"/api/sessions/{sid}/packages", None, 409),
        "archive.read": ("GET", f"/api/sessions/{sid}/packages", None, 200),
        "dossier.legal_hold": ("PUT", f"/api/dossiers/{did}/legal-hold",
                               {"hold": False, "reason": "kiểm tra"}, 200),
        # Allowed: refused for what was sent (not a multipart form), not for who sends.
        "document.upload": ("POST", f"/api/dossiers/{did}/documents", None, 400),
        "document.read": ("GET", f"/api/dossiers/{did}/documents", None, 200),
        "retention.read": ("GET", f"/api/dossiers/{did}/retention", None, 200),
        "minutes.edit": ("GET", f"/api/sessions/{sid}/minutes/template", None, 200),
        "minutes.read": ("GET", f"/api/sessions/{sid}/minutes", None, 200),
        "report.read": ("GET", "/api/stats", None, 200),
        "retention.delete": ("POST", f"/api/dossiers/{did}/retention/delete",
                             {"reason": "kiểm tra hết hạn", "confirm_dossier_id": did}, 200),
    }
    assert set(actions) == set(POLICY), "every policy action needs a row here"
    seen: dict[tuple[str, str], bool] = {}
    expected: dict[tuple[str, str], bool] = {}
    for action, (method, path, body, ok_status) in actions.items():
        for role, token in tokens.items():
            if path == "start":
                path_now = f"/api/sessions/{await fresh_session()}/start"
            else:
                path_now = path
            status, got = await call(r, method, path_now, json_body=body, token=token)
            if status == ok_status:
                seen[(action, role.value)] = True
            else:
                assert_error(status, got, 403, "auth.forbidden")
                seen[(action, role.value)] = False
            expected[(action, role.value)] = role == StaffRole.ADMIN or role in POLICY[action]
    assert seen == expected
    assert all(seen[(a, "admin")] for a in actions)
    assert not all(seen.values())  # the table does deny something

    # Anonymous callers and made-up credentials get 401 everywhere.
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer garbage"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer hd_" + secrets.token_urlsafe(32)},
        {"Authorization": "bearer " + r.token},  # the scheme is case-sensitive here
        {"Authorization": "Basic YWRtaW46cGFzc3dvcmQ="},
        {"Authorization": "Bearer " + r.token + "x"},
        {"Cookie": f"{COOKIE_NAME}=not-a-login"},
    ]
    for headers in bad_headers:
        for action, (method, path, body, _) in actions.items():
            if path == "start":
                path = f"/api/sessions/{sid}/start"
            status, got = await call(r, method, path, json_body=body, headers=headers,
                                     token=None)
            assert status == 401, (headers, action, status, got)
            assert_error(status, got, 401, "auth.required")
        status, got = await call(r, "GET", "/api/me", headers=headers, token=None)
        assert_error(status, got, 401, "auth.required")
    # Nothing was done by the refused calls: the session never started.
    assert (await r.api("GET", f"/api/sessions/{sid}"))["status"] == "scheduled"
    figures.record("access", {
        "actions": len(actions), "roles": len(tokens),
        "role_cells": len(seen), "denied_cells": sum(not v for v in seen.values()),
        "bad_credential_kinds": len(bad_headers),
        "bad_credential_cells": len(bad_headers) * (len(actions) + 1),
        "mismatches": 0,  # any mismatch fails the test before this line
        "command": "HOIDONG_WRITE_RESULTS=1 .venv/bin/pytest "
                   "tests/test_api.py::test_access_policy_matches_the_table",
    })


# -- bad input ------------------------------------------------------------------------


async def _slow_body(data: bytes, piece: int = 16 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), piece):
        yield data[i:i + piece]
        await asyncio.sleep(0.005)


async def test_bad_bodies_get_a_bilingual_4xx(running_db: Running) -> None:
    r = running_db
    session = await new_session(r)
    sid = session["id"]
    dossiers = "/api/dossiers"
    sessions = f"/api/dossiers/{session['dossier_id']}/sessions"
    participants = f"/api/sessions/{sid}/participants"
    ok_dossier = {"title": "T", "phase": "evaluation"}
    # (path, raw body or JSON, status, code, params)
    cases: list[tuple[str, Any, int, str, dict[str, object] | None]] = [
        (dossiers, b'{"title": ', 400, "http.bad_json", None),
        (dossiers, b"\xff\xfe\xfa garbage", 400, "http.bad_json", None),
        (dossiers, b"{'title': 'single quotes'}", 400, "http.bad_json", None),
        (dossiers, b"[" * 100_000, 400, "http.bad_json", None),  # too deep to decode
        (dossiers, b'{"title": ' + b"9" * 5000 + b"}", 400, "http.bad_json", None),
        (dossiers, b"NaN", 400, "http.invalid_field", {"field": "body"}),
        (dossiers, b"", 400, "http.invalid_field", {"field": "body"}),
        (dossiers, [ok_dossier], 400, "http.invalid_field", {"field": "body"}),
        (dossiers, "a string", 400, "http.invalid_field", {"field": "body"}),
        (dossiers, 42, 400, "http.invalid_field", {"field": "body"}),
        (dossiers, {**ok_dossier, "colour": "red"}, 400, "http.invalid_field",
         {"field": "colour"}),
        (dossiers, {"title": "T"}, 400, "http.invalid_field", {"field": "phase"}),
        (dossiers, {"phase": "evaluation"}, 400, "http.invalid_field", {"field": "title"}),
        (dossiers, {"title": "T", "phase": "final"}, 400, "http.invalid_field",
         {"field": "phase"}),
        (dossiers, {"title": "   ", "phase": "evaluation"}, 400, "http.invalid_field",
         {"field": "title"}),
        (dossiers, {"title": "x" * 501, "phase": "evaluation"}, 400, "http.invalid_field",
         {"field": "title"}),
        (dossiers, {"title": 12, "phase": "evaluation"}, 400, "http.invalid_field",
         {"field": "title"}),
        (dossiers, {"title": {"$gt": ""}, "phase": "evaluation"}, 400, "http.invalid_field",
         {"field": "title"}),
        (dossiers, {"title": "a\u0000b", "phase": "evaluation"}, 400, "http.bad_request",
         None),
        (sessions, {"kind": "party", "title": "P"}, 400, "http.invalid_field",
         {"field": "kind"}),
        (sessions, {"kind": "interview", "title": "P", "language": "Tiếng Việt"}, 400,
         "http.invalid_field", {"field": "language"}),
        (sessions, {"kind": "interview", "title": "P", "mode": "offline"}, 400,
         "http.invalid_field", {"field": "mode"}),
        (sessions, {"kind": "interview", "title": "P", "scheduled_at": "tomorrow"}, 400,
         "http.invalid_field", {"field": "scheduled_at"}),
        (participants, {"name": "N", "role": "king"}, 400, "http.invalid_field",
         {"field": "role"}),
        (participants, {"name": "N", "role": "member", "email": "not an email"}, 400,
         "http.invalid_field", {"field": "email"}),
        (participants, {"name": "N" * 201, "role": "member"}, 400, "http.invalid_field",
         {"field": "name"}),
        (participants, {"role": "member"}, 400, "http.invalid_field", {"field": "name"}),
        ("/api/login", {"username": "admin"}, 400, "http.invalid_field",
         {"field": "password"}),
        ("/api/login", {"username": "ad\u0000min", "password": "x"}, 400,
         "http.bad_request", None),
        ("/api/login", {"username": "a" * 65, "password": "x"}, 400, "http.invalid_field",
         {"field": "username"}),
        ("/api/join/consent", {"token": "x", "accepted": True, "language": "fr"}, 400,
         "http.invalid_field", {"field": "language"}),
        ("/api/join/consent", {"accepted": True}, 400, "http.invalid_field",
         {"field": "token"}),
        (dossiers, b" " * (256 * 1024) + b"{}", 413, "http.too_large", None),
        (dossiers, b"x" * (2 * 1024 * 1024), 413, "http.too_large", None),
    ]
    failures = []
    for path, body, want, code, params in cases:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        status, got = await call(r, "POST", path, data=data, headers=JSON_HEADERS)
        try:
            assert_error(status, got, want, code, params)
        except AssertionError as exc:
            failures.append((path, data[:80], str(exc)[:300]))
    assert not failures, failures

    # A body sent in pieces (chunked or slowly) is read whole before it is judged.
    padded = b"{" + b" " * (200 * 1024) + '"title": "Chậm", "phase": "evaluation"}'.encode()
    status, got = await call(r, "POST", dossiers, data=_slow_body(padded),
                             headers={**JSON_HEADERS, "Content-Length": str(len(padded))})
    assert status == 201 and got["title"] == "Chậm", (status, got)
    status, got = await call(r, "POST", dossiers, data=_slow_body(padded), headers=JSON_HEADERS)
    assert status == 201, (status, got)  # chunked transfer encoding
    oversized = b"[" + b" " * (300 * 1024) + b"]"
    status, got = await call(r, "POST", dossiers, data=_slow_body(oversized),
                             headers=JSON_HEADERS)
    assert_error(status, got, 413, "http.too_large")

    # The router's own errors on /api/ are bilingual JSON too.
    status, got = await call(r, "DELETE", dossiers)
    assert_error(status, got, 405, "http.method_not_allowed")
    status, got = await call(r, "GET", "/api/no-such-thing")
    assert_error(status, got, 404, "http.not_found")
    # Nothing slipped through: only the slow-body dossiers (and the fixture's) exist.
    titles = sorted(d["title"] for d in await r.api("GET", dossiers))
    assert titles == ["Chậm", "Chậm", "Hồ sơ"], titles


async def test_unknown_and_absurd_ids_are_404(running_db: Running) -> None:
    r = running_db
    session = await new_session(r)
    real_sid = session["id"]
    missing = [
        "0" * 32,
        "no-such-id",
        "x" * 2000,
        "%00",
        "a%00b",
        "%FF%FE",
        "%C3%A9" * 50,
        "1%20OR%201=1",
        "..%2F..%2Fetc%2Fpasswd",
    ]
    routes: list[tuple[str, str, Any, str]] = [
        ("GET", "/api/dossiers/{id}", None, "dossier.not_found"),
        ("GET", "/api/dossiers/{id}/sessions", None, "dossier.not_found"),
        ("POST", "/api/dossiers/{id}/sessions", {"kind": "interview", "title": "P"},
         "dossier.not_found"),
        ("GET", "/api/sessions/{id}", None, "session.not_found"),
        ("POST", "/api/sessions/{id}/start", None, "session.not_found"),
        ("POST", "/api/sessions/{id}/end", None, "session.not_found"),
        ("GET", "/api/sessions/{id}/participants", None, "session.not_found"),
        ("POST", "/api/sessions/{id}/participants", {"name": "N", "role": "member"},
         "session.not_found"),
        ("GET", "/api/sessions/{id}/recordings", None, "session.not_found"),
        ("GET", "/api/sessions/{id}/transcript", None, "session.not_found"),
        ("GET", "/api/sessions/{id}/transcript.vtt", None, "session.not_found"),
        ("GET", "/api/sessions/{id}/transcript.json", None, "session.not_found"),
        ("GET", "/api/sessions/{id}/audit", None, "session.not_found"),
        ("GET", "/api/sessions/{id}/audit/verify", None, "session.not_found"),
        ("POST", "/api/sessions/{id}/packages", None, "session.not_found"),
        ("GET", "/api/sessions/{id}/packages", None, "session.not_found"),
        ("POST", "/api/sessions/{id}/access", {"what": "player"}, "session.not_found"),
        ("GET", "/api/packages/{id}/download", None, "package.not_found"),
        ("POST", "/api/packages/{id}/verify", None, "package.not_found"),
        ("GET", "/api/sessions/{id}/attendance", None, "session.not_found"),
        ("GET", "/api/sessions/{id}/segments", None, "session.not_found"),
        ("GET", "/api/sessions/{id}/composite", None, "session.not_found"),
        ("GET", "/api/sessions/{id}/transcript.srt", None, "session.not_found"),
        ("GET", "/api/sessions/{id}/transcript.txt", None, "session.not_found"),
        ("GET", "/api/sessions/{id}/transcript.docx", None, "session.not_found"),
        ("GET", "/api/sessions/{id}/transcript.pdf", None, "session.not_found"),
        ("POST", "/api/sessions/{id}/transcript/rerun", None, "session.not_found"),
        ("PUT", "/api/dossiers/{id}/vocabulary", {"terms": None}, "dossier.not_found"),
        ("PUT", "/api/dossiers/{id}/legal-hold", {"hold": True, "reason": "r"},
         "dossier.not_found"),
        ("GET", "/api/sessions/{id}/composite.webm", None, "session.not_found"),
        ("GET", "/api/sessions/{id}/attendance.csv", None, "session.not_found"),
        ("GET", "/api/sessions/{id}/attendance.pdf", None, "session.not_found"),
        ("POST", "/api/sessions/{id}/room", {"participant_id": "x", "present": True},
         "session.not_found"),
        ("GET", "/api/sessions/{id}/speakers/{participant_id}/transcript.vtt", None,
         "session.not_found"),
        ("GET", "/api/sessions/{id}/speakers/{participant_id}/transcript.srt", None,
         "session.not_found"),
        ("GET", "/api/recordings/{id}/media", None, "recording.not_found"),
        ("POST", "/api/dossiers/{id}/documents", None, "dossier.not_found"),
        ("GET", "/api/sessions/{id}/minutes", None, "session.not_found"),
        ("GET", "/api/sessions/{id}/minutes/template", None, "session.not_found"),
        ("POST", "/api/sessions/{id}/minutes/versions", {"base": None, "content": {}},
         "session.not_found"),
        ("POST", "/api/sessions/{id}/minutes/links", None, "session.not_found"),
        ("POST", "/api/sessions/{id}/minutes/lock", None, "session.not_found"),
        ("GET", "/api/sessions/{id}/minutes.pdf", None, "session.not_found"),
        ("GET", "/api/sessions/{id}/minutes.docx", None, "session.not_found"),
        ("GET", "/api/dossiers/{id}/documents", None, "dossier.not_found"),
        ("GET", "/api/documents/{id}/content", None, "document.not_found"),
        ("POST", "/api/dossiers/{id}/packages", None, "dossier.not_found"),
        ("GET", "/api/dossiers/{id}/packages", None, "dossier.not_found"),
        ("GET", "/api/dossiers/{id}/retention", None, "dossier.not_found"),
        ("POST", "/api/dossiers/{id}/retention/delete",
         {"reason": "kiểm tra hết hạn", "confirm_dossier_id": "x"}, "dossier.not_found"),
    ]
    assert {p for _, p, _, _ in routes} == {
        rt.path.replace(rt.path[rt.path.find("{"):rt.path.find("}") + 1], "{id}")
        for rt in api_registry().routes if "{" in rt.path
    }
    # A session id in a dossier route (and the other way round) is not found either.
    cases = [(m, p.replace("{id}", i), b, c) for m, p, b, c in routes for i in missing]
    cases += [(m, p.replace("{id}", session["dossier_id"]), b, c)
              for m, p, b, c in routes if "/sessions/" in p or "/recordings/" in p]
    cases += [(m, p.replace("{id}", real_sid), b, c) for m, p, b, c in routes
              if p.startswith("/api/dossiers/")]
    failures = []
    for method, path, body, code in cases:
        path = path.replace("{participant_id}", "0" * 32)
        status, got = await call(r, method, path, json_body=body)
        try:
            assert_error(status, got, 404, code)
        except AssertionError as exc:
            failures.append((method, path[:60], str(exc)[:200]))
    assert not failures, failures

    for rng in ("bytes=garbage", "bytes=-", "bytes=9-1", "bytes=0-1,5-9", "items=0-1",
                "bytes=99999999999999999999-", "\u00e9\u00e9"):
        status, got = await call(r, "GET", f"/api/recordings/{'0' * 32}/media",
                                 headers={"Range": rng.encode("utf-8").decode("latin-1")})
        assert_error(status, got, 404, "recording.not_found")
    # The server still serves normally afterwards.
    assert (await r.api("GET", f"/api/sessions/{real_sid}"))["id"] == real_sid


# -- join pages -----------------------------------------------------------------------


async def get_page(
    r: Running, path: str, **headers: str
) -> tuple[int, str, aiohttp.ClientResponse]:
    resp = await r.client.get(path, headers=headers)
    text = await resp.text()
    return resp.status, html.unescape(text), resp


def assert_error_page(status: int, page: str, want_status: int, code: str) -> None:
    assert status == want_status, (status, page[:500])
    assert f'data-code="{code}"' in page
    for lang in ("vi", "en"):
        assert t(code, lang) in page, (lang, t(code, lang))


async def test_join_page_and_refused_links(running: Running) -> None:
    r = running
    session = await new_session(r)
    sid = session["id"]
    p = await add_participant(r, sid, "Phạm Thị <Dung> & Co", "member")
    path = join_path(p["join_url"])
    status, page, resp = await get_page(r, path)
    assert status == 200 and resp.content_type == "text/html"
    assert "Phạm Thị <Dung> & Co" in page
    assert "<Dung>" not in await resp.text()  # the name is escaped in the HTML
    assert '<html lang="vi">' in page
    assert t("join.you_are", "vi") in page and t("role.member", "vi") in page
    assert t("join.camera_required_note", "vi") in page
    config = json.loads(re.search(
        r'<script id="join-config" type="application/json">(.*?)</script>', page
    ).group(1))  # type: ignore[union-attr]
    assert config == {"token": token_of(p["join_url"]), "sessionId": sid,
                      "participantId": p["id"], "cameraRequired": True, "consented": False}

    status, page, resp = await get_page(r, path + "?lang=en")
    assert status == 200 and '<html lang="en">' in page
    assert t("join.you_are", "en") in page and t("join.you_are", "vi") not in page
    assert t("join.camera_required_note", "en") in page
    assert resp.cookies["hoidong_lang"].value == "en"

    secret = r.app[SECRET]
    now = utcnow()
    forged = jointoken.issue("another-secret-" + "y" * 32, session_id=sid,
                             participant_id=p["id"], role="member", now=now,
                             lifetime=timedelta(hours=1))
    expired = jointoken.issue(secret, session_id=sid, participant_id=p["id"], role="member",
                              now=now, lifetime=timedelta(seconds=-10))
    nobody = jointoken.issue(secret, session_id=sid, participant_id="f" * 32, role="member",
                             now=now, lifetime=timedelta(hours=1))
    claims = {"iss": "hoidong", "typ": "join", "sub": p["id"], "sid": sid, "role": "chair",
              "iat": int(now.timestamp()), "exp": int(now.timestamp()) + 3600}
    unsigned = alg_none_token(claims)
    other = await new_session(r)

    status, page, _ = await get_page(r, f"/join/{sid}/{forged}")
    assert_error_page(status, page, 401, "join.invalid")
    status, page, _ = await get_page(r, f"/join/{sid}/{expired}")
    assert_error_page(status, page, 410, "join.expired")
    status, page, _ = await get_page(r, f"/join/{other['id']}/{token_of(p['join_url'])}")
    assert_error_page(status, page, 403, "join.wrong_session")
    status, page, _ = await get_page(r, f"/join/{sid}/{unsigned}")
    assert_error_page(status, page, 401, "join.invalid")
    status, page, _ = await get_page(r, f"/join/{sid}/{token_of(p['join_url'])[:-3]}abc")
    assert_error_page(status, page, 401, "join.invalid")
    status, page, _ = await get_page(r, f"/join/{sid}/{'a' * 5000}")
    assert_error_page(status, page, 401, "join.invalid")
    status, page, _ = await get_page(r, f"/join/{sid}/{nobody}")
    assert_error_page(status, page, 404, "participant.not_found")
    # The error page follows the language too, and always shows both messages.
    status, page, _ = await get_page(r, f"/join/{sid}/{expired}?lang=en")
    assert_error_page(status, page, 410, "join.expired")
    assert '<html lang="en">' in page
    assert page.index(t("join.expired", "en")) < page.index(t("join.expired", "vi"))

    await r.api("POST", f"/api/sessions/{sid}/end")
    status, page, _ = await get_page(r, path)
    assert_error_page(status, page, 409, "session.ended")


# -- consent --------------------------------------------------------------------------


async def test_consent_api(running: Running) -> None:
    r = running
    session = await new_session(r)
    sid = session["id"]
    p = await add_participant(r, sid, "Lê Văn Cường", "reviewer")
    other = await add_participant(r, sid, "Người khác", "observer")
    token = token_of(p["join_url"])

    # The participant has no account: consent needs only the join token.
    status, body = await call(r, "POST", "/api/join/consent",
                              json_body={"token": token, "accepted": False}, token=None)
    assert_error(status, body, 400, "http.invalid_field", {"field": "accepted"})
    status, body = await call(r, "POST", "/api/join/consent",
                              json_body={"token": token + "x", "accepted": True}, token=None)
    assert_error(status, body, 401, "join.invalid")
    expired = jointoken.issue(r.app[SECRET], session_id=sid, participant_id=p["id"],
                              role=p["role"], now=utcnow(), lifetime=timedelta(seconds=-10))
    status, body = await call(r, "POST", "/api/join/consent",
                              json_body={"token": expired, "accepted": True}, token=None)
    assert_error(status, body, 401, "join.expired")
    listed = await r.api("GET", f"/api/sessions/{sid}/participants")
    assert all(x["consent_at"] is None for x in listed)

    before = utcnow()
    status, body = await call(r, "POST", "/api/join/consent",
                              json_body={"token": token, "accepted": True, "language": "en"},
                              token=None)
    assert status == 200, body
    assert body["participant_id"] == p["id"] and body["consent_at"]
    listed = {x["id"]: x for x in await r.api("GET", f"/api/sessions/{sid}/participants")}
    assert listed[p["id"]]["consent_at"] == body["consent_at"]
    assert listed[other["id"]]["consent_at"] is None
    status, page, _ = await get_page(r, join_path(p["join_url"]))
    assert '"consented": true' in page

    # Accepting again is logged again but keeps the first time.
    status, again = await call(r, "POST", "/api/join/consent",
                               json_body={"token": token, "accepted": True}, token=None)
    assert status == 200 and again["consent_at"] == body["consent_at"]

    events = [e for e in await r.api("GET", f"/api/sessions/{sid}/audit")
              if e["kind"] == "participant.consented"]
    assert len(events) == 2
    first, second = events
    assert first["participant_id"] == p["id"] and first["actor"] == f"participant:{p['id']}"
    assert first["data"] == {"language": "en", "text_sha256": consent_sha256("en")}
    assert second["data"] == {"language": "vi", "text_sha256": consent_sha256("vi")}
    assert consent_sha256("en") != consent_sha256("vi")
    assert first["at"] >= before.isoformat()[:19]
    assert first["data"]["text_sha256"] == hashlib.sha256(
        "\n\n".join(t(k, "en") for k in ("consent.title", "consent.what", "consent.why",
                                         "consent.how_long", "consent.who", "consent.rights"))
        .encode()).hexdigest()

    await r.api("POST", f"/api/sessions/{sid}/end")
    status, body = await call(r, "POST", "/api/join/consent",
                              json_body={"token": token_of(other["join_url"]), "accepted": True},
                              token=None)
    assert_error(status, body, 409, "session.ended")


async def test_anonymous_caller_is_refused_before_the_body_is_read(running: Running) -> None:
    """An anonymous request learns it must log in, not what is wrong with its body."""
    for body in ("{not json", '{"title": ""}', '{"title": "ok", "phase": "appraisal"}'):
        resp = await running.client.post(
            "/api/dossiers", data=body, headers={"Content-Type": "application/json"}
        )
        assert resp.status == 401, body
        assert (await resp.json())["error"]["code"] == "auth.required"
    # The consent route takes no staff login: its body is what authenticates it.
    resp = await running.client.post("/api/join/consent", data="{not json")
    assert resp.status == 400
