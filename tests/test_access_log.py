"""Every view or download of evidence is in the access chain: a recording opened (not
each range request of the same viewing), an attendance report downloaded, a transcript
that is not there (nothing served, nothing recorded)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.conftest import Running, make_settings, start_app
from tests.test_segments import _stored_recordings, until
from tests.test_signalling import invite, join_with_media, new_session


async def access_events(r: Running, sid: str) -> list[dict[str, Any]]:
    return [e for e in await r.api("GET", f"/api/sessions/{sid}/audit")
            if e["chain"] == "access"]


async def test_views_and_downloads_of_a_session_are_recorded(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, segment_s=1.0, transcribe_on_end=False)
    async for r in start_app(settings):
        sid = await new_session(r)
        member = await invite(r, sid, "Thành viên", "member")
        client = await join_with_media(r, member, sid)
        await asyncio.sleep(2.5)
        await client.leave()
        await r.api("POST", f"/api/sessions/{sid}/end")
        (rec, *_) = await until(_stored_recordings, r, sid, 2, within=30)
        url = rec["media_url"]
        for rng in (None, "bytes=0-", "bytes=100-", "bytes=200-299"):
            headers = {**r.auth(), **({"Range": rng} if rng else {})}
            resp = await r.client.get(url, headers=headers)
            assert resp.status in (200, 206)
            await resp.read()
        resp = await r.client.get(f"/api/sessions/{sid}/attendance.csv", headers=r.auth())
        assert resp.status == 200
        resp = await r.client.get(f"/api/sessions/{sid}/transcript.pdf", headers=r.auth())
        assert resp.status == 404
        events = await access_events(r, sid)
        seen = [(e["kind"], e["data"]["what"]) for e in events]
        # Two openings of the recording (the whole file, and a player's first range);
        # the seeks within it are not new viewings.
        assert seen == [("access.viewed", "recording"), ("access.viewed", "recording"),
                        ("access.downloaded", "attendance.csv")], seen
        assert events[0]["data"]["recording"] == rec["id"]
        assert events[0]["data"]["sha256"] == rec["sha256"]
        assert all(e["actor"].startswith("user:") for e in events)
        check = await r.api("GET", f"/api/sessions/{sid}/audit/verify")
        assert check["ok"], check
