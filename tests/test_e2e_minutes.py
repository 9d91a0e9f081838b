"""Minutes agreed in the browser (issue 8): the secretary drafts from the template on the
session page, the two parties agree to version 2 on their own pages, the secretary edits
(the session page shows their agreements void), both agree to version 3, the minutes are
locked; the PDF's text keeps the Vietnamese diacritics and the package verifies."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright
from pypdf import PdfReader

from storage.archive import verify_package
from tests.conftest import ADMIN_PASSWORD, Running
from tests.test_e2e_browser import staff_login
from tests.test_staff_ui import BASE_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CONCLUSION = "Hội đồng kết luận: Trường đạt chuẩn kiểm định; đề nghị công nhận."


async def save(page: Page, text: str, number: int) -> None:
    await page.fill("#minutes-form [name=conclusions]", text)
    await page.click("#minutes-form button[type=submit]")
    await page.wait_for_selector(f"#minutes-card[data-current='{number}']", timeout=10000)


async def agree(page: Page, number: int) -> None:
    await page.wait_for_selector(f"#party-version[data-version='{number}']", timeout=15000)
    await page.click("#party-agree")
    await page.wait_for_selector("body[data-agreed='true']", timeout=10000)


async def test_two_parties_agree_a_change_voids_then_the_minutes_lock(
        running: Running, chromium_path: str, artifacts_dir: Path, tmp_path: Path) -> None:
    r = running
    d = await r.api("POST", "/api/dossiers", {"title": "Hồ sơ tự đánh giá Trường Đại học Vinh",
                                               "phase": "appraisal",
                                               "institution": "Trường Đại học Vinh"}, 201)
    s = await r.api("POST", f"/api/dossiers/{d['id']}/sessions",
                    {"kind": "council_meeting", "title": "Phiên họp thẩm định"}, 201)
    sid = s["id"]
    for name, role in (("Phạm Thị Hương", "chair"), ("Đỗ Văn Đức", "secretary")):
        await r.api("POST", f"/api/sessions/{sid}/participants", {"name": name, "role": role},
                    201)
    await r.api("POST", f"/api/sessions/{sid}/start")
    await r.api("POST", f"/api/sessions/{sid}/end")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path, headless=True,
                                          args=BASE_ARGS)
        try:
            # bypass_csp: Playwright's wait_for_function evaluates with eval, which the CSP
            # forbids (the policy is tested in tests/test_security_headers.py).
            staff = await browser.new_page(viewport={"width": 1280, "height": 1000},
                                           bypass_csp=True)
            await staff_login(staff, r.base_url, ADMIN_PASSWORD)
            await staff.goto(f"{r.base_url}/staff/sessions/{sid}")
            await staff.click("#minutes-template")
            await staff.wait_for_function(
                "document.querySelector('#minutes-form [name=title]').value.length > 0")
            attendees = await staff.input_value("#minutes-form [name=attendees]")
            assert "Phạm Thị Hương" in attendees and "Đỗ Văn Đức" in attendees, attendees
            await staff.fill("#minutes-form [name=place]", "Nghệ An")
            await staff.fill("#minutes-form [name=date]", "2026-12-01")
            await save(staff, "Dự thảo kết luận.", 1)
            await save(staff, CONCLUSION + " <img src=x onerror=alert(1)>", 2)
            await staff.click("#minutes-links")
            await staff.wait_for_function(
                "document.querySelectorAll('#minutes-link-list a').length === 2")
            urls = await staff.eval_on_selector_all("#minutes-link-list a",
                                                    "els => els.map(e => e.href)")
            parties = []
            for url in urls:
                page = await browser.new_page()
                await page.goto(r.base_url + "/" + url.split("/", 3)[3])
                parties.append(page)
            for page in parties:
                await agree(page, 2)
                # The markup in the text is shown as text, not run.
                body = await page.inner_text("#party-document")
                assert "<img src=x onerror=alert(1)>" in body
                assert await page.locator("#party-document img").count() == 0
            await staff.wait_for_selector("#minutes-parties li[data-agreed='true'] >> nth=1",
                                          timeout=10000)
            # The secretary changes the text: both agreements are void, and shown so.
            await save(staff, CONCLUSION, 3)
            await staff.wait_for_selector(
                "#minutes-versions li[data-version='2'] li[data-void='true'] >> nth=1",
                timeout=10000)
            assert await staff.locator("#minutes-parties li[data-agreed='true']").count() == 0
            for page in parties:
                await page.reload()
                await agree(page, 3)
            await staff.wait_for_selector("#minutes-lock:not([disabled])", timeout=10000)
            await staff.click("#minutes-lock")
            await staff.wait_for_selector("#minutes-card[data-locked='true']", timeout=20000)
            await staff.wait_for_selector("#minutes-final:not([hidden])")
            await staff.screenshot(path=str(artifacts_dir / "minutes-locked.png"),
                                   full_page=True)
            assert await staff.locator("#minutes-form [name=conclusions]").is_disabled()
        finally:
            await browser.close()
    pdf = await (await r.client.get(f"/api/sessions/{sid}/minutes.pdf",
                                    headers=r.auth())).read()
    text = " ".join("\n".join(pg.extract_text() for pg in PdfReader(io.BytesIO(pdf)).pages)
                    .split())
    for expected in (CONCLUSION, "Nghệ An, ngày 01 tháng 12 năm 2026", "Phạm Thị Hương",
                     "Đỗ Văn Đức", "Đã đồng ý phiên bản 3", "TRƯỜNG ĐẠI HỌC VINH"):
        assert expected in text, (expected, text[:500])
    package = await r.api("POST", f"/api/sessions/{sid}/packages", None, 201)
    zipped = tmp_path / "minutes.zip"
    zipped.write_bytes(await (await r.client.get(package["download_url"],
                                                 headers=r.auth())).read())
    report = verify_package(zipped)
    assert report.ok, report.problems
