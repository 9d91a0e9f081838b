"""The participant's signalling WebSocket (``/ws/join``).

Protocol (JSON text messages, each an object with a ``type``):

client → server
  ``hello``  {token, session_id}  first message, within 10 s: who is joining
  ``offer``  {sdp, screen?}        the participant's SDP offer (once per connection);
                                  ``screen`` {send: mid, receive: [mid]} names the video
                                  m-lines that carry its own and others' shared screens
  ``screen`` {sharing}            it started (true) or stopped (false) sharing its screen
  ``media_state`` {audio, video}  its microphone / camera switches (as the page says)
  ``ping``   {}                   keep-alive; answered with ``pong``
  ``leave``  {}                   the participant leaves (also from the lobby)
  hosts only (chair, secretary, team lead; reviewers in an interview — others get
  ``denied``, and stay connected):
  ``admit``  {participant_id}     let someone in from the lobby
  ``deny``   {participant_id}     turn someone in the lobby away (they may ask again)
  ``mute``   {participant_id, kind?, muted}  stop/resume forwarding someone's audio
  ``remove`` {participant_id}     remove someone from the meeting (no rejoin)
  ``end_session`` {}              end the session for everyone
  ``room_presence`` {participant_id, present}  roll call: in the meeting room (hybrid)
server → client
  ``waiting`` {session}                in the lobby until a host admits (then ``welcome``);
                                       only ``ping`` and ``leave`` are accepted meanwhile
  ``welcome`` {participant, session, receive_slots, ice_servers}   the join was accepted
  ``lobby`` {waiting: [{id, name, role, since}]}  to hosts: who waits (on every change)
  ``answer``  {sdp}                    the server's SDP answer
  ``slots`` {slots: [{mid, kind, participant}]}  who each receive slot shows (kind
                                       audio, video or screen)
  ``muted`` {participant_id, kind, muted, by}    forwarding stopped/resumed
  ``removed`` {by}                               you were removed (then closed)
  ``denied`` {code, message}                     a control you may not use
  ``media_state`` {participant_id, audio, video}  someone's switches, as their page said
  ``speaker`` {participant_id}                   the active speaker (null: nobody), from
                                                 the audio levels senders put on packets
  ``camera_warning`` {reason, off_since, escalation_in_s}  your camera has been off too
                                       long (the server's own check); ``camera_non_compliant``
                                       {reason, since, to_lobby}; ``camera_ok`` {} it is back
  ``moved_to_lobby`` {}                the camera rule sent you back to the lobby (closed)
  ``panel`` {participants, quorum}     to hosts, every second: camera state, time on
                                       camera, warnings, in-room, the live quorum
  ``alert`` {kind, participant, reason}  to hosts: a warning, non-compliance, camera back
  ``quorum`` {met, present, needed}    to hosts: the quorum changed
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
from server.lobby import Decision
from server.logs import bind
from server.models import (
    MeetingSession,
    Participant,
    SessionStatus,
    is_host,
    must_wait,
    utcnow,
)
from server.ratelimit import Limiter
from server.session_policy import session_policy
from server.settings import Settings
from server.state import DB, LIVE, RATE_LIMITS, SECRET, SETTINGS

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 80 * 1024  # a 64 KiB SDP plus JSON escaping
HELLO_TIMEOUT_S = 10.0

CLOSE_CODES = {
    "signal.malformed": 4400, "signal.unknown_type": 4400, "signal.timeout": 4408,
    "join.invalid": 4401, "join.expired": 4401, "join.wrong_session": 4401,
    "consent.required": 4403, "camera.required": 4403, "session.ended": 4409,
    "participant.removed": 4403, "join.too_early": 4403, "join.too_late": 4403,
    "participant.not_found": 4404, "lobby.denied": 4403, "lobby.replaced": 4409,
    "lobby.not_admitted": 4403, "media.connect_timeout": 4408, "signal.rate_limited": 4429,
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
    except (json.JSONDecodeError, TypeError, RecursionError):
        # RecursionError: a few thousand nested brackets (found by tests/test_fuzz.py).
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
        bind(session_id=conn.session_id, participant_id=conn.participant.id,
             connection_id=conn.id)
        reason = await _serve(request, ws, conn)
    except _LeftLobby:
        reason = "left_lobby"
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


def rate_limits(settings: Settings) -> tuple[Limiter, Limiter]:
    """(per address, per link) rate limiters from the settings."""
    hellos, messages = settings.signal_hellos_per_minute, settings.signal_messages_per_minute
    return Limiter(hellos / 60, hellos), Limiter(messages / 60, messages)


async def _admit(request: web.Request, ws: web.WebSocketResponse) -> Connection:
    if not request.app[RATE_LIMITS][0].allow(request.remote or "-"):
        log.warning("signalling: too many sockets from %s", request.remote)
        raise SignalError("signal.rate_limited")
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
        participant, session = await _check_entry(request, claims)
    if must_wait(session, participant) or live.camera_rule.held(session.id, participant.id):
        await _wait_in_lobby(request, ws, session, participant)
    async with live.lock(claims.session_id):
        # Checked again: while they waited the session may have ended, or they were removed.
        participant, session = await _check_entry(request, claims)
        host = is_host(session.kind, participant.role)
        policy = session_policy(session)
        conn = await live.open(
            session_id=session.id, dossier_id=session.dossier_id, participant=participant,
            ws=ws, on_state=lambda c, state: _peer_state(request, c, state), host=host,
            camera_required=policy.camera_required(participant.role),
        )
    try:
        await ws.send_json({
            "type": "welcome",
            "participant": {"id": participant.id, "name": participant.name,
                            "role": participant.role,
                            "camera_required": conn.camera_required,
                            "controls": host},
            "session": {"id": session.id, "title": session.title, "status": session.status,
                        "mode": session.mode},
            "camera_rule": {"grace_s": policy.camera_grace_s,
                            "escalation_s": policy.camera_escalation_s,
                            "to_lobby": policy.camera_to_lobby},
            # How many others the client prepares to receive (one slot per kind each).
            "receive_slots": request.app[SETTINGS].max_participants - 1,
            "ice_servers": ice_servers(request.app[SETTINGS], participant.id, time.time()),
        })
        await live.welcomed(conn)
        if host:
            await live.admissions.announce(session.id, to=conn)
            await live.camera_rule.send_panel(session.id, to=conn)
    except BaseException:
        # Gone before the welcome: the caller never sees this connection, so end it here.
        await live.close(conn, "disconnected")
        raise
    return conn


async def _check_entry(
    request: web.Request, claims: jointoken.JoinClaims
) -> tuple[Participant, MeetingSession]:
    """The participant and session of a verified join link, if they may enter now."""
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
    if participant.removed_at is not None:
        raise SignalError("participant.removed")
    return participant, session


LOBBY_OUTCOMES = {Decision.DENIED: "lobby.denied", Decision.REPLACED: "lobby.replaced",
                  Decision.SESSION_ENDED: "session.ended"}


class _LeftLobby(Exception):
    """The person waiting left (or lost the connection) before anyone decided."""


async def _wait_in_lobby(request: web.Request, ws: web.WebSocketResponse,
                         session: MeetingSession, participant: Participant) -> None:
    """Hold the participant in the lobby until a host decides; returns when admitted.

    While waiting the client may only ``ping`` or ``leave``. Raises SignalError when
    turned away or the session ends, :class:`_LeftLobby` when they leave first.
    """
    live = request.app[LIVE]
    waiting = await live.admissions.enter(session.id, session.dossier_id, participant, ws)
    receiving: asyncio.Task[Any] | None = None
    try:
        await ws.send_json({"type": "waiting",
                            "session": {"id": session.id, "title": session.title}})
        while True:
            receiving = asyncio.ensure_future(ws.receive())
            await asyncio.wait({receiving, waiting.decision},
                               return_when=asyncio.FIRST_COMPLETED)
            if waiting.decision.done():
                break
            msg = receiving.result()
            receiving = None
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                            WSMsgType.ERROR):
                raise _LeftLobby
            kind = parse_message(msg)["type"]
            if kind == "ping":
                await ws.send_json({"type": "pong"})
            elif kind == "leave":
                await ws.send_json({"type": "bye"})
                raise _LeftLobby
            else:
                raise SignalError("lobby.not_admitted")
    finally:
        if receiving is not None:
            receiving.cancel()
        await live.admissions.leave(waiting, session.dossier_id)
    decision = waiting.decision.result()
    if decision != Decision.ADMITTED:
        raise SignalError(LOBBY_OUTCOMES[decision])


async def _serve(request: web.Request, ws: web.WebSocketResponse, conn: Connection) -> str:
    """Handle messages until the participant leaves; returns why it ended."""
    watch = _MediaWatch(ws, conn, request.app[SETTINGS].media_connect_timeout_s)
    try:
        reason = await _messages(request, ws, conn, watch)
    finally:
        # Not awaited: aiohttp may be cancelling this handler (the client went), and the
        # reason must still reach the caller; a cancelled watch has nothing to clean up.
        watch.stop()
    return watch.reason or reason


class _MediaWatch:
    """Disconnects a participant whose media is not connected ``timeout_s`` after an
    answer: a client that never does ICE/DTLS must not hold slots (and the others' key
    frame requests) for ever. It is told why (bilingual error, close 4408) and the
    leave is recorded with ``media.connect_timeout``."""

    def __init__(self, ws: web.WebSocketResponse, conn: Connection, timeout_s: float) -> None:
        self._ws, self._conn, self._timeout_s = ws, conn, timeout_s
        self._tasks: list[asyncio.Task[None]] = []
        self.reason: str | None = None

    def answered(self) -> None:
        if self._timeout_s > 0:
            self._tasks.append(asyncio.get_running_loop().create_task(self._watch()))

    async def _watch(self) -> None:
        await asyncio.sleep(self._timeout_s)
        conn = self._conn
        if conn.closed.is_set() or conn.peer.pc.connectionState == "connected":
            return
        log.warning("media of connection %s of %s not connected after %.0f s (%s): closing",
                    conn.id, conn.participant.id, self._timeout_s,
                    conn.peer.pc.connectionState)
        self.reason = "media.connect_timeout"  # before the close ends the message loop
        await send_error(self._ws, self.reason, {"seconds": f"{self._timeout_s:g}"})

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()


async def _messages(request: web.Request, ws: web.WebSocketResponse, conn: Connection,
                    watch: _MediaWatch) -> str:
    per_link = request.app[RATE_LIMITS][1]
    async for msg in ws:
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            break
        if msg.type == WSMsgType.ERROR:
            return "socket_error"
        if not per_link.allow(conn.participant.id):
            log.warning("signalling: %s sends too fast; closing", conn.participant.id)
            raise SignalError("signal.rate_limited")
        data = parse_message(msg)
        kind = data["type"]
        if kind == "offer":
            sdp = await _answer(conn, data.get("sdp"), data.get("screen"))
            await ws.send_json({"type": "answer", "sdp": sdp})
            await request.app[LIVE].media_ready(conn)
            watch.answered()
        elif kind == "media_state":
            audio, video = data.get("audio"), data.get("video")
            if not isinstance(audio, bool) or not isinstance(video, bool):
                raise SignalError("signal.malformed")
            await request.app[LIVE].set_media_state(conn, audio=audio, video=video)
        elif kind == "screen":
            sharing = data.get("sharing")
            if not isinstance(sharing, bool):
                raise SignalError("signal.malformed")
            await request.app[LIVE].set_sharing(conn, sharing)
        elif kind == "ping":
            await ws.send_json({"type": "pong"})
        elif kind == "leave":
            await ws.send_json({"type": "bye"})
            return "left"
        elif kind in CONTROLS:
            if not conn.host:
                await ws.send_json({"type": "denied", "code": "signal.forbidden",
                                    "message": both("signal.forbidden")})
            elif await _control(request, conn, kind, data):
                return "session_ended"
        else:
            raise SignalError("signal.unknown_type")
    return "session_ended" if conn.closed.is_set() else "disconnected"


CONTROLS = frozenset({"mute", "remove", "end_session", "admit", "deny", "room_presence"})


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
    if kind == "room_presence":
        present = data.get("present")
        if not isinstance(present, bool):
            raise SignalError("signal.malformed")
        if not await live.camera_rule.set_in_room(conn.session_id, target, present,
                                                  f"participant:{conn.participant.id}"):
            await conn.ws.send_json({"type": "denied", "code": "participant.not_found",
                                     "message": both("participant.not_found")})
        return False
    if kind in ("admit", "deny"):
        if not await live.admissions.admit(conn, target, admit=kind == "admit"):
            await conn.ws.send_json({"type": "denied", "code": "participant.not_waiting",
                                     "message": both("participant.not_waiting")})
        return False
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


MAX_SCREEN_SLOTS = 4


def _screen_mids(screen: object) -> tuple[str | None, frozenset[str]]:
    """The offer's ``screen`` field: ``{send: mid | null, receive: [mid, …]}``."""
    if screen is None:
        return None, frozenset()
    if not isinstance(screen, dict) or set(screen) - {"send", "receive"}:
        raise SignalError("signal.malformed")
    send, receive = screen.get("send"), screen.get("receive", [])
    if not (send is None or (isinstance(send, str) and len(send) <= 32)):
        raise SignalError("signal.malformed")
    if not isinstance(receive, list) or len(receive) > MAX_SCREEN_SLOTS or not all(
        isinstance(m, str) and len(m) <= 32 for m in receive
    ):
        raise SignalError("signal.malformed")
    return send, frozenset(receive)


async def _answer(conn: Connection, sdp: object, screen: object) -> str:
    screen_send, screen_receive = _screen_mids(screen)
    try:
        parsed = check_offer(sdp)
        if conn.camera_required and not any(
            m.kind == "video" and m.direction in ("sendrecv", "sendonly")
            and m.rtp.muxId != screen_send
            for m in parsed.media
        ):
            raise SignalError("camera.required")
        return await conn.peer.answer(sdp, screen_send=screen_send,
                                      screen_receive=screen_receive)
    except SdpError as exc:
        raise SignalError(exc.code) from None


def _peer_state(request: web.Request, conn: Connection, state: str) -> None:
    if state in ("failed", "closed") and not conn.closed.is_set():
        log.info("media connection %s of %s is %s", conn.id, conn.participant.id, state)
        asyncio.get_running_loop().create_task(
            request.app[LIVE].close(conn, f"media_{state}")
        )
