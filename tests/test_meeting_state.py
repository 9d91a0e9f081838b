"""Microphone and camera switches as a participant's page declares them: the others are
told (newcomers too), changes are audited as declared by the page, bad values refused."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import Running
from tests.test_forwarding import Client, close_all, join_with_media
from tests.test_signalling import expect_error, invite, joined, new_session


async def states_seen(client: Client, about: str, within: float = 5.0) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        found = [m for m in client.messages
                 if m["type"] == "media_state" and m["participant_id"] == about]
        if found:
            return found
        await asyncio.sleep(0.05)
    return []


async def test_switches_reach_the_others_and_the_record(running: Running) -> None:
    r = running
    sid = await new_session(r)
    a_who, b_who, c_who = [await invite(r, sid, name, "member") for name in ("A", "B", "C")]
    a = await join_with_media(r, sid, a_who, receive_slots=2)
    b = await join_with_media(r, sid, b_who, receive_slots=2)
    clients = [a, b]
    try:
        await a.ws.send_json({"type": "media_state", "audio": True, "video": True})
        await a.ws.send_json({"type": "media_state", "audio": False, "video": True})
        await a.ws.send_json({"type": "media_state", "audio": False, "video": False})
        seen = await states_seen(b, a_who.id)
        assert len(seen) >= 1
        await asyncio.sleep(0.5)
        seen = await states_seen(b, a_who.id)
        assert [(m["audio"], m["video"]) for m in seen] == [
            (True, True), (False, True), (False, False)]
        assert not await states_seen(a, a_who.id, within=0.2)  # not echoed to oneself
        # A newcomer is told the current state.
        c = await join_with_media(r, sid, c_who, receive_slots=2)
        clients.append(c)
        late = await states_seen(c, a_who.id)
        assert [(m["audio"], m["video"]) for m in late] == [(False, False)]
    finally:
        await close_all(clients)
    events = [e for e in await r.api("GET", f"/api/sessions/{sid}/audit")
              if e["kind"] == "participant.switches"]
    # Joining with both on is not recorded; each change after is.
    assert [(e["participant_id"], e["data"]) for e in events] == [
        (a_who.id, {"microphone": False, "camera": True, "declared_by": "page"}),
        (a_who.id, {"microphone": False, "camera": False, "declared_by": "page"}),
    ]


async def test_bad_switch_values_close_that_socket(running: Running) -> None:
    r = running
    sid = await new_session(r)
    for bad in [{"audio": "off", "video": True}, {"audio": True}, {"video": 0, "audio": 1}]:
        ws = await joined(r, await invite(r, sid, "M", "member"), sid)
        await ws.send_json({"type": "media_state", **bad})
        await expect_error(ws, "signal.malformed", 4400)
