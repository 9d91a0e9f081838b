"""Bad media from one participant must not disturb the others or grow the server.

A real aiortc client, once connected, sends properly encrypted SRTP whose contents
are garbage (random RTP headers and payloads, truncated and random RTCP) plus raw
UDP noise at the server's media port. The others keep receiving each other, the
server keeps answering, and the flooder's own recording is still kept.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType

from server.state import LIVE
from tests.conftest import Running, make_settings, start_app
from tests.mediaclient import make_offer
from tests.test_forwarding import close_all, join_with_media
from tests.test_signalling import invite, joined, new_session, next_message, recv_json


def bad_server_dtls(r: Running, sid: str, participant_id: str) -> Any:
    conn = next(c for c in r.app[LIVE].connections(sid) if c.participant.id == participant_id)
    return conn.peer.pc.getTransceivers()[0].receiver.transport


def garbage_packets(rng: random.Random, count: int) -> list[bytes]:
    packets = []
    for i in range(count):
        choice = i % 4
        if choice == 0:  # an RTP header with a random payload type and junk payload
            header = struct.pack("!BBHII", 0x80, rng.randrange(0, 128), i, rng.getrandbits(32),
                                 rng.getrandbits(32))
            packets.append(header + os.urandom(rng.randrange(0, 1200)))
        elif choice == 1:  # extension bit set, lengths that lie
            header = struct.pack("!BBHII", 0x90 | rng.randrange(16), 96, i, 0, 0)
            packets.append(header + b"\xbe\xde\xff\xff" + os.urandom(rng.randrange(0, 40)))
        elif choice == 2:  # "RTCP" (payload type 200-204) with lying lengths
            packets.append(bytes([0x80, 200 + rng.randrange(5)]) + b"\xff\xff"
                           + os.urandom(rng.randrange(4, 60)))
        else:  # VP8 / Opus payload types with random bodies
            header = struct.pack("!BBHII", 0x80, rng.choice([96, 97, 111]), i,
                                 rng.getrandbits(32), rng.getrandbits(32))
            packets.append(header + os.urandom(rng.randrange(1, 300)))
    return packets


async def test_garbage_rtp_and_rtcp_disturb_nobody_else(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    r = running
    sid = await new_session(r)
    people = [await invite(r, sid, name, role) for name, role in
              [("Chủ tịch An", "chair"), ("Thành viên Bình", "member"),
               ("Thành viên Gây Rối", "member")]]
    clients = [await join_with_media(r, sid, who, receive_slots=2) for who in people]
    a, b, bad = clients
    try:
        await asyncio.sleep(2)
        before = len(b.frames_from(a.who.id, "video")), len(a.frames_from(b.who.id, "audio"))
        dtls: Any = bad.pc.getTransceivers()[0].sender.transport
        rng = random.Random(7)
        sent = 0
        for packet in garbage_packets(rng, 3000):
            try:
                await dtls._send_rtp(packet)  # SRTP-protected, so the server must parse it
                sent += 1
            except Exception:  # libsrtp refuses some of it on our side
                pass
            if sent % 100 == 0:
                await asyncio.sleep(0.01)
        assert sent > 1000
        # Noise straight at the server's media port, outside SRTP.
        answer_sdp = bad.pc.remoteDescription.sdp
        found = re.search(r"a=candidate:\S+ 1 udp \d+ (\d+\.\d+\.\d+\.\d+) (\d+)", answer_sdp)
        assert found, answer_sdp
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(500):
                s.sendto(os.urandom(rng.randrange(1, 1400)), (found[1], int(found[2])))
        await asyncio.sleep(2)
        after = len(b.frames_from(a.who.id, "video")), len(a.frames_from(b.who.id, "audio"))
        # ~15 fps and 50 packets/s kept flowing between the others.
        assert after[0] - before[0] > 30, (before, after)
        assert after[1] - before[1] > 100, (before, after)
        # Random SSRCs do not grow the server's tables: past a few sources per track,
        # new ones are dropped, and that is logged.
        (guard,) = [c.peer.ssrc_guard for c in r.app[LIVE].connections(sid)
                    if c.participant.id == bad.who.id]
        assert guard is not None and guard.dropped > 100
        dtls: Any = bad_server_dtls(r, sid, bad.who.id)
        assert len(dtls._rtp_router.ssrc_table) <= guard.limit
        assert any("RTP from more than" in m for m in caplog.messages)
        # The server still answers signalling, the flooder included.
        for c in (a, bad):
            await c.ws.send_json({"type": "ping"})
        await r.api("POST", f"/api/sessions/{sid}/end")
    finally:
        await close_all(clients)
    recordings = await r.api("GET", f"/api/sessions/{sid}/recordings")
    kept = {x["participant_id"] for x in recordings if x["status"] == "stored"}
    assert {p.id for p in people} <= kept


async def test_a_client_that_never_connects_its_media_costs_nothing(running: Running) -> None:
    """Offers, gets its answer, then never does ICE/DTLS (so never takes any media):
    the others are unaffected and nothing queues up for it on the server."""
    r = running
    sid = await new_session(r)
    a_who, b_who, mute_who = [await invite(r, sid, name, "member") for name in "ABC"]
    clients = [await join_with_media(r, sid, who, receive_slots=2) for who in (a_who, b_who)]
    a, b = clients
    silent_ws = await joined(r, mute_who, sid)
    silent_pc = await make_offer(receive_slots=2)
    await silent_ws.send_json({"type": "offer", "sdp": silent_pc.localDescription.sdp})
    answer = await recv_json(silent_ws)
    assert answer["type"] == "answer"  # ...and it is never applied: no ICE, no DTLS
    try:
        before = len(b.frames_from(a.who.id, "video"))
        await asyncio.sleep(4)
        assert len(b.frames_from(a.who.id, "video")) - before > 40
        room = r.app[LIVE]._rooms[sid]
        silent_slots = room.assignments(mute_who.id)
        assert silent_slots, "the silent client was given slots"
        for slot in silent_slots:
            if slot.track.source is not None:
                # Nothing waits for it: frames for it are dropped, not kept.
                assert slot.track._queue.qsize() == 0
                assert slot.track.dropped > 0
                assert slot.track.delivered == 0
    finally:
        await silent_ws.close()
        await silent_pc.close()
        await close_all(clients)


async def test_a_client_that_never_connects_its_media_is_told_and_dropped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """After ``media_connect_timeout_s`` without ICE/DTLS the silent client gets a
    bilingual error and a 4408 close, its slots are released, the leave is in the
    record with the reason; the connected ones (also past the timeout) stay."""
    settings = make_settings(tmp_path, media_connect_timeout_s=3.0, transcribe_on_end=False)
    async for r in start_app(settings):
        sid = await new_session(r)
        a_who, b_who, mute_who = [await invite(r, sid, name, "member") for name in "ABC"]
        clients = [await join_with_media(r, sid, who, receive_slots=2)
                   for who in (a_who, b_who)]
        a, b = clients
        silent_ws = await joined(r, mute_who, sid)
        silent_pc = await make_offer(receive_slots=2)
        await silent_ws.send_json({"type": "offer", "sdp": silent_pc.localDescription.sdp})
        assert (await recv_json(silent_ws))["type"] == "answer"
        try:
            error = await next_message(silent_ws, "error", within=8.0)
            assert error["type"] == "error" and error["code"] == "media.connect_timeout"
            assert "3 giây" in error["message"]["vi"] and "3 seconds" in error["message"]["en"]
            closing = await silent_ws.receive(timeout=5)
            assert closing.type == WSMsgType.CLOSE and closing.data == 4408, closing
            room = r.app[LIVE]._rooms[sid]
            for _ in range(50):  # the close is sent first, then the connection is finished
                if not room.assignments(mute_who.id):
                    break
                await asyncio.sleep(0.1)
            assert not room.assignments(mute_who.id)
            assert {c.participant.id for c in r.app[LIVE].connections(sid)} == {
                a_who.id, b_who.id}
            before = len(b.frames_from(a.who.id, "video"))
            await asyncio.sleep(2)
            assert len(b.frames_from(a.who.id, "video")) - before > 20
            events = await r.api("GET", f"/api/sessions/{sid}/audit")
            left = [e for e in events if e["kind"] == "participant.left"
                    and e["participant_id"] == mute_who.id]
            assert [e["data"]["reason"] for e in left] == ["media.connect_timeout"], left
            assert any("not connected after" in m for m in caplog.messages)
        finally:
            await silent_ws.close()
            await silent_pc.close()
            await close_all(clients)
