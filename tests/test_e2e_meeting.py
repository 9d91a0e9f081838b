"""Three people in one meeting, in real Chromium: one is admitted from the lobby, each
sees and hears the other two, a shared screen reaches the others; chair controls and a
reconnect."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright

from tests.conftest import Running
from tests.test_e2e_browser import chromium_args, join_in_browser, make_speech

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The observer is a guest: with the default admission it waits in the lobby.
PEOPLE = [("Chủ tịch Nguyễn An", "chair"), ("Thành viên Lê Bình", "member"),
          ("Quan sát viên Trần Chi", "observer")]

DECODED = """() => [...document.querySelectorAll('#grid .tile')].map(tile => ({
  id: tile.dataset.participantId,
  frames: tile.querySelector('video').getVideoPlaybackQuality().totalVideoFrames,
}))"""

AUDIO_IN = """async () => {
  const stats = await window.hoidong.pc.getStats();
  return [...stats.values()]
    .filter(s => s.type === 'inbound-rtp' && s.kind === 'audio' && s.totalSamplesReceived > 0)
    .length;
}"""


SCREEN_DECODED = """(id) => {
  const tile = document.querySelector(`#screens .screen-tile[data-screen-of="${id}"]`);
  return tile ? tile.querySelector('video').getVideoPlaybackQuality().totalVideoFrames : -1;
}"""


async def decoded_frames(page: Page) -> dict[str, int]:
    tiles: list[dict[str, Any]] = await page.evaluate(DECODED)
    return {tile["id"]: tile["frames"] for tile in tiles}


async def test_three_people_see_and_hear_each_other(
    running: Running, chromium_path: str, espeak: str, tmp_path: Path, artifacts_dir: Path
) -> None:
    r = running
    wav = make_speech(espeak, tmp_path / "speech.wav")
    d = await r.api("POST", "/api/dossiers", {"title": "Hồ sơ", "phase": "appraisal"}, 201)
    s = await r.api("POST", f"/api/dossiers/{d['id']}/sessions",
                    {"kind": "council_meeting", "title": "Họp Hội đồng"}, 201)
    sid = s["id"]
    await r.api("POST", f"/api/sessions/{sid}/start")
    invited = [await r.api("POST", f"/api/sessions/{sid}/participants",
                           {"name": name, "role": role}, 201) for name, role in PEOPLE]
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path, headless=True,
                                          args=chromium_args(wav))
        try:
            pages = []
            for person in invited:
                # bypass_csp: Playwright runs wait_for_function's predicate with eval, which
                # the pages' CSP forbids; the policy itself is tested in
                # tests/test_security_headers.py.
                page = await browser.new_page(viewport={"width": 1100, "height": 900},
                                              bypass_csp=True)
                guest = person["role"] == "observer"
                await join_in_browser(page, r.base_url + "/join/" +
                                      person["join_url"].split("/join/", 1)[1],
                                      until="waiting" if guest else "connected")
                pages.append(page)
            # The chair sees the guest in the lobby and admits them.
            guest_id = invited[2]["id"]
            entry = f"#lobby-list li[data-participant-id='{guest_id}']"
            await pages[0].wait_for_selector(entry, timeout=10000)
            assert "Quan sát viên Trần Chi" in await pages[0].inner_text(entry)
            assert await pages[1].locator("#lobby").is_hidden()  # members cannot admit
            await pages[0].click(f"{entry} [data-action=admit]")
            await pages[2].wait_for_selector("#status[data-state='connected']", timeout=30000)
            await pages[0].wait_for_selector("#lobby", state="hidden", timeout=10000)
            for page in pages:
                await page.wait_for_function(
                    "document.querySelectorAll('#grid .tile').length === 2", timeout=20000
                )
            first = [await decoded_frames(page) for page in pages]
            await asyncio.sleep(3)
            second = [await decoded_frames(page) for page in pages]
            for me, page, before, after in zip(invited, pages, first, second, strict=True):
                others = {x["id"] for x in invited if x["id"] != me["id"]}
                assert set(after) == others, (me["name"], after)
                for other in others:
                    # Decoding keeps going: frames decoded grow by ~30/s per remote video.
                    assert after[other] - before.get(other, 0) > 15, (me["name"], before, after)
                assert await page.evaluate(AUDIO_IN) >= 2, me["name"]
                names = await page.locator("#grid figcaption").all_inner_texts()
                assert sorted(n.split(" · ")[0] for n in names) == sorted(
                    x["name"] for x in invited if x["id"] != me["id"]
                )
            await pages[0].screenshot(path=str(artifacts_dir / "meeting.png"), full_page=True)
            # Everyone speaks (the same recording): the server names an active speaker
            # from the audio levels Chromium puts on its packets, and tiles show it.
            # (Whoever it is, at least one of two pages shows someone else speaking.)
            highlighted = [0, 0]
            # Up to 30 s: on a loaded two-core machine the fake microphones stutter and
            # the levels take longer to rise above the speaking threshold.
            for _ in range(300):
                highlighted = [await page.locator(".tile[data-speaking='true']").count()
                               for page in pages[:2]]
                if any(highlighted):
                    break
                await asyncio.sleep(0.1)
            assert max(highlighted) == 1, highlighted

            # The chair mutes the member from its tile: the member is told, the third
            # participant's tile shows it, and the audit log has it.
            member_id = invited[1]["id"]
            await pages[0].click(f"#grid .tile[data-participant-id='{member_id}'] "
                                 "[data-action=mute]")
            await pages[1].wait_for_function(
                "document.querySelector('#notice').textContent.includes('Nguyễn An')",
                timeout=10000,
            )
            await pages[2].wait_for_selector(
                f"#grid .tile[data-participant-id='{member_id}'][data-muted='true']",
                timeout=10000,
            )
            events = await r.api("GET", f"/api/sessions/{sid}/audit")
            assert any(e["kind"] == "participant.muted" and e["participant_id"] == member_id
                       for e in events)
            # Only the hosts get the controls.
            assert await pages[0].locator("#grid [data-action=mute]").count() == 2
            assert await pages[1].locator("#grid [data-action=mute]").count() == 0
            assert await pages[2].locator("#grid [data-action=mute]").count() == 0

            # The member turns the camera off and on: the others' tiles say so.
            member_tile = f"#grid .tile[data-participant-id='{member_id}']"
            await pages[1].click("#toggle-camera")
            await pages[0].wait_for_selector(f"{member_tile}[data-camera-off='true']",
                                             timeout=10000)
            await pages[1].click("#toggle-camera")
            await pages[2].wait_for_selector(f"{member_tile}[data-camera-off='false']",
                                             timeout=10000)

            # The member shares a screen: the other two decode it in a tile of its own.
            await pages[1].click("#share-screen")
            for page in (pages[0], pages[2]):
                await page.wait_for_function(f"({SCREEN_DECODED})('{member_id}') > 0",
                                             timeout=20000)
            before_screen = await pages[2].evaluate(SCREEN_DECODED, member_id)
            await asyncio.sleep(2)
            assert await pages[2].evaluate(SCREEN_DECODED, member_id) > before_screen
            caption = await pages[0].inner_text("#screens figcaption")
            assert "Lê Bình" in caption, caption
            await pages[0].screenshot(path=str(artifacts_dir / "meeting-screen.png"),
                                      full_page=True)
            await pages[1].click("#share-screen")  # stop sharing
            await pages[0].wait_for_selector("#screens", state="hidden", timeout=10000)
            kinds = [e["kind"] for e in await r.api("GET", f"/api/sessions/{sid}/audit")
                     if e["participant_id"] == member_id]
            assert "participant.screen_started" in kinds
            assert "participant.screen_stopped" in kinds

            # The member's connection is cut: its page reconnects by itself with the same
            # link, the others see it again, and the record shows a gap.
            await pages[1].evaluate("window.hoidong.ws.close()")
            await pages[1].wait_for_selector("#status[data-state='reconnecting']",
                                             timeout=5000)
            await pages[1].wait_for_selector("#status[data-state='connected']", timeout=20000)
            await pages[2].wait_for_function(
                "document.querySelectorAll('#grid .tile').length === 2", timeout=20000
            )
            before = await decoded_frames(pages[2])
            await asyncio.sleep(2)
            after = await decoded_frames(pages[2])
            assert after[member_id] - before.get(member_id, 0) > 10, (before, after)
            kinds = [e["kind"] for e in await r.api("GET", f"/api/sessions/{sid}/audit")
                     if e["participant_id"] == member_id]
            assert "participant.reconnected" in kinds and "participant.left" not in kinds, kinds

            # One leaves: the other two drop its tile.
            await pages[2].click("#leave")
            for page in pages[:2]:
                await page.wait_for_function(
                    "document.querySelectorAll('#grid .tile').length === 1", timeout=10000
                )

            # The chair removes the member from its tile (confirming), then ends the
            # meeting for everyone; both are in the record with the chair as actor.
            pages[0].on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
            await pages[0].click(f"#grid .tile[data-participant-id='{member_id}'] "
                                 "[data-action=remove]")
            await pages[1].wait_for_selector("#status[data-state='removed']", timeout=10000)
            await pages[0].wait_for_function(
                "document.querySelectorAll('#grid .tile').length === 0", timeout=10000)
            await pages[0].click("#end-for-all")
            await pages[0].wait_for_selector("#status[data-state='ended']", timeout=10000)
            events = await r.api("GET", f"/api/sessions/{sid}/audit")
            removed = [e for e in events if e["kind"] == "participant.removed"]
            assert [e["participant_id"] for e in removed] == [member_id], removed
            assert removed[0]["actor"] == f"participant:{invited[0]['id']}", removed
            assert (await r.api("GET", f"/api/sessions/{sid}"))["status"] == "ended"
        finally:
            await browser.close()
