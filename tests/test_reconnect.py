"""A participant whose connection drops and comes back within the grace period is
recorded with a gap, not as leave + join; one who does not come back left when the
connection was lost."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.conftest import Running, make_settings, start_app
from tests.test_forwarding import Client, close_all, join_with_media
from tests.test_signalling import invite, new_session


async def drop(client: Client) -> None:
    """The network goes: no leave message, the socket and media just stop."""
    if client.reader is not None:
        client.reader.cancel()
    await client.ws.close()
    await client.pc.close()


async def events_of(r: Running, sid: str, pid: str) -> list[dict[str, Any]]:
    return [e for e in await r.api("GET", f"/api/sessions/{sid}/audit")
            if e["participant_id"] == pid and e["kind"].startswith("participant.")
            and e["kind"] not in ("participant.invited", "participant.consented")]


async def test_back_within_grace_is_a_gap_and_media_resumes(running: Running) -> None:
    r = running
    sid = await new_session(r)
    a = await invite(r, sid, "Thành viên A", "member")
    b = await invite(r, sid, "Chủ tịch B", "chair")
    ca = await join_with_media(r, sid, a, receive_slots=1)
    cb = await join_with_media(r, sid, b, receive_slots=1)
    clients = [cb]
    try:
        await asyncio.sleep(2)
        await drop(ca)
        await asyncio.sleep(1.5)
        ca2 = await join_with_media(r, sid, a, receive_slots=1)
        clients.append(ca2)
        before = len(cb.frames_from(a.id, "video"))
        await asyncio.sleep(3)
        # The other participant receives the returning one again.
        assert len(cb.frames_from(a.id, "video")) - before > 20
        kinds = [e["kind"] for e in await events_of(r, sid, a.id)]
        assert kinds == ["participant.joined", "participant.connection_lost",
                         "participant.reconnected"], kinds
        back = (await events_of(r, sid, a.id))[-1]["data"]
        assert 1.0 < back["gap_s"] < 5.0, back
    finally:
        await close_all(clients)
    await r.api("POST", f"/api/sessions/{sid}/end")


async def test_not_back_within_grace_left_when_lost(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, reconnect_grace_s=1, transcribe_on_end=False)
    async for r in start_app(settings):
        sid = await new_session(r)
        a = await invite(r, sid, "Thành viên A", "member")
        ca = await join_with_media(r, sid, a, receive_slots=1)
        await asyncio.sleep(1)
        await drop(ca)
        await asyncio.sleep(2.5)
        events = await events_of(r, sid, a.id)
        assert [e["kind"] for e in events] == [
            "participant.joined", "participant.connection_lost", "participant.left"]
        lost, left = events[1], events[2]
        assert left["data"]["reason"] == "connection_lost"
        # The leave counts from the loss, not from when the grace period ran out.
        assert datetime.fromisoformat(left["data"]["lost_at"]) <= datetime.fromisoformat(
            left["at"])
        assert abs((datetime.fromisoformat(left["data"]["lost_at"]) -
                    datetime.fromisoformat(lost["at"])).total_seconds()) < 1


async def test_session_end_settles_who_is_still_away(running: Running) -> None:
    r = running
    sid = await new_session(r)
    a = await invite(r, sid, "Thành viên A", "member")
    ca = await join_with_media(r, sid, a, receive_slots=1)
    await asyncio.sleep(1)
    await drop(ca)
    await asyncio.sleep(0.5)
    await r.api("POST", f"/api/sessions/{sid}/end")  # well within the 30 s grace
    kinds = [e["kind"] for e in await events_of(r, sid, a.id)]
    assert kinds == ["participant.joined", "participant.connection_lost", "participant.left"]
