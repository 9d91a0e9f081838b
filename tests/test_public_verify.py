"""The public verification page (no login): a package checked by its id or by its
payload manifest against the recorded Merkle root; in Chromium too."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from tests.conftest import Running
from tests.test_staff_ui import BASE_ARGS


async def a_package(r: Running, tmp_path: Path) -> tuple[dict[str, str], str]:
    d = await r.api("POST", "/api/dossiers", {"title": "Hồ sơ", "phase": "appraisal"}, 201)
    s = await r.api("POST", f"/api/dossiers/{d['id']}/sessions",
                    {"kind": "council_meeting", "title": "Phiên họp"}, 201)
    await r.api("POST", f"/api/sessions/{s['id']}/start")
    await r.api("POST", f"/api/sessions/{s['id']}/end")
    package = await r.api("POST", f"/api/sessions/{s['id']}/packages", None, 201)
    zipped = tmp_path / "p.zip"
    zipped.write_bytes(await (await r.client.get(package["download_url"],
                                                 headers=r.auth())).read())
    with zipfile.ZipFile(zipped) as z:
        manifest = z.read(next(n for n in z.namelist()
                               if n.endswith("/manifest-sha256.txt"))).decode()
    return package, manifest


async def check(r: Running, body: dict[str, str], status: int = 200) -> dict[str, object]:
    resp = await r.client.post("/api/public/verify", json=body)  # no credentials at all
    out: dict[str, object] = await resp.json()
    assert resp.status == status, out
    return out


async def test_by_id_and_by_manifest(running: Running, tmp_path: Path) -> None:
    r = running
    package, manifest = await a_package(r, tmp_path)
    by_id = await check(r, {"package_id": package["id"]})
    assert by_id["found"] and by_id["merkle_root"] == package["merkle_root"]
    assert by_id["scope"] == "session" and by_id["session_kind"] == "council_meeting"
    by_manifest = await check(r, {"manifest": manifest})
    assert by_manifest["found"] and by_manifest["package_id"] == package["id"]
    # One changed hash in the manifest: another root, not found; the root is shown.
    first = manifest.splitlines()[0]
    changed = manifest.replace(first, ("0" if first[0] != "0" else "1") + first[1:], 1)
    other = await check(r, {"manifest": changed})
    assert not other["found"] and other["merkle_root"] not in ("", package["merkle_root"])
    assert not (await check(r, {"package_id": "f" * 32}))["found"]
    for bad, code in (({"manifest": "hello world"}, "public.bad_manifest"),
                      ({}, "public.nothing_to_check")):
        out = await check(r, bad, 400)
        assert out["error"]["code"] == code  # type: ignore[index]
    events = await r.api("GET", f"/api/sessions/{package['session_id']}/audit")
    public = [e for e in events if e["kind"] == "access.verified" and e["actor"] == "public"]
    assert len(public) == 2


@pytest.mark.browser
async def test_the_page_checks_a_dropped_manifest(running: Running, chromium_path: str,
                                                  tmp_path: Path) -> None:
    r = running
    package, manifest = await a_package(r, tmp_path)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path, headless=True,
                                          args=BASE_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(r.base_url + "/verify?lang=en")
            await page.set_input_files("#public-form [name=manifest_file]", files=[{
                "name": "manifest-sha256.txt", "mimeType": "text/plain",
                "buffer": manifest.encode()}])
            await page.click("#public-form button[type=submit]")
            await page.wait_for_selector("#public-result[data-found='true']")
            text = await page.inner_text("#public-result")
            assert package["merkle_root"] in text and "Match" in text
            await page.fill("#public-form [name=package_id]", "0" * 32)
            await page.set_input_files("#public-form [name=manifest_file]", files=[])
            await page.click("#public-form button[type=submit]")
            await page.wait_for_selector("#public-result[data-found='false']")
        finally:
            await browser.close()
