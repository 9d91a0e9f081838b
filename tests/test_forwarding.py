"""Multi-party forwarding: everyone receives everyone, undecoded, through real peers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType
from aiortc import RTCPeerConnection

from media.forwarder import Forwarder, SlotTrack
from media.frames import EncodedFrame
from media.vp8 import is_keyframe
from tests.conftest import Running, make_settings, start_app
from tests.mediaclient import accept_answer, make_offer
from tests.test_signalling import (
    Invited,
    invite,
    joined,
    new_session,
    recv_json,
    stored_recordings,
)


@dataclass
class Client:
    who: Invited
    ws: ClientWebSocketResponse
    pc: RTCPeerConnection
    received: dict[str, list[EncodedFrame]]
    slots: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None
    screen: dict[str, Any] = field(default_factory=dict)

    def frames_from(self, participant_id: str, kind: str) -> list[EncodedFrame]:
        for slot in self.slots:
            who = slot["participant"]
            if slot["kind"] == kind and who is not None and who["id"] == participant_id:
                return self.received[slot["mid"]]
        return []


async def _read_slots(client: Client) -> None:
    async for msg in client.ws:
        if msg.type != WSMsgType.TEXT:
            break
        data = json.loads(msg.data)
        client.messages.append(data)
        if data["type"] == "slots":
            client.slots = data["slots"]


async def join_with_media(r: Running, sid: str, who: Invited, receive_slots: int,
                          *, screen: bool = False, volume: float = 0.25) -> Client:
    """Join with media; with ``screen``, also a screen track and a screen slot."""
    ws = await joined(r, who, sid)
    received: dict[str, list[EncodedFrame]] = {}
    mids: dict[str, Any] = {}
    pc = await make_offer(receive_slots=receive_slots, received=received,
                          screen=mids if screen else None, volume=volume)
    offer: dict[str, Any] = {"type": "offer", "sdp": pc.localDescription.sdp}
    if screen:
        offer["screen"] = mids
    await ws.send_json(offer)
    answer = await recv_json(ws)
    assert answer["type"] == "answer", answer
    await accept_answer(pc, answer["sdp"])
    client = Client(who, ws, pc, received, screen=mids)
    client.reader = asyncio.create_task(_read_slots(client))
    return client


async def test_three_participants_each_receive_the_other_two(running: Running) -> None:
    r = running
    sid = await new_session(r)
    names = [("Chủ tịch An", "chair"), ("Thành viên Bình", "member"), ("Thư ký Chi", "secretary")]
    people = [await invite(r, sid, name, role) for name, role in names]
    clients = [await join_with_media(r, sid, who, receive_slots=2) for who in people]
    try:
        await asyncio.sleep(5)
        for client in clients:
            others = [c.who for c in clients if c is not client]
            shown = {s["participant"]["id"] for s in client.slots if s["participant"]}
            assert shown == {o.id for o in others}, client.slots
            for other in others:
                video = client.frames_from(other.id, "video")
                audio = client.frames_from(other.id, "audio")
                # ~15 fps and 50 packets/s sent; allow for the join order and start-up.
                assert len(video) > 20, (client.who.name, other.name, len(video))
                assert len(audio) > 80, (client.who.name, other.name, len(audio))
                assert is_keyframe(video[0].data)  # a slot starts at a key frame
                assert all(f.codec == "vp8" for f in video)
                assert all(f.codec == "opus" for f in audio)

        # One leaves: the others' slots showing it are freed and say so.
        leaver = clients.pop()
        await leaver.ws.send_json({"type": "leave"})
        await asyncio.sleep(1.5)
        for client in clients:
            shown = {s["participant"]["id"] for s in client.slots if s["participant"]}
            assert leaver.who.id not in shown, client.slots
        await leaver.pc.close()
        # Ending the session finishes and stores everyone's recordings before it returns.
        await r.api("POST", f"/api/sessions/{sid}/end")
    finally:
        await close_all(clients)

    # Forwarding does not replace recording: each participant's own tracks are stored.
    recordings = await r.api("GET", f"/api/sessions/{sid}/recordings")
    stored = {(x["participant_id"], x["kind"]) for x in recordings if x["status"] == "stored"}
    assert stored == {(p.id, k) for p in people for k in ("audio", "video")}


def _frame(data: bytes, ts: int, kind: str = "video") -> EncodedFrame:
    rate = 90000 if kind == "video" else 48000
    return EncodedFrame(kind, "vp8" if kind == "video" else "opus", data, ts, rate, 0.0)


KEY = b"\x10\x02\x00\x9d\x01\x2a\x40\x01\xf0\x00" + b"k" * 20  # 320x240 key frame
DELTA = b"\x31\x00\x00" + b"d" * 20


async def test_slot_starts_at_keyframe_and_keeps_one_timeline() -> None:
    requests: list[str] = []
    fwd = Forwarder()
    fwd.add_publisher("a/video-0", lambda: requests.append("a"))
    fwd.add_publisher("b/video-0", lambda: requests.append("b"))
    slot = SlotTrack("video")
    fwd.subscribe("a/video-0", slot)
    assert requests == ["a"]  # a new subscriber asks for a key frame
    fwd.publish("a/video-0", _frame(DELTA, 1000))  # not decodable alone: dropped
    fwd.publish("a/video-0", _frame(KEY, 4000))
    fwd.publish("a/video-0", _frame(DELTA, 7000))
    first, second = await slot.recv(), await slot.recv()
    assert bytes(first) == KEY and first.pts == 0
    assert bytes(second) == DELTA and second.pts == 3000
    assert slot.dropped == 1

    # Switched to another publisher: its timestamps continue the slot's timeline.
    fwd.subscribe("b/video-0", slot)
    assert requests == ["a", "b"]
    fwd.publish("a/video-0", _frame(KEY, 10000))  # no longer routed here
    fwd.publish("b/video-0", _frame(KEY, 999_999))
    third = await slot.recv()
    assert bytes(third) == KEY and third.pts == 6000
    assert fwd.subscribers("a/video-0") == 0 and fwd.subscribers("b/video-0") == 1


async def test_a_publishers_timestamp_wrap_is_not_a_step_back() -> None:
    # RTP timestamps are 32-bit from a random start: at 90 kHz one wraps within 13 h.
    # Taken as a step back, every later frame went out one tick after the last.
    fwd = Forwarder()
    fwd.add_publisher("a/video-0", lambda: None)
    slot = SlotTrack("video")
    fwd.subscribe("a/video-0", slot)
    start = 0xFFFF_FFFF - 4000
    for i, data in enumerate((KEY, DELTA, DELTA, DELTA)):
        fwd.publish("a/video-0", _frame(data, (start + 3000 * i) & 0xFFFF_FFFF))
    fwd.publish("a/video-0", _frame(DELTA, 100))  # from the past: one tick on
    pts = [(await slot.recv()).pts for _ in range(5)]
    assert pts == [0, 3000, 6000, 9000, 9001]


async def test_slow_subscriber_loses_frames_not_memory() -> None:
    requests: list[str] = []
    fwd = Forwarder()
    fwd.add_publisher("a/video-0", lambda: requests.append("a"))
    slot = SlotTrack("video", max_queue=8)
    fwd.subscribe("a/video-0", slot)
    fwd.publish("a/video-0", _frame(KEY, 0))
    for i in range(1, 200):  # nobody calls recv(): the subscriber is stuck
        fwd.publish("a/video-0", _frame(DELTA, i * 3000))
    assert slot._queue.qsize() <= 8
    assert slot.dropped > 150
    # Having lost reference frames, the slot waits for (and asked for) a key frame.
    assert len(requests) >= 1
    fwd.publish("a/video-0", _frame(DELTA, 700_000))
    queued = slot._queue.qsize()
    fwd.publish("a/video-0", _frame(KEY, 703_000))
    assert slot._queue.qsize() == queued + 1


async def close_all(clients: list[Client]) -> None:
    for client in clients:
        await client.ws.close()
        await client.pc.close()
        if client.reader is not None:
            client.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await client.reader


async def wait_for(client: Client, kind: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 5.0
    while asyncio.get_running_loop().time() < deadline:
        for m in client.messages:
            if m["type"] == kind:
                return m
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {kind!r} message for {client.who.name}: {client.messages}")


async def test_chair_mutes_removes_and_ends(running: Running) -> None:
    r = running
    sid = await new_session(r)
    chair, member, observer = [
        await invite(r, sid, name, role) for name, role in
        [("Chủ tịch An", "chair"), ("Thành viên Bình", "member"), ("Quan sát Chi", "observer")]
    ]
    clients = [await join_with_media(r, sid, who, receive_slots=2)
               for who in (chair, member, observer)]
    c_chair, c_member, c_observer = clients
    try:
        await asyncio.sleep(2.5)
        heard = c_observer.frames_from(member.id, "audio")
        seen = c_observer.frames_from(member.id, "video")
        assert len(heard) > 30 and len(seen) > 10

        # A member may not use the chair's controls; it is told so and stays connected.
        await c_member.ws.send_json({"type": "mute", "participant_id": chair.id, "muted": True})
        denied = await wait_for(c_member, "denied")
        assert denied["code"] == "signal.forbidden" and set(denied["message"]) == {"vi", "en"}
        assert not c_member.ws.closed

        # The chair mutes the member: its audio is no longer forwarded, its video is.
        await c_chair.ws.send_json({"type": "mute", "participant_id": member.id,
                                    "kind": "audio", "muted": True})
        notice = await wait_for(c_member, "muted")
        assert notice["participant_id"] == member.id and notice["by"]["id"] == chair.id
        await asyncio.sleep(0.5)  # frames already on the way
        heard_before, seen_before = len(heard), len(seen)
        await asyncio.sleep(2)
        assert len(heard) - heard_before <= 2, (heard_before, len(heard))
        assert len(seen) - seen_before > 10

        await c_chair.ws.send_json({"type": "mute", "participant_id": member.id,
                                    "kind": "audio", "muted": False})
        await asyncio.sleep(1.5)
        assert len(heard) - heard_before > 30  # forwarded again

        # The chair removes the observer: told, disconnected, and refused if it returns.
        await c_chair.ws.send_json({"type": "remove", "participant_id": observer.id})
        removed = await wait_for(c_observer, "removed")
        assert removed["by"]["name"] == "Chủ tịch An"
        await asyncio.sleep(0.5)
        assert c_observer.ws.closed
        again = await r.client.ws_connect("/ws/join")
        await again.send_json({"type": "hello", "token": observer.token, "session_id": sid})
        refused = await again.receive_json()
        assert refused["code"] == "participant.removed"
        await again.close()
        # Kept on the participant record, so it outlasts this server process.
        people = {p["id"]: p for p in await r.api("GET", f"/api/sessions/{sid}/participants")}
        assert people[observer.id]["removed_at"] is not None
        assert people[member.id]["removed_at"] is None

        # The chair ends the session for everyone.
        await c_chair.ws.send_json({"type": "end_session"})
        await wait_for(c_member, "session_ended")
        session = await r.api("GET", f"/api/sessions/{sid}")
        assert session["status"] == "ended"
    finally:
        await close_all(clients)

    events = await r.api("GET", f"/api/sessions/{sid}/audit")
    controls = [(e["kind"], e["participant_id"], e["actor"]) for e in events
                if e["kind"] in ("participant.muted", "participant.unmuted",
                                 "participant.removed", "session.ended")]
    assert controls == [
        ("participant.muted", member.id, f"participant:{chair.id}"),
        ("participant.unmuted", member.id, f"participant:{chair.id}"),
        ("participant.removed", observer.id, f"participant:{chair.id}"),
        ("session.ended", None, f"participant:{chair.id}"),
    ]
    muted = next(e for e in events if e["kind"] == "participant.muted")
    assert muted["data"] == {"kind": "audio", "forwarding": "stopped", "recording": "continues"}
    # Muting stops forwarding, not recording: the member's audio covers the whole time.
    recs = await stored_recordings(r, sid, member.id, 2)  # storing follows the end
    member_audio = next(x for x in recs if x["kind"] == "audio")
    assert member_audio["status"] == "stored" and member_audio["duration_s"] > 6


@pytest.mark.parametrize("fast", [True, False])
async def test_a_subscribers_picture_loss_reaches_the_publisher(tmp_path: Path,
                                                                fast: bool) -> None:
    """The subscriber's PLI for a slot becomes a PLI to that slot's publisher (whose
    encoder then sends a key frame, which reaches the subscriber); rate-limited."""
    settings = make_settings(tmp_path, camera_sample_s=60.0, transcribe_on_end=False,
                             fast_forwarding=fast)
    async for r in start_app(settings):
        sid = await new_session(r)
        a_who, b_who = [await invite(r, sid, name, "member") for name in ("A", "B")]
        a = await join_with_media(r, sid, a_who, receive_slots=1)
        b = await join_with_media(r, sid, b_who, receive_slots=1)
        try:
            for _ in range(100):
                if len(b.frames_from(a_who.id, "video")) > 10:
                    break
                await asyncio.sleep(0.1)
            sender = next(t.sender for t in a.pc.getTransceivers()
                          if t.kind == "video" and t.sender.track is not None)
            asked: list[float] = []
            original = sender._send_keyframe

            def counting(asked: list[float] = asked, original: Any = original) -> None:
                asked.append(time.monotonic())
                original()

            sender._send_keyframe = counting  # type: ignore[method-assign]
            await asyncio.sleep(2.0)  # the join's own requests and the camera's are over
            assert not asked, asked
            slot = next(s for s in b.slots if s["kind"] == "video" and s["participant"]
                        and s["participant"]["id"] == a_who.id)
            receiver = next(t.receiver for t in b.pc.getTransceivers()
                            if t.mid == slot["mid"])
            ssrc = receiver.getSynchronizationSources()[0].source
            frames = b.frames_from(a_who.id, "video")
            seen = len(frames)
            for _ in range(3):  # three at once: one reaches the publisher
                await receiver._send_rtcp_pli(ssrc)
            for _ in range(30):
                if asked:
                    break
                await asyncio.sleep(0.1)
            assert len(asked) == 1, asked
            for _ in range(30):
                if any(is_keyframe(f.data) for f in frames[seen:]):
                    break
                await asyncio.sleep(0.1)
            assert any(is_keyframe(f.data) for f in frames[seen:])
        finally:
            await close_all([a, b])
