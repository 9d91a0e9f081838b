"""Signalling rate limits: per client address (sockets) and per participant's link
(messages); a flood is refused with signal.rate_limited (close 4429) and the others in
the meeting go on."""

from __future__ import annotations

import asyncio
from pathlib import Path

from server.ratelimit import Limiter
from tests.conftest import make_settings, start_app
from tests.test_signalling import (
    connect,
    expect_error,
    invite,
    joined,
    new_session,
    recv_json,
)


def test_buckets() -> None:
    limit = Limiter(rate=1.0, burst=3, max_keys=4)
    assert [limit.allow("a", now=0.0) for _ in range(4)] == [True, True, True, False]
    assert limit.allow("b", now=0.0)  # another key has its own bucket
    assert not limit.allow("a", now=0.5) and limit.allow("a", now=1.1)  # refills at 1/s
    for i in range(10):  # a flood of distinct keys cannot grow the table without end
        limit.allow(f"k{i}", now=100.0)
    assert len(limit._buckets) <= 4


async def test_too_many_sockets_then_too_many_messages(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, transcribe_on_end=False, signal_hellos_per_minute=4,
                             signal_messages_per_minute=5)
    async for r in start_app(settings):
        sid = await new_session(r)
        a = await invite(r, sid, "Thành viên A", "member")
        b = await invite(r, sid, "Thành viên B", "member")
        ws_a = await joined(r, a, sid)  # 1 socket
        ws_b = await joined(r, b, sid)  # 2
        for _ in range(2):  # 3, 4: bad tokens, refused for what they are
            ws = await connect(r)
            await ws.send_json({"type": "hello", "token": "x", "session_id": sid})
            await expect_error(ws, "join.invalid", 4401)
        ws = await connect(r)  # 5: over the limit, refused before its hello is read
        await expect_error(ws, "signal.rate_limited", 4429)
        # A's link floods: five messages pass, the sixth closes A's socket.
        for _ in range(5):
            await ws_a.send_json({"type": "ping"})
            assert (await recv_json(ws_a))["type"] == "pong"
        await ws_a.send_json({"type": "ping"})
        await expect_error(ws_a, "signal.rate_limited", 4429)
        # B is not affected.
        await ws_b.send_json({"type": "ping"})
        assert (await recv_json(ws_b))["type"] == "pong"
        await ws_b.close()
        left: list[str] = []
        for _ in range(50):  # the leave is recorded once the socket's handler has ended
            events = await r.api("GET", f"/api/sessions/{sid}/audit")
            left = [e["data"]["reason"] for e in events if e["kind"] == "participant.left"
                    and e["participant_id"] == a.id]
            if left:
                break
            await asyncio.sleep(0.1)
        assert left == ["signal.rate_limited"], left
