"""The participant's signalling WebSocket (``/ws/join``).

Protocol (JSON text messages, each an object with a ``type``):

client → server
  ``hello``  {token, session_id}  first message, within 10 s: who is joining
  ``offer``  {sdp}                the participant's SDP offer (once per connection)
  ``ping``   {}                   keep-alive; answered with ``pong``
  ``leave``  {}                   the participant leaves
  chair and secretary only (others get ``denied``, and stay connected):
  ``mute``   {participant_id, kind?, muted}  stop/resume forwarding someone's audio
  ``remove`` {participant_id}     remove someone from the meeting (no rejoin)
  ``end_session`` {}              end the session for everyone
server → client
  ``welcome`` {participant, session}   the join was accepted
  ``answer``  {sdp}                    the server's SDP answer
  ``slots`` {slots: [{mid, kind, participant}]}  who each receive slot shows
  ``muted`` {participant_id, kind, muted, by}    forwarding stopped/resumed
  ``removed`` {by}                               you were removed (then closed)
  ``denied`` {code, message}                     a control you may not use
  ``pong`` {}, ``session_ended`` {}, ``bye`` {}
  ``error``   {code, message: {vi, en}} followed by a close with code 4400-4409

Anything malformed closes that participant's socket (and media) with an ``error``;
no other participant is touched. The participant's role comes from the signed join
link, never from the client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiohttp import WSMsgType, web

from media.sdp import SdpError, check_offer
from server import control, jointoken, joinwindow
from server.i18n import both
from server.ice import ice_servers
from server.live import Connection
from server.models import (
    CAMERA_REQUIRED_ROLES,
    CONTROLLER_ROLES,
    MeetingSession,
    Participant,
    SessionStatus,
    utcnow,
)
from server.state import DB, LIVE, SECRET, SETTINGS

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 80 * 1024  # a 64 KiB SDP plus JSON escaping
HELLO_TIMEOUT_S = 10.0

CLOSE_CODES = {
    "signal.malformed": 4400, "signal.unknown_type": 4400, "signal.timeout": 4408,
    "join.invalid": 4401, "join.expired": 4401, "join.wrong_session": 4401,
    "consent.required": 4403, "camera.required": 4403, "session.ended": 4409,
    "participant.removed": 4403, "join.too_early": 4403, "join.too_late": 4403,
    "participant.not_found": 4404,
}


class SignalError(Exception):
    def __init__(self, code: str, params: dict[str, str] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


def parse_message(msg: Any) -> dict[str, Any]:
    """A client message as a dict with a string ``type``; SignalError otherwise."""
    if msg.type != WSMsgType.TEXT:
        raise SignalError("signal.malformed")
    try:
        data = json.loads(msg.data)
    except (json.JSONDecodeError, TypeError):
        raise SignalError("signal.malformed") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise SignalError("signal.malformed")
    return data


async def send_error(
    ws: web.WebSocketResponse, code: str, params: dict[str, str] | None = None
) -> None:
    if ws.closed:
        return
    try:
        await ws.send_json({"type": "error", "code": code, "message": both(code, params)})
        await ws.close(code=CLOSE_CODES.get(code, 4400), message=code.encode())
    except ConnectionError:
        pass


async def join_socket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, heartbeat=20.0)
    await ws.prepare(request)
    conn: Connection | None = None
    reason = "closed"
    try:
        conn = await _admit(request, ws)
        reason = await _serve(request, ws, conn)
    except SignalError as exc:
        reason = exc.code
        await send_error(ws, exc.code, exc.params)
    except ConnectionError:
        reason = "disconnected"  # the participant vanished while we were answering
    finally:
        if conn is not None:
            await request.app[LIVE].close(conn, reason)
        elif not ws.closed:
            await ws.close()
    return ws


async def _admit(request: web.Request, ws: web.WebSocketResponse) -> Connection:
    try:
        first = await ws.receive(timeout=HELLO_TIMEOUT_S)
    except TimeoutError:
        raise SignalError("signal.timeout") from None
    hello = parse_message(first)
    token, session_id = hello.get("token"), hello.get("session_id")
    if hello["type"] != "hello" or not isinstance(token, str) or not isinstance(session_id, str):
        raise SignalError("signal.malformed")
    try:
        claims = jointoken.verify(request.app[SECRET], token, session_id=session_id)
    except jointoken.JoinTokenError as exc:
        raise SignalError(exc.code) from None
    live = request.app[LIVE]
    async with live.lock(claims.session_id):
        async with request.app[DB].session() as s:
            participant = await s.get(Participant, claims.participant_id)
            session = await s.get(MeetingSession, claims.session_id)
        if participant is None or session is None or participant.session_id != session.id:
            raise SignalError("participant.not_found")
        if session.status not in (SessionStatus.SCHEDULED, SessionStatus.LIVE):
            raise SignalError("session.ended")
        try:
            joinwindow.check(session, participant.role, request.app[SETTINGS], utcnow())
        except joinwindow.OutsideWindow as exc:
            raise SignalError(exc.code, exc.params) from None
        if participant.consent_at is None:
            raise SignalError("consent.required")
        if live.is_removed(session.id, participant.id):
            raise SignalError("participant.removed")
        conn = await live.open(
            session_id=session.id, dossier_id=session.dossier_id, participant=participant,
            ws=ws, on_state=lambda c, state: _peer_state(request, c, state),
        )
    try:
        await ws.send_json({
            "type": "welcome",
            "participant": {"id": participant.id, "name": participant.name,
                            "role": participant.role,
                            "camera_required": participant.role in CAMERA_REQUIRED_ROLES,
                            "controls": participant.role in CONTROLLER_ROLES},
            "session": {"id": session.id, "title": session.title, "status": session.status},
            # How many others the client prepares to receive (one slot per kind each).
            "receive_slots": request.app[SETTINGS].max_participants - 1,
            "ice_servers": ice_servers(request.app[SETTINGS], participant.id, time.time()),
        })
    except BaseException:
        # Gone before the welcome: the caller never sees this connection, so end it here.
        await live.close(conn, "disconnected")
        raise
    return conn


async def _serve(request: web.Request, ws: web.WebSocketResponse, conn: Connection) -> str:
    """Handle messages until the participant leaves; returns why it ended."""
    async for msg in ws:
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            break
        if msg.type == WSMsgType.ERROR:
            return "socket_error"
        data = parse_message(msg)
        kind = data["type"]
        if kind == "offer":
            await ws.send_json({"type": "answer", "sdp": await _answer(conn, data.get("sdp"))})
            await request.app[LIVE].media_ready(conn)
        elif kind == "ping":
            await ws.send_json({"type": "pong"})
        elif kind == "leave":
            await ws.send_json({"type": "bye"})
            return "left"
        elif kind in CONTROLS:
            if conn.participant.role not in CONTROLLER_ROLES:
                await ws.send_json({"type": "denied", "code": "signal.forbidden",
                                    "message": both("signal.forbidden")})
            elif await _control(request, conn, kind, data):
                return "session_ended"
        else:
            raise SignalError("signal.unknown_type")
    return "session_ended" if conn.closed.is_set() else "disconnected"


CONTROLS = frozenset({"mute", "remove", "end_session"})


async def _control(
    request: web.Request, conn: Connection, kind: str, data: dict[str, Any]
) -> bool:
    """Carry out a chair's control message; True when it ended the session."""
    live = request.app[LIVE]
    if kind == "end_session":
        try:
            await control.end_session(request.app, conn.session_id,
                                      f"participant:{conn.participant.id}")
        except control.SessionStateError:
            pass  # ended meanwhile by someone else: the outcome is the same
        return True
    target = data.get("participant_id")
    if not isinstance(target, str):
        raise SignalError("signal.malformed")
    if kind == "mute":
        media_kind = data.get("kind", "audio")
        muted = data.get("muted", True)
        if media_kind not in ("audio", "video") or not isinstance(muted, bool):
            raise SignalError("signal.malformed")
        done = await live.set_muted(conn, target, media_kind, muted)
    else:
        done = await live.remove(conn, target)
    if not done:
        await conn.ws.send_json({"type": "denied", "code": "participant.not_connected",
                                 "message": both("participant.not_connected")})
    return False


async def _answer(conn: Connection, sdp: object) -> str:
    try:
        parsed = check_offer(sdp)
        if conn.participant.role in CAMERA_REQUIRED_ROLES and not any(
            m.kind == "video" and m.direction in ("sendrecv", "sendonly") for m in parsed.media
        ):
            raise SignalError("camera.required")
        return await conn.peer.answer(sdp)
    except SdpError as exc:
        raise SignalError(exc.code) from None


def _peer_state(request: web.Request, conn: Connection, state: str) -> None:
    if state in ("failed", "closed") and not conn.closed.is_set():
        log.info("media connection %s of %s is %s", conn.id, conn.participant.id, state)
        asyncio.get_running_loop().create_task(
            request.app[LIVE].close(conn, f"media_{state}")
        )
