"""The archivist's workspace: diacritics-insensitive search over transcripts, the player
with the transcript beside it, and every view in the access chain.

The transcript lines here are written straight into the database in the form the
transcription job writes them (a stand-in for Whisper, which cannot say Vietnamese
sentences on cue from espeak's voice); the recording the player plays is real (an
aiortc participant's camera and microphone, recorded and composed by the server).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import async_playwright
from sqlalchemy import delete, text

from server.models import Transcript, TranscriptSegment
from server.search import FTS_TABLE, fold, search_lines
from server.state import COMPOSITE, DB
from tests.conftest import Running, make_settings, make_staff, start_app
from tests.test_e2e_browser import chromium_args
from tests.test_signalling import invite, join_with_media, new_session

LINES = [
    (1.0, 2.5, "Hội đồng bắt đầu phiên thẩm định."),
    (3.0, 4.5, "Kết quả kiểm định chất lượng của trường đạt yêu cầu."),
    (5.0, 6.0, "Đề nghị thư ký ghi biên bản."),
]


def test_fold() -> None:
    assert fold("Kiểm  Định") == "kiem dinh"
    assert fold("ĐẠI HỌC Đà Nẵng") == "dai hoc da nang"
    assert fold("Nguyễn Thị Thủy") == "nguyen thi thuy"
    assert fold("kiem dinh") == "kiem dinh"


async def add_transcript(r: Running, sid: str, pid: str) -> None:
    async with r.app[DB].session() as s:
        t = Transcript(session_id=sid, status="done", language="vi", model="stand-in")
        s.add(t)
        await s.flush()
        for seq, (start, end, text) in enumerate(LINES):
            s.add(TranscriptSegment(transcript_id=t.id, seq=seq, participant_id=pid,
                                    start_s=start, end_s=end, text=text, folded=fold(text)))
        await s.commit()


async def test_search_api(running: Running) -> None:
    r = running
    sid = await new_session(r, start=False)
    who = await invite(r, sid, "Trần Thị Bình", "secretary")
    await add_transcript(r, sid, who.id)
    hits = await r.api("GET", "/api/search?q=kiem+dinh")
    assert [h["text"] for h in hits] == [LINES[1][2]]
    assert hits[0]["speaker"] == "Trần Thị Bình" and hits[0]["start"] == 3.0
    assert hits[0]["player_url"] == f"/staff/sessions/{sid}/player?t=3.0"
    assert len(await r.api("GET", "/api/search?q=THẨM ĐỊNH")) == 1  # case and marks folded
    assert len(await r.api("GET", "/api/search?q=hoi+dong&participant=binh")) == 1
    assert await r.api("GET", "/api/search?q=hoi+dong&participant=dung") == []
    assert await r.api("GET", "/api/search?q=kiem+dinh&kind=interview") == []
    assert await r.api("GET", "/api/search?q=kiem%25") == []  # % is a character, not a wildcard
    for bad, code in (("q=k", "search.bad_query"), ("q=kiem&since=hôm-qua", "search.bad_date"),
                      ("q=kiem&kind=party", "search.bad_kind")):
        body = await r.api("GET", f"/api/search?{bad}", status=400)
        assert body["error"]["code"] == code
        assert body["error"]["message"]["vi"] and body["error"]["message"]["en"]
    reviewer = await make_staff(r, "reviewer1", "reviewer")
    resp = await r.client.get("/api/search?q=kiem", headers={"Authorization": f"Bearer {reviewer}"})
    assert resp.status == 403


async def test_the_index_finds_what_the_scan_finds_and_follows_deletes(
        running_db: Running) -> None:
    """Many lines on SQLite (FTS5 trigram) and PostgreSQL (pg_trgm): the indexed search
    returns exactly the lines a plain substring check does; lines a resumed job deletes
    are gone from the index too. On SQLite the plan goes through the FTS table."""
    r = running_db
    sid = await new_session(r, start=False)
    who = await invite(r, sid, "Lê Văn Cường", "member")
    words = ["kiểm định", "chất lượng", "tự đánh giá", "minh chứng", "hội đồng", "đạt",
             "tiêu chí", "Đảm bảo", "khảo sát", "cơ sở"]
    texts = [" ".join(words[(i * 7 + k) % len(words)] for k in range(1 + i % 4))
             for i in range(400)]
    async with r.app[DB].session() as s:
        t = Transcript(session_id=sid, status="done", language="vi", model="stand-in")
        s.add(t)
        await s.flush()
        for seq, line in enumerate(texts):
            s.add(TranscriptSegment(transcript_id=t.id, seq=seq, participant_id=who.id,
                                    start_s=float(seq), end_s=seq + 0.5, text=line,
                                    folded=fold(line)))
        await s.commit()
    for q in ("kiem dinh", "dat", "tieu chi chat", "dam bao co so", "minh", "xyz"):
        got = [h.text for h in await search_lines(r.app[DB], q, limit=1000)]
        want = [x for x in texts if all(w in fold(x) for w in fold(q).split())]
        assert got == want, q
    async with r.app[DB].session() as s:
        await s.execute(delete(TranscriptSegment).where(TranscriptSegment.seq < 200))
        await s.commit()
    got = [h.text for h in await search_lines(r.app[DB], "kiem dinh", limit=1000)]
    assert got == [x for x in texts[200:] if "kiem dinh" in fold(x)]
    if r.app[DB].engine.dialect.name == "sqlite":
        async with r.app[DB].engine.connect() as conn:
            plan = (await conn.execute(text(
                f"EXPLAIN QUERY PLAN SELECT rowid FROM {FTS_TABLE} "
                f"WHERE {FTS_TABLE} MATCH '\"kiem\"'"))).all()
        assert any("VIRTUAL TABLE INDEX" in str(row) for row in plan), plan
    else:
        async with r.app[DB].engine.connect() as conn:
            found = (await conn.execute(text(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'transcript_segments'"
            ))).scalars().all()
        assert "ix_transcript_segments_folded_trgm" in found, found


@pytest.mark.browser
@pytest.mark.slow
async def test_archivist_finds_a_line_and_the_player_seeks_there(
        tmp_path: Path, chromium_path: str, espeak: str, artifacts_dir: Path) -> None:
    from tests.test_e2e_browser import make_speech

    wav = make_speech(espeak, tmp_path / "speech.wav")
    async for r in start_app(make_settings(tmp_path, segment_s=2.0, transcribe_on_end=False)):
        sid = await new_session(r)
        member = await invite(r, sid, "Trần Thị Bình", "member")
        client = await join_with_media(r, member, sid)
        await asyncio.sleep(8)
        await client.leave()
        await r.api("POST", f"/api/sessions/{sid}/end")
        await asyncio.wait_for(r.app[COMPOSITE].wait_idle(), 120)
        composite = await r.api("GET", f"/api/sessions/{sid}/composite")
        assert composite["status"] == "done", composite
        await add_transcript(r, sid, member.id)
        await make_staff(r, "luutru", "archivist")  # password "pw-" + name twice

        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium_path, headless=True,
                                              args=chromium_args(wav))
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                await page.goto(r.base_url + "/staff")
                await page.fill("#login-form [name=username]", "luutru")
                await page.fill("#login-form [name=password]", "pw-luutruluutru")
                await page.click("#login-form button[type=submit]")
                await page.wait_for_selector("#workspace:not([hidden])")
                await page.click("#archive-link")
                await page.fill("#search-form [name=q]", "kiem dinh")
                await page.click("#search-form button[type=submit]")
                hit = page.locator("#results a.hit").first
                await hit.wait_for(timeout=10000)
                assert "kiểm định" in await hit.inner_text()
                await hit.click()
                await page.wait_for_url(f"**/staff/sessions/{sid}/player?t=3.0")
                await page.wait_for_selector("#player-transcript li.current", timeout=15000)
                at = await page.evaluate("document.querySelector('#player-video').currentTime")
                assert abs(at - 3.0) < 0.5, at
                current = await page.inner_text("#player-transcript li.current")
                assert "kiểm định" in current
                # Clicking another line seeks there.
                await page.locator("#player-transcript li").nth(2).click()
                at = await page.evaluate("document.querySelector('#player-video').currentTime")
                assert abs(at - 5.0) < 0.5, at
                await page.screenshot(path=str(artifacts_dir / "archive-player.png"),
                                      full_page=True)
                # The session page: its hash chain checked, a package made and checked.
                await page.goto(r.base_url + f"/staff/sessions/{sid}")
                await page.wait_for_selector("#audit-chain[data-ok='true']", timeout=10000)
                await page.click("#package-make")
                await page.wait_for_selector("#packages tr", timeout=30000)
                await page.click("#packages button[data-verify]")
                await page.wait_for_selector("#package-check[data-ok='true']", timeout=30000)
                assert "HỢP LỆ" in await page.inner_text("#package-check")
            finally:
                await browser.close()
        events = await r.api("GET", f"/api/sessions/{sid}/audit")
        viewed = [e for e in events if e["kind"] == "access.viewed"]
        assert viewed and viewed[0]["chain"] == "access" and viewed[0]["actor"].startswith("user:")
        assert viewed[0]["data"]["what"] == "player"
