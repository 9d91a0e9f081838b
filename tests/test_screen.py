"""Screen sharing: a second video track per participant, shown to the others only while
shared (the latest share first), and recorded like any other track."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import Running
from tests.test_forwarding import Client, close_all, join_with_media, wait_for
from tests.test_signalling import expect_error, invite, joined, new_session, recv_json


def screen_shows(client: Client) -> str | None:
    """Whose screen the client's screen slot shows (None: nobody's)."""
    (slot,) = [s for s in client.slots if s["kind"] == "screen"] or [{"participant": None}]
    who = slot["participant"]
    return None if who is None else str(who["id"])


async def until(check: Any, what: str, within: float = 8.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.05)


async def test_a_shared_screen_reaches_the_others_and_is_recorded(running: Running) -> None:
    r = running
    sid = await new_session(r)
    people = [await invite(r, sid, name, role) for name, role in
              [("Chủ tịch An", "chair"), ("Thành viên Bình", "member"),
               ("Thư ký Chi", "secretary")]]
    clients = [await join_with_media(r, sid, who, receive_slots=2, screen=True)
               for who in people]
    a, b, c = clients
    try:
        await asyncio.sleep(2)
        # Offered but not shared: nobody is shown a screen, though the track is sent.
        assert [screen_shows(x) for x in clients] == [None, None, None]
        b_screen = b.screen["receive"][0]
        assert b.received[b_screen] == []

        await a.ws.send_json({"type": "screen", "sharing": True})
        await until(lambda: screen_shows(b) == a.who.id and screen_shows(c) == a.who.id,
                    "a's screen is not shown to b and c")
        assert screen_shows(a) is None  # not to the sharer itself
        await until(lambda: len(b.received[b_screen]) > 15, "b receives no screen frames")
        # The camera slots still show cameras: a's camera and screen are separate.
        camera = b.frames_from(a.who.id, "video")
        assert len(camera) > 15

        # A later share takes the slot; when it stops, the earlier one is back.
        await c.ws.send_json({"type": "screen", "sharing": True})
        await until(lambda: screen_shows(b) == c.who.id and screen_shows(a) == c.who.id,
                    "c's later share is not shown")
        assert screen_shows(c) == a.who.id
        await c.ws.send_json({"type": "screen", "sharing": False})
        await until(lambda: screen_shows(b) == a.who.id and screen_shows(a) is None,
                    "a's share is not shown again")
        await a.ws.send_json({"type": "screen", "sharing": False})
        await until(lambda: screen_shows(b) is None, "the stopped share is still shown")
        await asyncio.sleep(0.5)
        await r.api("POST", f"/api/sessions/{sid}/end")
        await wait_for(b, "session_ended")
    finally:
        await close_all(clients)

    recordings = await r.api("GET", f"/api/sessions/{sid}/recordings")
    sources = {(x["participant_id"], x["kind"], x["source"]) for x in recordings
               if x["status"] == "stored"}
    for who in people:
        assert {(who.id, "audio", "microphone"), (who.id, "video", "camera"),
                (who.id, "video", "screen")} <= sources, sources
    events = [(e["kind"], e["participant_id"]) for e in
              await r.api("GET", f"/api/sessions/{sid}/audit") if "screen" in e["kind"]]
    assert events == [
        ("participant.screen_started", a.who.id), ("participant.screen_started", c.who.id),
        ("participant.screen_stopped", c.who.id), ("participant.screen_stopped", a.who.id),
    ]


async def test_bad_screen_fields_close_only_that_socket(running: Running) -> None:
    r = running
    sid = await new_session(r)
    for bad in ["screen", {"send": 3}, {"send": "1", "receive": "2"},
                {"send": "1", "receive": ["2"] * 5}, {"send": "1", "extra": True}]:
        who = await invite(r, sid, "Thành viên", "member")
        ws = await joined(r, who, sid)
        await ws.send_json({"type": "offer", "sdp": "v=0", "screen": bad})
        await expect_error(ws, "signal.malformed", 4400)
    who = await invite(r, sid, "Thành viên", "member")
    ws = await joined(r, who, sid)
    await ws.send_json({"type": "screen", "sharing": "yes"})
    await expect_error(ws, "signal.malformed", 4400)
    # Sharing before any media is harmless.
    ws = await joined(r, await invite(r, sid, "Khác", "member"), sid)
    await ws.send_json({"type": "screen", "sharing": True})
    await ws.send_json({"type": "ping"})
    assert await recv_json(ws) == {"type": "pong"}
    await ws.close()
