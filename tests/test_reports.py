"""Exports (JSON and CSV, documented columns) and the statistics page."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from server.exports import COLUMNS
from tests.conftest import ADMIN_PASSWORD, Running, make_staff
from tests.test_e2e_browser import staff_login
from tests.test_staff_ui import BASE_ARGS

ROOT = Path(__file__).resolve().parent.parent


def test_the_docs_list_every_column() -> None:
    doc = (ROOT / "docs" / "reports.md").read_text()
    for name, columns in COLUMNS.items():
        section = doc.split(f"## `{name}`", 1)[1].split("\n## ", 1)[0]
        listed = re.findall(r"^\| `(\w+)` \|", section, re.M)
        assert listed == list(columns), name


async def held(r: Running) -> dict[str, str]:
    d = await r.api("POST", "/api/dossiers", {"title": "Hồ sơ đánh giá ngoài",
                                               "phase": "evaluation",
                                               "institution": "Trường Cao đẳng Y"}, 201)
    council = await r.api("POST", f"/api/dossiers/{d['id']}/sessions",
                          {"kind": "team_session", "title": "Họp đoàn"}, 201)
    await r.api("POST", f"/api/sessions/{council['id']}/participants",
                {"name": "Trưởng đoàn", "role": "team_lead"}, 201)
    interview = await r.api("POST", f"/api/dossiers/{d['id']}/sessions",
                            {"kind": "interview", "title": "Phỏng vấn người học"}, 201)
    student = await r.api("POST", f"/api/sessions/{interview['id']}/participants",
                          {"name": "Nguyễn Thị Học", "role": "interviewee",
                           "pseudonym": "SV-01", "stakeholder_group": "student"}, 201)
    assert student["stakeholder_group"] == "student"
    for sid in (council["id"], interview["id"]):
        await r.api("POST", f"/api/sessions/{sid}/start")
        await r.api("POST", f"/api/sessions/{sid}/end")
    return {"dossier": d["id"], "council": council["id"], "interview": interview["id"]}


async def test_exports_and_statistics(running: Running) -> None:
    r = running
    ids = await held(r)
    bad = await r.api("POST", f"/api/sessions/{ids['interview']}/participants",
                      {"name": "X", "role": "interviewee", "stakeholder_group": "alien"}, 400)
    assert bad["error"]["code"] == "http.invalid_field"
    for name, columns in COLUMNS.items():
        rows = await r.api("GET", f"/api/reports/{name}.json")
        assert rows and all(set(row) == set(columns) for row in rows), name
        resp = await r.client.get(f"/api/reports/{name}.csv", headers=r.auth())
        body = await resp.read()
        assert resp.status == 200 and body.startswith("\ufeff".encode())
        table = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
        assert table[0] == list(columns) and len(table) == len(rows) + 1, name
    sessions = {row["session_id"]: row for row in await r.api("GET", "/api/reports/sessions.json")}
    assert sessions[ids["council"]]["status"] == "ended"
    assert sessions[ids["council"]]["length_s"] >= 0
    interviews = await r.api("GET", "/api/reports/interviews.json")
    assert [(x["interviewee"], x["stakeholder_group"]) for x in interviews] == [
        ("SV-01", "student")]
    assert "Nguyễn Thị Học" not in json.dumps(await r.api("GET", "/api/reports/attendance.json"),
                                             ensure_ascii=False)
    dossiers = await r.api("GET", "/api/reports/dossiers.json")
    assert dossiers[0]["sessions"] == 2 and dossiers[0]["sessions_ended"] == 2
    stats = await r.api("GET", "/api/stats")
    assert sum(p["sessions"] for p in stats["periods"]) == 2
    assert stats["interviews_per_group"] == {"student": 1}
    assert set(stats["transcription_backlog"]) == {"pending", "running", "failed"}
    reviewer = await make_staff(r, "reviewer9", "reviewer")
    denied = await r.client.get("/api/reports/sessions.csv",
                                headers={"Authorization": f"Bearer {reviewer}"})
    assert denied.status == 403


@pytest.mark.browser
async def test_the_statistics_page_draws_its_charts(running: Running, chromium_path: str,
                                                    artifacts_dir: Path) -> None:
    r = running
    await held(r)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path, headless=True,
                                          args=BASE_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 1200})
            await staff_login(page, r.base_url, ADMIN_PASSWORD)
            await page.click("#stats-link")
            await page.wait_for_selector("body[data-loaded='true']")
            assert await page.locator("#chart-sessions rect").count() >= 1
            value = await page.locator("#chart-interviews rect").first.get_attribute(
                "data-value")
            assert value == "1"
            assert "Người học" in await page.inner_text("#chart-interviews")
            await page.screenshot(path=str(artifacts_dir / "statistics.png"), full_page=True)
        finally:
            await browser.close()
