"""Security headers on every kind of response, and a Content Security Policy the pages
live with: Chromium reports no violation on the staff, session, statistics, archive and
verification pages."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from server.security import CSP
from tests.conftest import ADMIN_PASSWORD, Running
from tests.test_e2e_browser import staff_login
from tests.test_signalling import new_session
from tests.test_staff_ui import BASE_ARGS


async def test_headers_everywhere(running: Running) -> None:
    r = running
    for path in ("/staff", "/verify", "/static/js/api.js", "/api/me", "/api/openapi.json",
                 "/healthz", "/nope"):
        resp = await r.client.get(path)
        assert resp.headers["Content-Security-Policy"] == CSP, path
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        assert resp.headers["X-Frame-Options"] == "DENY", path
        assert resp.headers["Referrer-Policy"] == "no-referrer", path
        assert "Strict-Transport-Security" not in resp.headers  # plain HTTP here
    assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP


@pytest.mark.browser
async def test_the_pages_work_under_the_policy(running: Running, chromium_path: str,
                                               tmp_path: Path) -> None:
    r = running
    sid = await new_session(r)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path, headless=True,
                                          args=BASE_ARGS)
        violations: list[str] = []
        try:
            page = await browser.new_page()
            page.on("console", lambda m: violations.append(m.text)
                    if "Content Security Policy" in m.text else None)
            await staff_login(page, r.base_url, ADMIN_PASSWORD)
            for path, ready in ((f"/staff/sessions/{sid}", "#session-title:not(:empty)"),
                                ("/staff/stats", "body[data-loaded='true']"),
                                ("/staff/archive", "#search-form"),
                                ("/verify", "#public-form")):
                await page.goto(r.base_url + path)
                await page.wait_for_selector(ready, timeout=10000)
        finally:
            await browser.close()
    assert not violations, violations
