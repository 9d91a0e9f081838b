"""The active speaker: decided from RFC 6464 audio levels, never from decoded audio."""

from __future__ import annotations

import asyncio
from typing import Any

from media.speaker import SILENCE, ActiveSpeaker
from tests.conftest import Running
from tests.test_forwarding import close_all, join_with_media
from tests.test_signalling import invite, new_session


def feed(speaker: ActiveSpeaker, levels: dict[str, int], start: float, seconds: float
         ) -> list[tuple[float, str | None]]:
    """Packets every 20 ms from each member at the given levels; the changes seen."""
    changes = []
    t = start
    while t < start + seconds:
        for member, level in levels.items():
            speaker.add(member, level, t)
        if speaker.update(t):
            changes.append((round(t - start, 2), speaker.current))
        t += 0.02
    return changes


def test_the_loudest_speaker_after_a_hold() -> None:
    s = ActiveSpeaker()
    assert feed(s, {"a": SILENCE, "b": SILENCE}, 0, 2) == []
    changes = feed(s, {"a": 25, "b": SILENCE}, 2, 2)
    assert [who for _, who in changes] == ["a"]
    assert 0.5 <= changes[0][0] < 1.0  # smoothing, then the hold
    # A cough from b (shorter than the hold) does not move the highlight.
    assert feed(s, {"a": SILENCE, "b": 10}, 4, 0.3) == []
    # b talking on while a listens does.
    changes = feed(s, {"a": SILENCE, "b": 20}, 4.3, 2)
    assert [who for _, who in changes] == ["b"]
    # A pause between words keeps the speaker; longer silence clears it.
    assert feed(s, {"a": SILENCE, "b": SILENCE}, 6.3, 1.0) == []
    changes = feed(s, {"a": SILENCE, "b": SILENCE}, 7.3, 2)
    assert [who for _, who in changes] == [None]


def test_two_speakers_at_about_the_same_level_still_name_one() -> None:
    """Two microphones playing the same recording: the loudest by a decibel changes
    every 100 ms. One of them is named after the hold and stays; someone louder by the
    margin still takes over."""
    s = ActiveSpeaker()
    changes: list[tuple[float, str | None]] = []
    for step in range(30):  # 3 s
        a, b = (20, 21) if step % 2 else (21, 20)
        changes += feed(s, {"a": a, "b": b}, step * 0.1, 0.1)
    assert len(changes) == 1 and changes[0][1] in ("a", "b")
    named = changes[0][1]
    other = "b" if named == "a" else "a"
    changes = feed(s, {named: 30, other: 15}, 3.0, 2)
    assert [who for _, who in changes] == [other]


def test_quiet_rooms_muted_and_gone_members() -> None:
    s = ActiveSpeaker()
    # Background noise below the threshold is nobody speaking.
    assert feed(s, {"a": 75, "b": 80}, 0, 3) == []
    feed(s, {"a": 30, "b": SILENCE}, 3, 2)
    assert s.current == "a"
    # The chair mutes a: nobody hears a, so a is not the speaker.
    s.exclude("a", True)
    assert s.update(5.0) and s.current is None
    assert feed(s, {"a": 30, "b": SILENCE}, 5, 2) == []
    s.exclude("a", False)
    feed(s, {"a": 30, "b": SILENCE}, 7, 2)
    assert s.current == "a"
    # a's packets stop (left, or lost): a no longer counts.
    s.forget("a")
    assert s.update(9.0) and s.current is None
    # Out-of-range levels are clamped, not trusted: 900 is silence, not "very quiet".
    feed(s, {"c": -40}, 10, 1)
    assert s.loudest(11.0) == "c"
    feed(s, {"c": 900}, 11, 1)
    assert s.loudest(12.0) is None


async def test_server_names_the_participant_whose_packets_are_loud(running: Running) -> None:
    r = running
    sid = await new_session(r)
    loud = await invite(r, sid, "Chủ tịch An", "chair")
    quiet = await invite(r, sid, "Thành viên Bình", "member")
    clients = [await join_with_media(r, sid, loud, receive_slots=1, volume=1.0),
               await join_with_media(r, sid, quiet, receive_slots=1, volume=0.0)]
    try:
        async def speaker_seen(client: Any) -> Any:
            deadline = asyncio.get_running_loop().time() + 10
            while asyncio.get_running_loop().time() < deadline:
                for m in client.messages:
                    if m["type"] == "speaker":
                        return m["participant_id"]
                await asyncio.sleep(0.05)
            return "none seen"

        assert await speaker_seen(clients[1]) == loud.id
        assert await speaker_seen(clients[0]) == loud.id
        # Muted by the chair: not forwarded, so no longer the speaker.
        clients[1].messages.clear()
        await clients[0].ws.send_json({"type": "mute", "participant_id": loud.id,
                                       "kind": "audio", "muted": True})
        assert await speaker_seen(clients[1]) is None
    finally:
        await close_all(clients)
