"""The camera rule in real Chromium: a council member's camera is disabled (black
frames), re-enabled, then stopped; the server's camera timeline has each off interval
within ±2 s with the right reason; the member's page warned (with a sound), the chair's
panel alerted; the attendance report adds up to the session's length."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from tests.conftest import Running, make_settings, start_app
from tests.test_e2e_browser import chromium_args, join_in_browser, make_speech

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GRACE_S, ESCALATION_S = 3, 4


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


async def camera_change(r: Running, sid: str, pid: str, on: bool, reason: str | None,
                        after: float, within: float = 15.0) -> float:
    """When (the server's time) the camera of ``pid`` went on/off with ``reason``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for e in await r.api("GET", f"/api/sessions/{sid}/audit"):
            if (e["participant_id"] == pid and e["kind"] == ("camera.on" if on else "camera.off")
                    and e["data"]["reason"] == reason and ts(e["data"]["server_time"]) >= after):
                return ts(e["data"]["server_time"])
        await asyncio.sleep(0.25)
    raise AssertionError(f"no camera {'on' if on else 'off'} ({reason}) after {after}")


async def test_camera_off_intervals_warning_alert_and_report(
    tmp_path: Path, chromium_path: str, espeak: str, artifacts_dir: Path
) -> None:
    settings = make_settings(tmp_path, camera_sample_s=1.0, transcribe_on_end=False)
    wav = make_speech(espeak, tmp_path / "speech.wav")
    async for r in start_app(settings):
        d = await r.api("POST", "/api/dossiers", {"title": "Hồ sơ", "phase": "appraisal"}, 201)
        s = await r.api("POST", f"/api/dossiers/{d['id']}/sessions", {
            "kind": "council_meeting", "title": "Họp Hội đồng thẩm định",
            "policy": {"camera_grace_s": GRACE_S, "camera_escalation_s": ESCALATION_S}}, 201)
        sid = s["id"]
        await r.api("POST", f"/api/sessions/{sid}/start")
        chair = await r.api("POST", f"/api/sessions/{sid}/participants",
                            {"name": "Chủ tịch Nguyễn An", "role": "chair"}, 201)
        member = await r.api("POST", f"/api/sessions/{sid}/participants",
                             {"name": "Ủy viên Lê Bình", "role": "member"}, 201)
        mid = member["id"]
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium_path, headless=True,
                                              args=chromium_args(wav))
            try:
                pages = []
                for person in (chair, member):
                    page = await browser.new_page(viewport={"width": 1100, "height": 900})
                    await join_in_browser(page, r.base_url + "/join/"
                                          + person["join_url"].split("/join/", 1)[1])
                    pages.append(page)
                chair_page, member_page = pages
                first_on = await camera_change(r, sid, mid, True, None, after=0)
                row = f"#panel-rows tr[data-participant-id='{mid}']"
                await chair_page.wait_for_selector(f"{row}[data-camera-on='true']",
                                                   timeout=10000)

                # Disabled track: the browser sends black frames.
                disabled = time.time()
                await member_page.evaluate(
                    "window.hoidong.stream.getVideoTracks()[0].enabled = false")
                black_at = await camera_change(r, sid, mid, False, "black", after=disabled - 1)
                await member_page.wait_for_selector("#camera-warning[data-level='warning']",
                                                    timeout=GRACE_S * 1000 + 5000)
                assert "camera" in (await member_page.inner_text("#camera-warning")).lower()
                assert await member_page.evaluate("window.hoidong.sounds.played") >= 1
                await chair_page.wait_for_selector(
                    f"#alerts li[data-kind='camera_warning'][data-participant-id='{mid}']",
                    timeout=5000)
                await chair_page.wait_for_selector(f"{row}[data-state='warned']", timeout=5000)
                await chair_page.screenshot(path=str(artifacts_dir / "camera-panel.png"),
                                            full_page=True)
                await member_page.wait_for_selector(
                    "#camera-warning[data-level='non_compliant']", timeout=ESCALATION_S * 1000
                    + 5000)
                await chair_page.wait_for_selector(
                    f"#alerts li[data-kind='camera_non_compliant'][data-participant-id='{mid}']",
                    timeout=5000)
                await member_page.screenshot(path=str(artifacts_dir / "camera-warning.png"))

                enabled = time.time()
                await member_page.evaluate(
                    "window.hoidong.stream.getVideoTracks()[0].enabled = true")
                on_at = await camera_change(r, sid, mid, True, None, after=enabled - 1)
                await member_page.wait_for_selector("#camera-warning[data-level='ok']",
                                                    timeout=5000)
                await asyncio.sleep(2)

                # Stopped track: no frames at all.
                stopped = time.time()
                await member_page.evaluate("window.hoidong.stream.getVideoTracks()[0].stop()")
                stop_at = await camera_change(r, sid, mid, False, "no_frames",
                                              after=stopped - 1)
                await asyncio.sleep(1)
            finally:
                await browser.close()
        for wanted, seen, what in ((disabled, black_at, "black"), (enabled, on_at, "on"),
                                   (stopped, stop_at, "no_frames")):
            assert abs(seen - wanted) <= 2.0, (what, seen - wanted)
        await r.api("POST", f"/api/sessions/{sid}/end")
        report = await r.api("GET", f"/api/sessions/{sid}/attendance")
        length = report["session"]["length_s"]
        people = {p["id"]: p for p in report["participants"]}
        for person in people.values():
            total = person["connected_s"] + person["in_room_s"] + person["absent_s"]
            assert abs(total - length) < 0.01, person
            assert abs(person["camera_on_s"] + person["camera_off_s"]
                       - person["connected_s"]) < 0.01
        m = people[mid]
        offs = [(o["reason"], ts(o["from"]), ts(o["to"])) for o in m["camera_off"]]
        black = [o for o in offs if o[0] == "black"]
        assert len(black) == 1 and abs(black[0][1] - disabled) <= 2 and abs(
            black[0][2] - enabled) <= 2, offs
        assert any(o[0] == "no_frames" and abs(o[1] - stopped) <= 2 for o in offs), offs
        assert offs[0][1] <= first_on  # checked from the join until the first sample
        (breach,) = m["non_compliant"]
        assert breach["reason"] == "black" and abs(ts(breach["from"]) - disabled) <= 2
        assert abs(ts(breach["to"]) - enabled) <= 2 and m["warnings"] >= 1
        assert 0 < m["camera_on_pct"] < 100
        kinds = [e["kind"] for e in await r.api("GET", f"/api/sessions/{sid}/audit")
                 if e["participant_id"] == mid]
        assert kinds.count("camera.warning") >= 1 and "camera.compliant" in kinds
