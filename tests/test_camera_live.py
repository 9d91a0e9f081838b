"""The server's camera check on a live connection: a real aiortc client sends video,
then black frames, then nothing; the record shows each change with its reason."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from aiortc import RTCPeerConnection

from tests.conftest import Running, make_settings, start_app
from tests.mediaclient import PatternTrack, accept_answer, make_offer
from tests.test_signalling import invite, joined, new_session, recv_json


def camera_track(pc: RTCPeerConnection) -> PatternTrack:
    (track,) = [t.sender.track for t in pc.getTransceivers()
                if isinstance(t.sender.track, PatternTrack)]
    return track


async def camera_events(r: Running, sid: str, pid: str) -> list[dict[str, Any]]:
    return [e for e in await r.api("GET", f"/api/sessions/{sid}/audit")
            if e["kind"] in ("camera.on", "camera.off") and e["participant_id"] == pid]


async def wait_camera(r: Running, sid: str, pid: str, on: bool, reason: str | None,
                      after: float = 0.0, within: float = 12.0) -> float:
    """Wait for the record to say the camera went ``on``/off with ``reason`` at or after
    ``after``; returns when the server said it happened (its own clock)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for e in await camera_events(r, sid, pid):
            at = datetime.fromisoformat(e["data"]["server_time"]).timestamp()
            if (e["kind"] == "camera.on") == on and e["data"]["reason"] == reason and at >= after:
                return at
        await asyncio.sleep(0.2)
    raise AssertionError(await camera_events(r, sid, pid))


async def test_on_black_and_no_frames_with_their_times(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, camera_sample_s=1.0, transcribe_on_end=False)
    async for r in start_app(settings):
        sid = await new_session(r)
        member = await invite(r, sid, "Thành viên Bình", "member")
        ws = await joined(r, member, sid)
        pc = await make_offer()
        await ws.send_json({"type": "offer", "sdp": pc.localDescription.sdp})
        answer = await recv_json(ws)
        await accept_answer(pc, answer["sdp"])
        try:
            await wait_camera(r, sid, member.id, True, None)
            # The page disables the track: black frames.
            blacked = time.time()
            camera_track(pc).black = True
            at = await wait_camera(r, sid, member.id, False, "black", after=blacked)
            assert 0 <= at - blacked <= 4.0  # within a sample interval and a decode
            camera_track(pc).black = False
            await wait_camera(r, sid, member.id, True, None, after=at)
            # The participant itself is told too (for the warning on its page).
            told = []
            while True:
                try:
                    msg = await recv_json(ws, within=0.5, skip=frozenset({"speaker"}))
                except TimeoutError:
                    break
                if msg["type"] == "camera":
                    told.append((msg["on"], msg["reason"]))
            assert (False, "black") in told and (True, None) in told
            # The track stops: no frames.
            stopped = time.time()
            camera_track(pc).stop()
            at = await wait_camera(r, sid, member.id, False, "no_frames", after=stopped - 1)
            # Decided camera_stale_s later, dated from the last frame the server received.
            assert -0.5 <= at - stopped <= 0.5
        finally:
            await ws.close()
            await pc.close()
        events = await camera_events(r, sid, member.id)
        assert events[0]["kind"] == "camera.off" and events[0]["data"]["reason"] == "no_frames"
        assert all(e["actor"] == "system" for e in events)


async def test_a_camera_back_on_is_dated_within_a_second(tmp_path: Path) -> None:
    """While the picture says "off" the server samples every second, whatever its usual
    interval: a camera back on is dated by the first key frame that shows it (issue 4's
    E2E allows ±2 s; a 5 s interval alone would miss that)."""
    settings = make_settings(tmp_path, camera_sample_s=5.0, transcribe_on_end=False)
    async for r in start_app(settings):
        sid = await new_session(r)
        member = await invite(r, sid, "Thành viên Chi", "member")
        ws = await joined(r, member, sid)
        pc = await make_offer()
        await ws.send_json({"type": "offer", "sdp": pc.localDescription.sdp})
        await accept_answer(pc, (await recv_json(ws))["sdp"])
        try:
            await wait_camera(r, sid, member.id, True, None)
            camera_track(pc).black = True
            blacked = time.time()
            at = await wait_camera(r, sid, member.id, False, "black", after=blacked - 1)
            await asyncio.sleep(max(0.0, at + 2.5 - time.time()))  # mid-interval
            back = time.time()
            camera_track(pc).black = False
            on_at = await wait_camera(r, sid, member.id, True, None, after=back - 1)
            assert 0 <= on_at - back <= 1.6, on_at - back
        finally:
            await ws.close()
            await pc.close()


async def test_audio_only_is_no_video(running: Running) -> None:
    r = running
    sid = await new_session(r)
    guest = await invite(r, sid, "Quan sát", "observer")
    ws = await joined(r, guest, sid)
    pc = await make_offer(video=False)
    await ws.send_json({"type": "offer", "sdp": pc.localDescription.sdp})
    await accept_answer(pc, (await recv_json(ws))["sdp"])
    try:
        await wait_camera(r, sid, guest.id, False, "no_video")
    finally:
        await ws.close()
        await pc.close()


async def test_face_check_and_presence_stills(tmp_path: Path) -> None:
    """With the face check on, a camera showing nobody is off (``no_face``); with stills
    on, the server keeps small JPEGs of the camera, hashed, in the session's store."""
    import hashlib

    from server.state import STORE

    settings = make_settings(tmp_path, camera_sample_s=1.0, transcribe_on_end=False,
                             camera_face_check=True, presence_still_minutes=0.03)
    async for r in start_app(settings):
        sid = await new_session(r)
        member = await invite(r, sid, "Thành viên Bình", "member")
        ws = await joined(r, member, sid)
        pc = await make_offer()
        await ws.send_json({"type": "offer", "sdp": pc.localDescription.sdp})
        await accept_answer(pc, (await recv_json(ws))["sdp"])
        try:
            # The test pattern has no face: on at the first sample, no_face at the second.
            await wait_camera(r, sid, member.id, False, "no_face")
            deadline = time.monotonic() + 10
            stills: list[dict[str, Any]] = []
            while len(stills) < 2 and time.monotonic() < deadline:
                stills = [e for e in await r.api("GET", f"/api/sessions/{sid}/audit")
                          if e["kind"] == "camera.still"]
                await asyncio.sleep(0.3)
        finally:
            await ws.close()
            await pc.close()
        assert len(stills) >= 2, stills
        first = stills[0]["data"]
        data = await r.app[STORE].get_bytes(first["key"])
        assert hashlib.sha256(data).hexdigest() == first["sha256"] and data[:2] == b"\xff\xd8"
        assert f"/sessions/{sid}/stills/{member.id}/" in first["key"]
        gap = (datetime.fromisoformat(stills[1]["data"]["server_time"])
               - datetime.fromisoformat(first["server_time"])).total_seconds()
        assert gap >= 1.5  # one every 0.03 min (1.8 s), not one per sample
