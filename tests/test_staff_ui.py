"""The staff pages and the join page's device gate, driven in real Chromium."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from server.i18n import t
from tests.conftest import ADMIN_PASSWORD, Running
from tests.test_documents import image_bytes, pdf_bytes

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BASE_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


async def test_staff_creates_dossier_session_and_join_link(
    running: Running, chromium_path: str, artifacts_dir: Path
) -> None:
    r = running
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path, headless=True,
                                          args=BASE_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(r.base_url + "/staff")
            await page.fill("#login-form [name=username]", "admin")
            await page.fill("#login-form [name=password]", "wrong password")
            await page.click("#login-form button[type=submit]")
            await page.wait_for_selector(
                f"#login-form .form-error:has-text('{t('auth.bad_credentials', 'vi')}')"
            )
            await page.fill("#login-form [name=password]", ADMIN_PASSWORD)
            await page.click("#login-form button[type=submit]")
            await page.wait_for_selector("#workspace:not([hidden])")

            await page.click("#dossier-form >> xpath=..")  # open the <details>
            await page.fill("#dossier-form [name=title]", "Hồ sơ đánh giá ngoài Trường ĐH B")
            await page.fill("#dossier-form [name=institution]", "Trường Đại học B")
            await page.select_option("#dossier-form [name=phase]", "evaluation")
            await page.click("#dossier-form button[type=submit]")
            await page.wait_for_selector("#dossier-title:has-text('Trường ĐH B')")

            await page.click("#vocabulary-form >> xpath=..")
            await page.fill("#vocabulary-form [name=terms]",
                            "Trường Đại học B\n  ngành Kỹ thuật phần mềm  \n\n")
            await page.click("#vocabulary-form button[type=submit]")

            # An evidence item (minh chứng): a PNG named .pdf is refused and says why,
            # the real PDF is listed with its code and the date it is kept until.
            await page.click("#document-form >> xpath=..")
            await page.fill("#document-form [name=code]", "H1.01.01.01")
            await page.fill("#document-form [name=title]", "Quyết định thành lập Hội đồng")
            await page.set_input_files("#document-form [name=file]", files=[{
                "name": "quyet-dinh.pdf", "mimeType": "application/pdf",
                "buffer": image_bytes("png")}])
            await page.click("#document-form button[type=submit]")
            await page.wait_for_selector("#document-form .form-error:has-text('.png')")
            await page.set_input_files("#document-form [name=file]", files=[{
                "name": "quyet-dinh.pdf", "mimeType": "application/pdf",
                "buffer": pdf_bytes()}])
            await page.click("#document-form button[type=submit]")
            row = page.locator("#documents tr[data-document-id]")
            await row.first.wait_for()
            kept = (datetime.now(UTC) + timedelta(days=3650)).astimezone(
                timezone(timedelta(hours=7))).strftime("%d/%m/%Y")
            text = await row.first.inner_text()
            assert "H1.01.01.01" in text and "quyet-dinh.pdf" in text and kept in text, text
            href = await row.first.locator("a").get_attribute("href")
            assert href is not None and href.endswith("/content")
            await page.wait_for_selector("#retention-summary:has-text('10')")
            await page.click("#session-form >> xpath=..")
            await page.select_option("#session-form [name=kind]", "interview")
            await page.fill("#session-form [name=title]", "Phỏng vấn sinh viên")
            await page.fill("#session-form [name=scheduled_at]", "2026-12-01T09:30")
            await page.fill("#session-form [name=camera_grace_s]", "15")
            await page.check("#session-form [name=camera_to_lobby]")
            await page.click("#session-form button[type=submit]")
            await page.wait_for_url("**/staff/sessions/*")
            await page.wait_for_selector("#session-title:has-text('Phỏng vấn sinh viên')")

            await page.fill("#participant-form [name=name]", "Lê Văn Cường")
            await page.select_option("#participant-form [name=role]", "interviewee")
            await page.click("#participant-form button[type=submit]")
            link = page.locator("#participants input.join-link")
            await link.wait_for()
            join_url = await link.input_value()
            await page.screenshot(path=str(artifacts_dir / "staff-session.png"), full_page=True)

            await page.click("#start-session")
            await page.wait_for_selector("#session-status[data-status='live']")
        finally:
            await browser.close()

    session_id = join_url.split("/join/", 1)[1].split("/", 1)[0]
    session = await r.api("GET", f"/api/sessions/{session_id}")
    assert session["kind"] == "interview" and session["status"] == "live"
    for _ in range(50):  # the vocabulary form's request may still be on its way
        dossier = await r.api("GET", f"/api/dossiers/{session['dossier_id']}")
        if dossier["vocabulary"]:
            break
        await asyncio.sleep(0.1)
    assert dossier["vocabulary"] == ["Trường Đại học B", "ngành Kỹ thuật phần mềm"]
    # The camera rule as the form set it; what the form left alone is the default.
    policy = session["policy"]
    assert (policy["camera_grace_s"], policy["camera_escalation_s"], policy["camera_to_lobby"]) \
        == (15, 60, True), policy
    # The form is in Vietnam time (UTC+7); the API stores UTC.
    assert session["scheduled_at"].startswith("2026-12-01T02:30")
    people = await r.api("GET", f"/api/sessions/{session_id}/participants")
    assert [(x["name"], x["role"]) for x in people] == [("Lê Văn Cường", "interviewee")]
    events = [e["kind"] for e in await r.api("GET", f"/api/sessions/{session_id}/audit")]
    assert events == ["session.created", "participant.invited", "session.started"]


async def test_member_without_camera_cannot_join(
    running: Running, chromium_path: str, artifacts_dir: Path
) -> None:
    r = running
    d = await r.api("POST", "/api/dossiers", {"title": "HS", "phase": "appraisal"}, 201)
    s = await r.api("POST", f"/api/dossiers/{d['id']}/sessions",
                    {"kind": "council_meeting", "title": "Họp"}, 201)
    member = await r.api("POST", f"/api/sessions/{s['id']}/participants",
                         {"name": "Phạm Thị Dung", "role": "member"}, 201)
    path = "/join/" + member["join_url"].split("/join/", 1)[1]
    async with async_playwright() as p:
        # No fake devices: this browser has no camera and no microphone at all.
        browser = await p.chromium.launch(executable_path=chromium_path, headless=True,
                                          args=[*BASE_ARGS, "--use-fake-ui-for-media-stream"])
        try:
            page = await browser.new_page()
            await page.goto(r.base_url + path + "?lang=en")
            assert await page.locator("html").get_attribute("lang") == "en"
            await page.click("#device-start")
            status = page.locator("#device-status[data-ok='false']")
            await status.wait_for(timeout=15000)
            assert t("join.camera_required_block", "en") in await status.inner_text()
            assert await page.locator("#consent-accept").is_disabled()
            assert await page.locator("#join-enter").is_disabled()
            await page.screenshot(path=str(artifacts_dir / "join-no-camera.png"), full_page=True)
        finally:
            await browser.close()
