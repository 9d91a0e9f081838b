"""The participant's signalling WebSocket with real peers.

A real aiortc client (``tests.mediaclient``) joins over ``/ws/join`` of the app on a
real port, sends synthetic audio and video, and the test checks what the server kept:
stored recordings whose SHA-256 matches the bytes it serves, and the audit trail.
Every way a client can misbehave (no consent, malformed messages, bad SDP, no hello,
bad tokens) must close only that client's socket with a bilingual ``error`` and a
4xxx close code, while another participant's media keeps flowing.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import struct
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType
from aiortc import RTCPeerConnection

import server.signalling
from server import jointoken
from server.i18n import both
from server.models import utcnow
from server.state import LIVE, SECRET
from tests.conftest import Running
from tests.mediaclient import accept_answer, make_offer

H265_ONLY_OFFER = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 H265/90000\r\n"
)


# -- helpers --------------------------------------------------------------------------


async def new_session(r: Running, *, start: bool = True, admission: str = "open") -> str:
    """A council meeting; with no lobby unless ``admission`` says otherwise (the lobby
    has its own tests in ``test_lobby``)."""
    dossier = await r.api("POST", "/api/dossiers", {"title": "Hồ sơ", "phase": "appraisal"}, 201)
    session = await r.api("POST", f"/api/dossiers/{dossier['id']}/sessions",
                          {"kind": "council_meeting", "title": "Phiên họp",
                           "admission": admission}, 201)
    if start:
        await r.api("POST", f"/api/sessions/{session['id']}/start")
    return str(session["id"])


@dataclass
class Invited:
    id: str
    name: str
    role: str
    token: str


async def invite(r: Running, sid: str, name: str, role: str, *, consent: bool = True) -> Invited:
    p = await r.api("POST", f"/api/sessions/{sid}/participants", {"name": name, "role": role}, 201)
    token = p["join_url"].rsplit("/", 1)[1]
    if consent:
        resp = await r.client.post("/api/join/consent", json={"token": token, "accepted": True})
        assert resp.status == 200, await resp.text()
    return Invited(p["id"], name, role, token)


async def connect(r: Running) -> ClientWebSocketResponse:
    return await r.client.ws_connect("/ws/join")


# Notices the server sends whenever something changes (who speaks, a camera, the hosts'
# panel), not in answer to anything: skipped unless a test asks for them.
NOTICES = frozenset({"speaker", "camera", "panel", "alert", "quorum"})


async def recv_json(ws: ClientWebSocketResponse, within: float = 10.0,
                    skip: frozenset[str] = NOTICES) -> dict[str, Any]:
    """The next message from the server (notices in ``skip`` passed over)."""
    deadline = time.monotonic() + within
    while True:
        msg = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        assert msg.type == WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
        data: dict[str, Any] = json.loads(msg.data)
        if data.get("type") not in skip:
            return data


async def next_message(ws: ClientWebSocketResponse, kind: str, within: float = 10.0
                       ) -> dict[str, Any]:
    """The next message of type ``kind`` (others passed over), within ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        msg = await recv_json(ws, within=max(0.1, deadline - time.monotonic()),
                              skip=NOTICES - {kind})
        if msg["type"] == kind:
            return msg


async def expect_closed(ws: ClientWebSocketResponse, close_code: int) -> None:
    msg = await ws.receive(timeout=15)
    while msg.type == WSMsgType.TEXT and json.loads(msg.data).get("type") in NOTICES:
        msg = await ws.receive(timeout=15)
    assert msg.type == WSMsgType.CLOSE, (msg.type, msg.data)
    assert msg.data == close_code, (msg.data, msg.extra)
    assert (await ws.receive(timeout=15)).type == WSMsgType.CLOSED
    assert ws.closed


async def expect_error(ws: ClientWebSocketResponse, code: str, close_code: int) -> None:
    """An ``error`` message with both languages, then a close with ``close_code``."""
    msg = await recv_json(ws)
    assert msg == {"type": "error", "code": code, "message": both(code)}, msg
    assert msg["message"]["vi"] != msg["message"]["en"]
    await expect_closed(ws, close_code)


async def hello(ws: ClientWebSocketResponse, token: str, sid: str) -> dict[str, Any]:
    await ws.send_json({"type": "hello", "token": token, "session_id": sid})
    return await recv_json(ws)


async def joined(r: Running, who: Invited, sid: str) -> ClientWebSocketResponse:
    ws = await connect(r)
    welcome = await hello(ws, who.token, sid)
    assert welcome["type"] == "welcome", welcome
    assert welcome["participant"]["id"] == who.id
    return ws


@dataclass
class MediaClient:
    ws: ClientWebSocketResponse
    pc: RTCPeerConnection

    async def ping(self) -> None:
        await self.ws.send_json({"type": "ping"})
        assert await recv_json(self.ws) == {"type": "pong"}

    async def leave(self) -> None:
        await self.ws.send_json({"type": "leave"})
        assert await recv_json(self.ws) == {"type": "bye"}
        await expect_closed(self.ws, 1000)
        await self.pc.close()


async def join_with_media(r: Running, who: Invited, sid: str, *, video: bool = True
                          ) -> MediaClient:
    ws = await joined(r, who, sid)
    pc = await make_offer(video=video)
    await ws.send_json({"type": "offer", "sdp": pc.localDescription.sdp})
    answer = await recv_json(ws, within=20)
    assert answer["type"] == "answer", answer
    assert "opus" in answer["sdp"] and ("VP8" in answer["sdp"]) == video
    await accept_answer(pc, answer["sdp"])
    deadline = time.monotonic() + 15
    while pc.connectionState != "connected":
        assert pc.connectionState not in ("failed", "closed"), pc.connectionState
        assert time.monotonic() < deadline, "media never connected"
        await asyncio.sleep(0.05)
    return MediaClient(ws, pc)


async def stored_recordings(r: Running, sid: str, participant_id: str, count: int
                            ) -> list[dict[str, Any]]:
    """The participant's recordings once ``count`` are stored (storing follows leaving)."""
    deadline = time.monotonic() + 20
    while True:
        recs = [x for x in await r.api("GET", f"/api/sessions/{sid}/recordings")
                if x["participant_id"] == participant_id]
        if len(recs) >= count and all(x["status"] != "recording" for x in recs):
            return recs
        assert time.monotonic() < deadline, recs
        await asyncio.sleep(0.2)


async def audit(r: Running, sid: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = await r.api("GET", f"/api/sessions/{sid}/audit")
    return events


async def wait_left(r: Running, sid: str, count: int) -> None:
    """Wait until ``count`` departures are audited (the server audits after closing)."""
    deadline = time.monotonic() + 10
    while True:
        left = [e for e in await audit(r, sid) if e["kind"] == "participant.left"]
        if len(left) >= count:
            return
        assert time.monotonic() < deadline, left
        await asyncio.sleep(0.05)


async def check_stored_media(r: Running, rec: dict[str, Any]) -> bytes:
    """The served bytes are exactly what the recording row promises."""
    assert rec["status"] == "stored", rec
    resp = await r.client.get(rec["media_url"], headers=r.auth())
    assert resp.status == 200
    assert resp.headers["Content-Type"] == f"{rec['kind']}/webm"
    assert resp.headers["ETag"] == f'"{rec["sha256"]}"'
    data = await resp.read()
    assert len(data) == rec["size"] > 0
    assert hashlib.sha256(data).hexdigest() == rec["sha256"]
    assert data[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a WebM file
    return data


# -- the happy path -------------------------------------------------------------------


async def test_participant_joins_sends_media_and_leaves(running_db: Running) -> None:
    r = running_db
    sid = await new_session(r)
    member = await invite(r, sid, "Trần Thị Bình", "member")

    client = await join_with_media(r, member, sid)
    await client.ping()
    await asyncio.sleep(3)
    assert client.pc.connectionState == "connected"
    await client.ping()
    await client.leave()

    recs = await stored_recordings(r, sid, member.id, 2)
    by_kind = {x["kind"]: x for x in recs}
    assert set(by_kind) == {"audio", "video"} and len(recs) == 2, recs
    assert by_kind["audio"]["codec"] == "opus" and by_kind["video"]["codec"] == "vp8"
    served = {}
    for kind, rec in by_kind.items():
        assert rec["container"] == "webm" and rec["frames"] > 0
        assert 2.0 <= rec["duration_s"] <= 8.0, (kind, rec["duration_s"])
        assert rec["media_url"] == f"/api/recordings/{rec['id']}/media"
        served[kind] = await check_stored_media(r, rec)
    assert served["audio"] != served["video"]

    # Range requests serve exact slices; nonsense ranges serve the whole file.
    video = by_kind["video"]
    data, size, url = served["video"], video["size"], video["media_url"]
    resp = await r.client.get(url, headers={**r.auth(), "Range": "bytes=0-99"})
    assert resp.status == 206 and await resp.read() == data[:100]
    assert resp.headers["Content-Range"] == f"bytes 0-99/{size}"
    resp = await r.client.get(url, headers={**r.auth(), "Range": "bytes=-10"})
    assert resp.status == 206 and await resp.read() == data[-10:]
    resp = await r.client.get(url, headers={**r.auth(), "Range": f"bytes={size - 5}-"})
    assert resp.status == 206 and await resp.read() == data[-5:]
    for garbage in ("bytes=garbage", "bytes=a-b", "pages=0-9", "bytes=0-1,4-5", ""):
        resp = await r.client.get(url, headers={**r.auth(), "Range": garbage})
        assert resp.status == 200, garbage
        assert await resp.read() == data
    for unsatisfiable in (f"bytes={size}-", f"bytes={size + 100}-{size + 200}", "bytes=9-1"):
        resp = await r.client.get(url, headers={**r.auth(), "Range": unsatisfiable})
        assert resp.status == 416, (unsatisfiable, resp.status)
        assert resp.headers["Content-Range"] == f"bytes */{size}"  # RFC 9110 §15.5.17
        body = await resp.json()
        assert set(body["error"]["message"]) == {"vi", "en"}
    resp = await r.client.get(url)  # no credentials
    assert resp.status == 401

    events = await audit(r, sid)
    kinds = [e["kind"] for e in events]
    assert kinds.index("participant.consented") < kinds.index("participant.joined")
    joined_ev = [e for e in events if e["kind"] == "participant.joined"]
    left_ev = [e for e in events if e["kind"] == "participant.left"]
    stored_ev = [e for e in events if e["kind"] == "recording.stored"]
    assert len(joined_ev) == len(left_ev) == 1 and len(stored_ev) == 2, kinds
    assert joined_ev[0]["participant_id"] == left_ev[0]["participant_id"] == member.id
    assert joined_ev[0]["actor"] == f"participant:{member.id}"
    assert joined_ev[0]["data"]["role"] == "member"
    assert left_ev[0]["data"] == {"connection": joined_ev[0]["data"]["connection"],
                                  "reason": "left"}
    assert kinds.index("participant.joined") < kinds.index("participant.left") < kinds.index(
        "recording.stored")
    assert {e["data"]["sha256"] for e in stored_ev} == {x["sha256"] for x in recs}
    assert {e["data"]["recording_id"] for e in stored_ev} == {x["id"] for x in recs}
    assert all(e["actor"] == "system" for e in stored_ev)


async def test_welcome_and_consent_required(running: Running) -> None:
    r = running
    sid = await new_session(r, start=False)
    observer = await invite(r, sid, "Quan sát viên", "observer")
    ws = await connect(r)
    welcome = await hello(ws, observer.token, sid)
    assert welcome == {
        "type": "welcome",
        "participant": {"id": observer.id, "name": "Quan sát viên", "role": "observer",
                        "camera_required": False, "controls": False},
        "session": {"id": sid, "title": "Phiên họp", "status": "scheduled", "mode": "online"},
        "camera_rule": {"grace_s": 10.0, "escalation_s": 60.0, "to_lobby": False},
        "receive_slots": r.settings.max_participants - 1,
        "ice_servers": [],
    }
    await ws.send_json({"type": "leave"})
    assert await recv_json(ws) == {"type": "bye"}
    await expect_closed(ws, 1000)
    await wait_left(r, sid, 1)

    silent = await invite(r, sid, "Chưa đồng ý", "interviewee", consent=False)
    ws = await connect(r)
    await ws.send_json({"type": "hello", "token": silent.token, "session_id": sid})
    await expect_error(ws, "consent.required", 4403)
    events = await audit(r, sid)
    assert not [e for e in events if e["participant_id"] == silent.id
                and e["kind"] in ("participant.joined", "participant.left")]
    assert [e["data"]["reason"] for e in events if e["kind"] == "participant.left"] == ["left"]


# -- malformed messages ---------------------------------------------------------------


async def test_malformed_messages_close_only_that_socket(running: Running) -> None:
    r = running
    sid = await new_session(r)
    good = await invite(r, sid, "Chủ tịch Hội đồng", "chair")
    bad = await invite(r, sid, "Người gửi sai", "observer")
    client = await join_with_media(r, good, sid)

    async def send_raw(ws: ClientWebSocketResponse, what: Any) -> None:
        if isinstance(what, bytes):
            await ws.send_bytes(what)
        elif isinstance(what, str):
            await ws.send_str(what)
        else:
            await ws.send_str(json.dumps(what))

    before_hello: list[tuple[Any, str]] = [
        ("this is not json", "signal.malformed"),
        (b"\x00\x01binary", "signal.malformed"),
        ({"token": bad.token, "session_id": sid}, "signal.malformed"),  # no type
        (["hello", bad.token, sid], "signal.malformed"),
        ({"type": 7}, "signal.malformed"),
        ({"type": "hello", "session_id": sid}, "signal.malformed"),  # no token
        ({"type": "hello", "token": bad.token}, "signal.malformed"),  # no session_id
        ({"type": "hello", "token": 123, "session_id": sid}, "signal.malformed"),
        ({"type": "offer", "sdp": client.pc.localDescription.sdp}, "signal.malformed"),
        ("", "signal.malformed"),
        ("null", "signal.malformed"),
    ]
    after_hello: list[tuple[Any, str]] = [
        ("{not json", "signal.malformed"),
        (b"\xff" * 100, "signal.malformed"),
        ({"sdp": "x"}, "signal.malformed"),
        ([{"type": "ping"}], "signal.malformed"),
        ({"type": None}, "signal.malformed"),
        ({"type": "dance"}, "signal.unknown_type"),
        ({"type": "hello", "token": bad.token, "session_id": sid}, "signal.unknown_type"),
    ]
    for what, code in before_hello:
        ws = await connect(r)
        await send_raw(ws, what)
        await expect_error(ws, code, 4400)
    for n, (what, code) in enumerate(after_hello, start=1):
        ws = await joined(r, bad, sid)
        await send_raw(ws, what)
        await expect_error(ws, code, 4400)
        await wait_left(r, sid, n)

    # The other participant heard nothing of it and its media kept flowing.
    await client.ping()
    assert client.pc.connectionState == "connected"
    await asyncio.sleep(1)
    await client.ping()
    await client.leave()

    recs = await stored_recordings(r, sid, good.id, 2)
    assert {x["kind"] for x in recs} == {"audio", "video"}
    for rec in recs:
        await check_stored_media(r, rec)
    all_recs = await r.api("GET", f"/api/sessions/{sid}/recordings")
    assert {x["participant_id"] for x in all_recs} == {good.id}

    events = await audit(r, sid)
    good_left = [e for e in events if e["kind"] == "participant.left"
                 and e["participant_id"] == good.id]
    assert [e["data"]["reason"] for e in good_left] == ["left"]
    assert len([e for e in events if e["kind"] == "participant.joined"
                and e["participant_id"] == good.id]) == 1
    bad_left = [e["data"]["reason"] for e in events if e["kind"] == "participant.left"
                and e["participant_id"] == bad.id]
    assert bad_left == [code for _, code in after_hello]


# -- SDP errors -----------------------------------------------------------------------


async def test_sdp_errors_close_the_socket_and_the_server_keeps_serving(running: Running) -> None:
    r = running
    sid = await new_session(r)
    observer = await invite(r, sid, "Đại diện cơ sở", "institution_rep")
    member = await invite(r, sid, "Ủy viên", "member")
    too_large = "v=0\r\n" + ("a=" + "x" * 1000 + "\r\n") * 70
    assert 64 * 1024 < len(too_large) and len(json.dumps({"type": "offer", "sdp": too_large})) < (
        server.signalling.MAX_MESSAGE_BYTES)
    audio_only = await make_offer(video=False)
    cases: list[tuple[Invited, Any, str, int]] = [
        (observer, "garbage", "sdp.unparsable", 4400),
        (observer, "", "sdp.unparsable", 4400),
        (observer, None, "sdp.unparsable", 4400),
        (observer, {"sdp": "v=0"}, "sdp.unparsable", 4400),
        (observer, "v=0\r\nm=audio banana\r\n", "sdp.unparsable", 4400),
        (observer, too_large, "sdp.too_large", 4400),
        (observer, "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "sdp.no_media", 4400),
        (observer, H265_ONLY_OFFER, "sdp.no_supported_codec", 4400),
        (member, audio_only.localDescription.sdp, "camera.required", 4403),
    ]
    try:
        for n, (who, sdp, code, close_code) in enumerate(cases, start=1):
            ws = await joined(r, who, sid)
            await ws.send_json({"type": "offer", "sdp": sdp})
            await expect_error(ws, code, close_code)
            await wait_left(r, sid, n)
            session = await r.api("GET", f"/api/sessions/{sid}")
            assert session["status"] == "live"
        # Without any "sdp" at all.
        ws = await joined(r, observer, sid)
        await ws.send_json({"type": "offer"})
        await expect_error(ws, "sdp.unparsable", 4400)
        await wait_left(r, sid, len(cases) + 1)
    finally:
        await audio_only.close()

    # The same participants can still join properly; a second offer is refused.
    client = await join_with_media(r, observer, sid, video=False)
    await client.ws.send_json({"type": "offer", "sdp": client.pc.localDescription.sdp})
    await expect_error(client.ws, "sdp.unexpected", 4400)
    await client.pc.close()
    await wait_left(r, sid, len(cases) + 2)
    member_client = await join_with_media(r, member, sid)
    await member_client.ping()
    await member_client.leave()
    await wait_left(r, sid, len(cases) + 3)

    events = await audit(r, sid)
    reasons = [e["data"]["reason"] for e in events if e["kind"] == "participant.left"]
    assert reasons == [c for _, _, c, _ in cases] + ["sdp.unparsable", "sdp.unexpected", "left"]
    assert (await r.api("GET", "/api/dossiers"))


# -- timeouts, ending, tokens ---------------------------------------------------------


async def test_no_hello_times_out(running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server.signalling, "HELLO_TIMEOUT_S", 0.5)
    r = running
    started = time.monotonic()
    ws = await connect(r)
    await expect_error(ws, "signal.timeout", 4408)
    assert 0.4 < time.monotonic() - started < 5
    # A prompt participant is still let in.
    sid = await new_session(r)
    who = await invite(r, sid, "Nhanh tay", "observer")
    ws = await joined(r, who, sid)
    await ws.close()


async def test_ending_the_session_closes_connected_participants(running: Running) -> None:
    r = running
    sid = await new_session(r)
    member = await invite(r, sid, "Thư ký", "secretary")
    listener = await invite(r, sid, "Khách", "observer")
    client = await join_with_media(r, member, sid)
    quiet = await joined(r, listener, sid)
    await asyncio.sleep(2)

    ended = await r.api("POST", f"/api/sessions/{sid}/end")
    assert ended["status"] == "ended"
    # The recordings are finished and stored by the time the end call returns.
    recs = await r.api("GET", f"/api/sessions/{sid}/recordings")
    assert {(x["participant_id"], x["kind"], x["status"]) for x in recs} == {
        (member.id, "audio", "stored"), (member.id, "video", "stored")}
    for rec in recs:
        await check_stored_media(r, rec)

    for ws in (client.ws, quiet):
        assert await recv_json(ws) == {"type": "session_ended"}
        await expect_closed(ws, 1000)
    await client.pc.close()

    events = await audit(r, sid)
    left = {e["participant_id"]: e["data"]["reason"] for e in events
            if e["kind"] == "participant.left"}
    assert left == {member.id: "session_ended", listener.id: "session_ended"}
    kinds = [e["kind"] for e in events]
    assert kinds.index("session.ended") < kinds.index("participant.left")

    for who in (member, listener):
        ws = await connect(r)
        await ws.send_json({"type": "hello", "token": who.token, "session_id": sid})
        await expect_error(ws, "session.ended", 4409)
    assert len([e for e in await audit(r, sid) if e["kind"] == "participant.joined"]) == 2


async def test_bad_tokens_in_hello(running: Running) -> None:
    r = running
    sid = await new_session(r)
    other_sid = await new_session(r)
    who = await invite(r, sid, "Phản biện", "reviewer")
    secret = r.app[SECRET]
    now = utcnow()

    def issue(key: str = secret, session_id: str = sid, participant_id: str = who.id,
              lifetime: timedelta = timedelta(hours=1)) -> str:
        return jointoken.issue(key, session_id=session_id, participant_id=participant_id,
                               role="reviewer", now=now, lifetime=lifetime)

    cases = [
        (issue(lifetime=timedelta(seconds=-10)), sid, "join.expired", 4401),
        (issue(key="forged-" + "z" * 40), sid, "join.invalid", 4401),
        (who.token, other_sid, "join.wrong_session", 4401),
        (issue(session_id=other_sid), sid, "join.wrong_session", 4401),
        (who.token[:-2] + "AA", sid, "join.invalid", 4401),
        ("not-a-jwt", sid, "join.invalid", 4401),
        ("x" * 5000, sid, "join.invalid", 4401),
        ("", sid, "join.invalid", 4401),
        (issue(participant_id="e" * 32), sid, "participant.not_found", 4404),
    ]
    for token, session_id, code, close_code in cases:
        ws = await connect(r)
        await ws.send_json({"type": "hello", "token": token, "session_id": session_id})
        await expect_error(ws, code, close_code)
    assert not [e for e in await audit(r, sid) if e["kind"] == "participant.joined"]
    # The genuine link still works.
    ws = await joined(r, who, sid)
    await ws.close()


# -- a participant who vanishes -------------------------------------------------------


async def raw_hello_then_vanish(r: Running, token: str, sid: str, delay: float) -> None:
    """A WebSocket client on a bare TCP socket: handshake, hello, then the network
    drops (no close frame) ``delay`` seconds later."""
    host, port = r.client.server.host, r.client.server.port
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((
        f"GET /ws/join HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    payload = json.dumps({"type": "hello", "token": token, "session_id": sid}).encode()
    assert 125 < len(payload) < 65536
    mask = os.urandom(4)
    frame = bytes([0x81, 0x80 | 126]) + struct.pack("!H", len(payload)) + mask
    frame += bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    writer.write(frame)
    await writer.drain()
    if delay:
        await asyncio.sleep(delay)
    writer.transport.abort()


async def test_vanishing_after_hello_leaves_nothing_behind(running: Running) -> None:
    r = running
    # aiohttp's test server cancels a handler whose client dropped (handler_cancellation),
    # so admission is cut short at every point: a join must still get its leave.
    assert r.client.server.runner.server.handler_cancellation
    sid = await new_session(r)
    who = await invite(r, sid, "Mất mạng", "observer")
    for delay in (0, 0.001, 0.002, 0.003, 0.005, 0.008, 0.012, 0.02, 0.05, 0.1):
        await raw_hello_then_vanish(r, who.token, sid, delay)
        deadline = time.monotonic() + 5
        while True:
            # Arrivals are joins, or reconnects within the grace period; departures are
            # leaves, or lost connections (a leave follows if nobody comes back).
            events = await audit(r, sid)
            joined_ids = [e["data"]["connection"] for e in events if e["kind"] in
                          ("participant.joined", "participant.reconnected")]
            left_ids = [e["data"]["connection"] for e in events if e["kind"] in
                        ("participant.left", "participant.connection_lost")]
            if not r.app[LIVE].connections(sid) and sorted(joined_ids) == sorted(left_ids):
                break
            assert time.monotonic() < deadline, (
                delay, [c.id for c in r.app[LIVE].connections(sid)], joined_ids, left_ids)
            await asyncio.sleep(0.02)
        # Every departure is of a connection whose arrival is on record.
        assert set(left_ids) <= set(joined_ids)
    # The participant can still join properly afterwards.
    ws = await joined(r, who, sid)
    assert [c.participant.id for c in r.app[LIVE].connections(sid)] == [who.id]
    await ws.send_json({"type": "leave"})
    assert await recv_json(ws) == {"type": "bye"}
    await expect_closed(ws, 1000)


async def test_nothing_reaches_a_connection_before_its_welcome() -> None:
    """A camera warning or roster change sent while a join is being set up waits for
    the welcome and follows it in order (a client reads the welcome first)."""
    from datetime import UTC, datetime
    from types import SimpleNamespace
    from typing import cast

    from server.live import Connection, LiveRegistry, _send

    sent: list[dict[str, Any]] = []

    class RecordingSocket:  # a stand-in for the WebSocket: records what is sent
        closed = False

        async def send_json(self, message: dict[str, Any]) -> None:
            sent.append(message)

    conn = Connection(id="c", session_id="s", dossier_id="d",
                      participant=cast(Any, SimpleNamespace(id="p")),
                      ws=cast(Any, RecordingSocket()), peer=cast(Any, None),
                      opened_at=datetime.now(UTC))
    await _send([conn], {"type": "camera_warning"})
    await _send([conn], {"type": "slots"})
    assert sent == []
    await conn.ws.send_json({"type": "welcome"})
    await LiveRegistry.welcomed(conn)
    await _send([conn], {"type": "quorum"})
    assert [m["type"] for m in sent] == ["welcome", "camera_warning", "slots", "quorum"]
    assert conn.early == []
